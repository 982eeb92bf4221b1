//! TOML syntax, unknown keys and wrong types: the errors from stage one.

use super::*;

#[test]
fn syntax_error_has_line_and_column() {
    let error = Config::from_toml_str("[listen]\nproxy = \"x\n", &env()).expect_err("bad TOML");
    let message = error.to_string();
    assert!(
        matches!(error, ConfigError::Syntax { line: 2, .. }),
        "{message}"
    );
    assert!(
        message.starts_with("invalid TOML at line 2, column "),
        "{message}"
    );
}

#[test]
fn duplicate_table_is_a_syntax_error() {
    let text = format!("{MINIMAL}[listen]\n[listen]\n");
    let error = Config::from_toml_str(&text, &env()).expect_err("duplicate table");
    assert!(matches!(error, ConfigError::Syntax { .. }), "{error}");
}

#[test]
fn unknown_keys_are_named_by_path() {
    let m = extra_fails_on("[listen]\nprox = \"127.0.0.1:1\"\n", "listen.prox");
    assert!(m.contains("unknown key at line 6, column 1"), "{m}");
    assert!(m.contains("expected one of proxy, admin"), "{m}");
    extra_fails_on("[lissen]\n", "lissen");
    let text = format!("verbose = true\n{MINIMAL}");
    fails_on(&text, &env(), "verbose");
    let grant = "{ client_id = \"app1\", account_id = \"a\", scope = \"x\" }";
    extra_fails_on(&caller(grant), "caller[0].grant.scope");
}

#[test]
fn unknown_key_in_second_app_names_its_index() {
    let m = extra_fails_on(
        r#"
[[app]]
client_id = "app2"
client_secret_env = "ZOOM_CLIENT_SECRET"
revoke = "never"
"#,
        "app[1].revoke",
    );
    assert!(m.contains("revoke_upstream"), "{m}");
}

#[test]
fn inline_client_secret_is_unknown_and_suggests_env_or_file() {
    let text = "[[app]]\nclient_id = \"app1\"\nclient_secret = \"inline-secret-value\"\n";
    let m = fails_on(text, &env(), "app[0].client_secret");
    assert!(
        m.contains("client_secret_env") && m.contains("client_secret_file"),
        "{m}"
    );
    assert!(!m.contains("inline-secret-value"), "{m}");
}

#[test]
fn inline_caller_key_suggests_key_env_or_file() {
    let text = format!("{MINIMAL}[[caller]]\nname = \"r\"\nkey = \"inline-key-value\"\n");
    let m = fails_on(&text, &env(), "caller[0].key");
    assert!(m.contains("key_env or key_file"), "{m}");
    assert!(!m.contains("inline-key-value"), "{m}");
}

#[test]
fn wrong_types_are_named_by_path() {
    let m = extra_fails_on("[listen]\nproxy = 8080\n", "listen.proxy");
    assert!(m.contains("expected a string"), "{m}");
    extra_fails_on("[listen]\nmax_headers = -1\n", "listen.max_headers");
    extra_fails_on("[proxy]\npassthrough = \"yes\"\n", "proxy.passthrough");
    extra_fails_on("listen = 3\n", "app[0].listen");
    fails_on(&format!("listen = 3\n{MINIMAL}"), &env(), "listen");
    fails_on("app = 1\n", &env(), "app");
}

#[test]
fn key_paths_for_dotted_keys() {
    let text = format!("listen.proxy = 3\n{MINIMAL}");
    fails_on(&text, &env(), "listen.proxy");
}

#[test]
fn line_column_counts_from_one() {
    use super::super::error::line_column;
    assert_eq!(line_column("abc", 0), (1, 1));
    assert_eq!(line_column("ab\ncd", 4), (2, 2));
    assert_eq!(line_column("é\nx", 3), (2, 1));
}
