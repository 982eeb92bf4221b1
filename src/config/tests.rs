//! Unit tests for config parsing and validation; no files, no process environment.

use std::path::Path;
use std::time::Duration;

use super::*;

const BASE: &str = "/etc/grantmux";
const APP_SECRET: &str = "app-secret-value-1";
const CALLER_KEY: &str = "caller-key-value-1";

/// One app; extra tables go after it.
const MINIMAL: &str = r#"
[[app]]
client_id = "app1"
client_secret_env = "ZOOM_CLIENT_SECRET"
"#;

fn env() -> MapEnv {
    MapEnv::new(BASE)
        .var("ZOOM_CLIENT_SECRET", APP_SECRET)
        .var("REPORTS_KEY", CALLER_KEY)
        .var("OTHER_KEY", "caller-key-value-2")
        .var("EMPTY", "")
}

fn parse(extra: &str) -> Result<Config, ConfigError> {
    Config::from_toml_str(&format!("{MINIMAL}{extra}"), &env())
}

fn ok(extra: &str) -> Config {
    match parse(extra) {
        Ok(config) => config,
        Err(e) => panic!("expected a valid config, got: {e}"),
    }
}

/// Asserts the whole document fails on `key`, and that the message starts with it.
fn fails_on(text: &str, env: &MapEnv, key: &str) -> String {
    let error = match Config::from_toml_str(text, env) {
        Ok(_) => panic!("expected an error on {key}"),
        Err(e) => e,
    };
    let message = error.to_string();
    assert_eq!(error.key(), Some(key), "{message}");
    assert!(message.starts_with(&format!("{key}: ")), "{message}");
    message
}

/// Like [`fails_on`], with `extra` after [`MINIMAL`] and the default test env.
fn extra_fails_on(extra: &str, key: &str) -> String {
    fails_on(&format!("{MINIMAL}{extra}"), &env(), key)
}

fn caller(grant: &str) -> String {
    format!("[[caller]]\nname = \"reports\"\nkey_env = \"REPORTS_KEY\"\ngrant = {grant}\n")
}

mod defaults;
mod secrets;
mod sections;
mod shape;
