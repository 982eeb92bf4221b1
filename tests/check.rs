//! `grantmux check --config FILE`: the real binary on real files, exit codes and messages.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `EX_USAGE`: what `check` exits with on a bad config.
const EXIT_USAGE: i32 = 64;

const APP: &str = "[[app]]\nclient_id = \"app1\"\nclient_secret_env = \"ZOOM_CLIENT_SECRET\"\n";

/// Runs `grantmux check --config <path>` with exactly `vars` in its environment.
fn check(path: &Path, vars: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_grantmux"));
    cmd.arg("check").arg("--config").arg(path).env_clear();
    for (name, value) in vars {
        cmd.env(name, value);
    }
    cmd.output().expect("run grantmux")
}

fn repo_proxy_toml() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("proxy.toml")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Writes `text` as `proxy.toml` in a fresh folder, runs `check` and asserts it
/// fails with 64, naming `key` after the file's path.
fn assert_fails_on(case: &str, text: &str, key: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("proxy.toml");
    std::fs::write(&path, text).expect("write config");
    let out = check(
        &path,
        &[
            ("ZOOM_CLIENT_SECRET", "s3cret-value"),
            ("OTHER_KEY", "other-value"),
            ("EMPTY", ""),
        ],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(EXIT_USAGE), "{case}: {err}");
    let want = format!("{}: {key}", path.display());
    assert!(
        err.contains(&want),
        "{case}: expected {want:?} in stderr: {err}"
    );
    assert!(
        !err.contains("s3cret-value"),
        "{case}: secret leaked: {err}"
    );
    assert!(stdout(&out).is_empty(), "{case}");
}

#[test]
fn repository_proxy_toml_is_ok_with_its_secret_set() {
    let out = check(
        &repo_proxy_toml(),
        &[("ZOOM_CLIENT_SECRET", "s3cret-value")],
    );
    assert_eq!(stdout(&out).trim(), "ok", "stderr: {}", stderr(&out));
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn repository_proxy_toml_without_its_secret_names_the_key() {
    let out = check(&repo_proxy_toml(), &[]);
    assert_eq!(out.status.code(), Some(EXIT_USAGE));
    let err = stderr(&out);
    assert!(err.contains("app[0].client_secret_env"), "{err}");
    assert!(err.contains("ZOOM_CLIENT_SECRET is not set"), "{err}");
}

#[test]
fn unreadable_config_file_names_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("absent.toml");
    let out = check(&path, &[]);
    assert_eq!(out.status.code(), Some(EXIT_USAGE));
    assert!(stderr(&out).contains(&path.display().to_string()));
}

#[test]
fn toml_syntax_error_gives_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("proxy.toml");
    std::fs::write(&path, format!("{APP}[listen\n")).expect("write config");
    let out = check(&path, &[("ZOOM_CLIENT_SECRET", "x")]);
    assert_eq!(out.status.code(), Some(EXIT_USAGE));
    assert!(
        stderr(&out).contains("invalid TOML at line 4, column"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn relative_secret_file_resolves_against_the_config_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("secrets")).expect("mkdir");
    std::fs::write(dir.path().join("secrets/zoom"), "from-a-file\n").expect("write secret");
    let path = dir.path().join("proxy.toml");
    let text = r#"
[[app]]
client_id = "a"
client_secret_file = "secrets/zoom"
[store]
backend = "memory"
"#;
    std::fs::write(&path, text).expect("write config");
    // The binary runs from the crate root, not from `dir`.
    let out = check(&path, &[]);
    assert_eq!(stdout(&out).trim(), "ok", "stderr: {}", stderr(&out));
}

#[test]
fn each_validation_category_exits_64_naming_the_key() {
    let caller = |grant: &str, extra: &str| {
        let head = "[[caller]]\nname = \"r\"\nkey_env = \"ZOOM_CLIENT_SECRET\"\n";
        format!("{APP}{head}grant = {grant}\n{extra}")
    };
    let acct = "{ client_id = \"app1\", account_id = \"a\" }";
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "unknown key",
            format!("{APP}[listen]\nprxy = \"x\"\n"),
            "listen.prxy",
        ),
        (
            "inline secret",
            "[[app]]\nclient_id = \"a\"\nclient_secret = \"s3cret-value\"\n".into(),
            "app[0].client_secret",
        ),
        (
            "wrong type",
            format!("{APP}[proxy]\npassthrough = 1\n"),
            "proxy.passthrough",
        ),
        (
            "bad duration",
            format!("{APP}[refresh]\nahead = \"5 parsecs\"\n"),
            "refresh.ahead",
        ),
        (
            "bad socket address",
            format!("{APP}[listen]\nadmin = \"nowhere\"\n"),
            "listen.admin",
        ),
        (
            "bad URL",
            format!("{APP}[zoom]\napi_url = \"https://api.zoom.us/v2\"\n"),
            "zoom.api_url",
        ),
        (
            "http upstream",
            format!("{APP}[zoom]\noauth_url = \"http://zoom.us\"\n"),
            "zoom.oauth_url",
        ),
        (
            "public_url scheme",
            format!("{APP}[listen]\npublic_url = \"ws://h\"\n"),
            "listen.public_url",
        ),
        (
            "empty env var",
            APP.replace("ZOOM_CLIENT_SECRET", "EMPTY"),
            "app[0].client_secret_env",
        ),
        (
            "missing secret file",
            "[[app]]\nclient_id = \"a\"\nclient_secret_file = \"nope\"\n".into(),
            "app[0].client_secret_file",
        ),
        (
            "missing ca_file",
            format!("{APP}[zoom]\nca_file = \"roots.pem\"\n"),
            "zoom.ca_file",
        ),
        ("zero apps", "[listen]\n".into(), "app"),
        (
            "duplicate client_id",
            format!("{APP}{APP}"),
            "app[1].client_id",
        ),
        (
            "unknown app",
            caller("{ client_id = \"app9\", user_id = \"u\" }", ""),
            "caller[0].grant.client_id",
        ),
        (
            "both subjects",
            caller(
                "{ client_id = \"app1\", user_id = \"u\", account_id = \"a\" }",
                "",
            ),
            "caller[0].grant.user_id",
        ),
        (
            "no subject",
            caller("{ client_id = \"app1\" }", ""),
            "caller[0].grant.account_id",
        ),
        (
            "duplicate caller name",
            caller(
                acct,
                &format!("[[caller]]\nname = \"r\"\nkey_env = \"OTHER_KEY\"\ngrant = {acct}\n"),
            ),
            "caller[1].name",
        ),
        (
            "duplicate caller key",
            caller(
                acct,
                &format!(
                    "[[caller]]\nname = \"q\"\nkey_env = \"ZOOM_CLIENT_SECRET\"\ngrant = {acct}\n"
                ),
            ),
            "caller[1].key_env",
        ),
        (
            "redis without url",
            format!("{APP}[store]\nbackend = \"redis\"\n"),
            "store.url",
        ),
        (
            "both store keys",
            format!("{APP}[store]\nkey_env = \"ZOOM_CLIENT_SECRET\"\nkey_file = \"k\"\n"),
            "store.key_file",
        ),
        (
            "unknown backend",
            format!("{APP}[store]\nbackend = \"s3\"\n"),
            "store.backend",
        ),
        (
            "backoff order",
            format!("{APP}[refresh]\nbackoff_min = \"2m\"\nbackoff_max = \"1m\"\n"),
            "refresh.backoff_max",
        ),
    ];
    for (case, text, key) in &cases {
        assert_fails_on(case, text, key);
    }
}

/// A password inside `store.url` is refused like an inline `client_secret`,
/// and the message names `store.url_env` as the way to pass it.
#[test]
fn a_password_inside_store_url_is_refused_naming_url_env() {
    for url in [
        "redis://:redis-pw-value@127.0.0.1:6379/0",
        "rediss://grantmux:redis-pw-value@redis.internal:6380",
    ] {
        let text = format!(
            "{APP}[store]\nbackend = \"redis\"\nkey_env = \"OTHER_KEY\"\nurl = \"{url}\"\n"
        );
        assert_fails_on(url, &text, "store.url");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("proxy.toml");
        std::fs::write(&path, &text).expect("write config");
        let vars = [("ZOOM_CLIENT_SECRET", "x"), ("OTHER_KEY", "y")];
        let err = stderr(&check(&path, &vars));
        assert!(err.contains("store.url_env"), "{err}");
        assert!(!err.contains("redis-pw-value"), "password leaked: {err}");
    }
}

#[test]
fn a_config_whose_zoom_upstream_is_grantmux_itself_is_refused() {
    // As `/etc/hosts` pointing Zoom's name at this host would: without
    // `listen.tls` or `zoom.dns_servers`, Zoom's names go through the system
    // resolver, and `localhost` resolves to the address the proxy listener
    // takes. (With either, they go to DNS instead: tests/dns_bypass.rs.)
    let text = format!(
        "[listen]\nproxy = \"127.0.0.1:18443\"\n[zoom]\napi_url = \"http://localhost:18443\"\n\
         [store]\nbackend = \"memory\"\n{APP}"
    );
    assert_fails_on("upstream loop", &text, "zoom.api_url");
}
