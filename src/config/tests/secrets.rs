//! Secrets from the environment and from files, and that none is ever printed.

use super::*;

fn app(source: &str) -> String {
    format!("[[app]]\nclient_id = \"app1\"\n{source}\n")
}

#[test]
fn missing_env_var_is_named() {
    let m = fails_on(
        &app("client_secret_env = \"NOPE\""),
        &env(),
        "app[0].client_secret_env",
    );
    assert_eq!(
        m,
        "app[0].client_secret_env: environment variable NOPE is not set"
    );
}

#[test]
fn empty_env_var_is_rejected() {
    let m = fails_on(
        &app("client_secret_env = \"EMPTY\""),
        &env(),
        "app[0].client_secret_env",
    );
    assert!(m.contains("EMPTY is empty"), "{m}");
}

#[test]
fn file_secret_is_resolved_and_trimmed() {
    let env = env().file("secrets/zoom", "file-secret-value\n");
    let text = app("client_secret_file = \"./secrets/zoom\"");
    let c = Config::from_toml_str(&text, &env).expect("valid");
    assert_eq!(
        c.apps[0]
            .client_secret
            .as_ref()
            .map(|s| s.expose())
            .unwrap_or_default(),
        "file-secret-value"
    );
    let env = MapEnv::new(BASE).file("/run/secrets/zoom", "abs-secret \r\n\n");
    let text = app("client_secret_file = \"/run/secrets/zoom\"");
    let c = Config::from_toml_str(&text, &env).expect("valid");
    assert_eq!(
        c.apps[0]
            .client_secret
            .as_ref()
            .map(|s| s.expose())
            .unwrap_or_default(),
        "abs-secret"
    );
}

#[test]
fn missing_or_empty_secret_file_is_named() {
    let env = env().file("blank", " \n");
    let text = app("client_secret_file = \"missing\"");
    let m = fails_on(&text, &env, "app[0].client_secret_file");
    assert!(m.contains("cannot read /etc/grantmux/missing"), "{m}");
    let m = fails_on(
        &app("client_secret_file = \"blank\""),
        &env,
        "app[0].client_secret_file",
    );
    assert!(m.contains("is empty"), "{m}");
    let env = env.file("binary", [0xffu8, 0xfe]);
    fails_on(
        &app("client_secret_file = \"binary\""),
        &env,
        "app[0].client_secret_file",
    );
}

#[test]
fn exactly_one_secret_source() {
    let both = app("client_secret_env = \"ZOOM_CLIENT_SECRET\"\nclient_secret_file = \"f\"");
    let m = fails_on(&both, &env(), "app[0].client_secret_file");
    assert!(m.contains("app[0].client_secret_env"), "{m}");
    let m = fails_on(&app(""), &env(), "app[0].client_secret_env");
    assert!(m.contains("client_secret_file"), "{m}");
    let caller = "[[caller]]\nname = \"r\"\ngrant = { client_id = \"app1\", user_id = \"u\" }\n";
    extra_fails_on(caller, "caller[0].key_env");
    let caller_file = format!("{caller}key_file = \"nope\"\n");
    extra_fails_on(&caller_file, "caller[0].key_file");
}

#[test]
fn caller_key_from_file() {
    let env = env().file("reports.key", "file-caller-key\n");
    let text = format!(
        r#"{MINIMAL}
[[caller]]
name = "r"
key_file = "reports.key"
grant = {{ client_id = "app1", user_id = "u" }}
"#
    );
    let c = Config::from_toml_str(&text, &env).expect("valid");
    assert_eq!(c.callers[0].key.expose(), "file-caller-key");
}

#[test]
fn debug_and_errors_never_show_secret_values() {
    let redis = "redis://:redis-password-value@127.0.0.1:6379/0";
    let env = env()
        .var("REDIS_URL", redis)
        .var("STATE_KEY", "state-key-value");
    let store = "[store]\nbackend = \"redis\"\nurl_env = \"REDIS_URL\"\nkey_env = \"STATE_KEY\"\n";
    let grant = caller("{ client_id = \"app1\", account_id = \"a\" }");
    let text = format!("{MINIMAL}{store}{grant}");
    let c = Config::from_toml_str(&text, &env).expect("valid");
    let debug = format!("{c:?} {c:#?} {env:?}");
    for secret in [
        APP_SECRET,
        CALLER_KEY,
        "redis-password-value",
        "state-key-value",
    ] {
        assert!(!debug.contains(secret), "{secret} leaked into Debug output");
    }
    // An inline Redis URL with a password is refused, naming the way to pass
    // it, and neither the message nor Debug shows it.
    let inline = format!(
        "{MINIMAL}[store]\nbackend = \"redis\"\nurl = \"{redis}\"\nkey_env = \"STATE_KEY\"\n"
    );
    let m = fails_on(&inline, &env, "store.url");
    assert!(m.contains("store.url_env"), "{m}");
    assert!(!m.contains("redis-password-value"), "{m}");
    let error = Config::from_toml_str(&inline, &env).expect_err("inline password");
    assert!(!format!("{error:?}").contains("redis-password-value"));
    // A malformed one is named without its value.
    let wrong = inline.replace("redis://", "redis:/");
    let m = fails_on(&wrong, &env, "store.url");
    assert!(!m.contains("redis-password-value"), "{m}");
    let error = Config::from_toml_str(&wrong, &env).expect_err("bad url");
    assert!(!format!("{error:?}").contains("redis-password-value"));
}

#[test]
fn redis_credentials_are_never_inline() {
    let store = |url: &str| {
        format!("[store]\nbackend = \"redis\"\nkey_env = \"OTHER_KEY\"\nurl = \"{url}\"\n")
    };
    for url in [
        "redis://:pw-value@127.0.0.1:6379/0",
        "redis://user:pw-value@redis.internal",
        "rediss://user:pw-value@redis.internal:6380/1",
        "rediss://pw-value@redis.internal",
    ] {
        let m = extra_fails_on(&store(url), "store.url");
        assert!(
            m.contains("never inline") && m.contains("store.url_env"),
            "{m}"
        );
        assert!(!m.contains("pw-value"), "{url}: {m}");
    }
    // No user or password: inline is fine, an `@` after the host included.
    for url in [
        "redis://127.0.0.1:6379/0",
        "rediss://redis.internal/0?x=a@b",
    ] {
        let c = ok(&store(url));
        assert!(
            matches!(c.store.backend, StoreBackend::Redis { .. }),
            "{url}"
        );
    }
    // The same URL from the environment is how a password is passed.
    let env = env().var("REDIS_URL", "rediss://user:pw-value@redis.internal:6380");
    let text = format!(
        "{MINIMAL}[store]\nbackend = \"redis\"\nkey_env = \"OTHER_KEY\"\nurl_env = \"REDIS_URL\"\n"
    );
    let c = Config::from_toml_str(&text, &env).expect("valid");
    let StoreBackend::Redis(redis) = c.store.backend else {
        panic!("not redis");
    };
    assert_eq!(
        redis.url.expose(),
        "rediss://user:pw-value@redis.internal:6380"
    );
}

#[test]
fn a_public_app_has_no_secret_and_refuses_one() {
    let c = Config::from_toml_str(&app("public = true"), &env()).expect("valid");
    assert!(c.apps[0].client_secret.is_none());
    let m = fails_on(
        &app("public = true\nclient_secret_env = \"ZOOM_SECRET\""),
        &env(),
        "app[0].client_secret_env",
    );
    assert!(m.contains("app[0].public"), "{m}");
    // Without `public`, a secret is still required.
    fails_on(&app(""), &env(), "app[0].client_secret_env");
}
