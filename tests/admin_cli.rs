//! `grantmux admin` (issue 17, item 4): the real binary against a grantmux and
//! simulator running in this process, over the admin listener. Also the admin
//! routes it added: `GET /grants/{id}` and `POST /grants/{id}/revoke`.

use std::process::Output;
use std::sync::Arc;

use base64::Engine as _;
use grantmux::harness::{Answer, Harness};
use grantmux::sim::SimConfig;
use grantmux::store::MemoryStore;
use http::Method;
use serde_json::Value;

const CLIENT: &str = "sim-client";
const SECRET: &str = "sim-secret";
const USER: &str = "sim-user";
const ACCOUNT: &str = "sim-account";
const REDIRECT: &str = "http://localhost/cb";
/// The user grant, as `/grants` lists it.
const GRANT: &str = "sim-client/user:sim-user";
/// [`GRANT`] as one path segment.
const GRANT_IN_PATH: &str = "sim-client%2Fuser%3Asim-user";

async fn start() -> Harness {
    start_with(|_| {}).await
}

async fn start_with(tweak: impl FnOnce(&mut grantmux::config::Config)) -> Harness {
    Harness::start(SimConfig::default(), tweak)
        .await
        .expect("harness starts")
}

/// `POST /oauth/token` at grantmux with the app's credentials.
async fn token(h: &Harness, pairs: &[(&str, &str)]) -> String {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT}:{SECRET}"));
    let form = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let headers = [
        ("authorization", format!("Basic {basic}")),
        ("content-type", "application/x-www-form-urlencoded".into()),
    ];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let a = h
        .call(Method::POST, &h.proxy_url("/oauth/token"), &headers, form)
        .await
        .expect("grantmux answers");
    assert_eq!(a.status, 200, "{}", text(&a.body));
    let access = a.json()["access_token"].as_str().map(str::to_owned);
    access.expect("an access token")
}

/// A caller authorizes through grantmux: the user grant with one binding; its
/// virtual access token.
async fn authorize(h: &Harness) -> String {
    let code = h.sim.issue_code(CLIENT, USER, REDIRECT);
    let pairs = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
    ];
    token(h, &pairs).await
}

/// `GET /v2/users/me` through grantmux with `bearer`.
async fn me(h: &Harness, bearer: &str) -> Answer {
    let auth = format!("Bearer {bearer}");
    h.call(
        Method::GET,
        &h.proxy_url("/v2/users/me"),
        &[("authorization", &auth)],
        "",
    )
    .await
    .expect("grantmux answers")
}

/// `GET path` on the admin listener, as JSON.
async fn admin_json(h: &Harness, path: &str) -> Value {
    let a = h
        .call(Method::GET, &h.admin_url(path), &[], "")
        .await
        .expect("admin answers");
    a.json()
}

/// The user grant as `GET /grants` lists it.
async fn listed(h: &Harness) -> Value {
    let grants = admin_json(h, "/grants").await;
    let found = grants["grants"]
        .as_array()
        .and_then(|list| list.iter().find(|g| g["id"] == GRANT).cloned());
    found.expect("the user grant is listed")
}

/// `grantmux admin --admin <h's admin> args...`.
async fn admin(h: &Harness, args: &[&str]) -> Output {
    let url = h.admin_url("");
    let mut all = vec!["admin", "--admin", url.as_str()];
    all.extend_from_slice(args);
    grantmux(&all).await
}

/// The binary, run from an empty folder (no `proxy.toml` to find) without
/// blocking the runtime that serves it.
async fn grantmux(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    tokio::process::Command::new(env!("CARGO_BIN_EXE_grantmux"))
        .args(args)
        .current_dir(dir.path())
        .env_remove("GRANTMUX_LOG")
        .output()
        .await
        .expect("grantmux runs")
}

/// The value on the `label  value` line of a key-value view.
fn value_of<'a>(view: &'a str, label: &str) -> Option<&'a str> {
    view.lines()
        .filter_map(|l| l.strip_prefix(label))
        .find(|rest| rest.starts_with("  "))
        .map(str::trim)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Exit code, stdout and stderr, asserting the code.
fn expect_exit(out: &Output, code: i32) -> (String, String) {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    (stdout, stderr)
}

#[tokio::test]
async fn grants_prints_a_table_of_the_running_instances_grants() {
    let h = start().await;
    authorize(&h).await;
    let grant = listed(&h).await;
    let (stdout, _) = expect_exit(&admin(&h, &["grants"]).await, 0);
    let mut lines = stdout.lines();
    let header = lines.next().expect("a header");
    assert!(header.starts_with("ID "), "{stdout}");
    let columns = [
        "STATE",
        "ACCOUNT",
        "BINDINGS",
        "EXPIRES IN",
        "REFRESHED AT",
        "UNPERSISTED",
    ];
    for column in columns {
        assert!(header.contains(column), "{column}: {stdout}");
    }
    let row = lines
        .find(|l| l.starts_with(GRANT))
        .expect("a row for the grant");
    let cells: Vec<&str> = row.split_whitespace().collect();
    let state = grant["state"].as_str().expect("a state");
    assert_eq!(cells[..4], [GRANT, state, ACCOUNT, "1"], "{stdout}");
    assert!(row.ends_with("no"), "persisted: {stdout}");
    h.shutdown().await;
}

#[tokio::test]
async fn json_grants_prints_the_admin_apis_json() {
    let h = start().await;
    authorize(&h).await;
    for args in [&["--json", "grants"], &["grants", "--json"]] {
        let (stdout, _) = expect_exit(&admin(&h, args).await, 0);
        let printed: Value = serde_json::from_str(&stdout).expect("JSON");
        assert!(stdout.contains("\n  "), "pretty: {stdout}");
        let grants = printed["grants"].as_array().expect("grants");
        assert_eq!(grants.len(), 1);
        assert_eq!(grants[0]["id"], GRANT);
        assert_eq!(grants[0]["version"], listed(&h).await["version"]);
    }
    h.shutdown().await;
}

#[tokio::test]
async fn grant_shows_one_grant_as_grants_lists_it() {
    let h = start().await;
    authorize(&h).await;
    let mut grant = listed(&h).await;
    // Seconds tick between calls; the rest is the same object.
    let same = |mut g: Value| {
        g["expires_in_seconds"] = Value::Null;
        g
    };
    grant = same(grant);
    let direct = admin_json(&h, &format!("/grants/{GRANT_IN_PATH}")).await;
    assert_eq!(same(direct), grant, "GET /grants/{{id}}");

    let (stdout, _) = expect_exit(&admin(&h, &["--json", "grant", GRANT]).await, 0);
    let printed: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(same(printed), grant);

    let (stdout, _) = expect_exit(&admin(&h, &["grant", GRANT]).await, 0);
    let version = grant["version"].to_string();
    let state = grant["state"].as_str();
    let expected = [
        ("id", Some(GRANT)),
        ("subject", Some("user:sim-user")),
        ("account", Some(ACCOUNT)),
        ("state", state),
        ("version", Some(version.as_str())),
        ("bindings", Some("1")),
        ("unpersisted", Some("no")),
    ];
    for (label, value) in expected {
        assert_eq!(value_of(&stdout, label), value, "{label}: {stdout}");
    }
    assert!(value_of(&stdout, "expires at").is_some_and(|v| v.ends_with(')')));
    assert!(!stdout.contains("redacted"), "{stdout}");
    h.shutdown().await;
}

#[tokio::test]
async fn an_unknown_grant_is_an_api_error_exit_1() {
    let h = start().await;
    let unknown = "sim-client/user:nobody";
    let a = h
        .call(
            Method::GET,
            &h.admin_url("/grants/sim-client%2Fuser%3Anobody"),
            &[],
            "",
        )
        .await
        .expect("admin answers");
    assert_eq!(a.status, 404);
    assert_eq!(a.json()["error"], "no such grant");
    for command in ["grant", "refresh", "revoke"] {
        let (_, stderr) = expect_exit(&admin(&h, &[command, unknown]).await, 1);
        assert!(stderr.contains("HTTP 404"), "{command}: {stderr}");
        assert!(stderr.contains("no such grant"), "{command}: {stderr}");
    }
    // With --json, the API's error object is printed as is.
    let (stdout, _) = expect_exit(&admin(&h, &["--json", "grant", unknown]).await, 1);
    let printed: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(printed["id"], unknown);
    h.shutdown().await;
}

#[tokio::test]
async fn refresh_rotates_the_grant_and_its_version_goes_up() {
    let h = start().await;
    authorize(&h).await;
    let before = listed(&h).await["version"].as_u64().expect("a version");
    let refreshes = h.sim.stats().token_requests.refresh_token;
    let (stdout, _) = expect_exit(&admin(&h, &["refresh", GRANT]).await, 0);
    let after = listed(&h).await["version"].as_u64().expect("a version");
    assert!(after > before, "{before} -> {after}");
    assert_eq!(stdout, format!("refreshed {GRANT}: version {after}\n"));
    assert_eq!(h.sim.stats().token_requests.refresh_token, refreshes + 1);
    // A second one within the limit: admin's 429 and its message, exit 1.
    let (_, stderr) = expect_exit(&admin(&h, &["refresh", GRANT]).await, 1);
    assert!(stderr.contains("HTTP 429"), "{stderr}");
    assert!(stderr.contains("retry in"), "{stderr}");
    h.shutdown().await;
}

#[tokio::test]
async fn revoke_refuses_the_callers_virtual_token_and_leaves_zoom_alone() {
    let h = start().await;
    let access = authorize(&h).await;
    assert_eq!(me(&h, &access).await.status, 200);
    let (stdout, _) = expect_exit(&admin(&h, &["revoke", GRANT]).await, 0);
    assert!(
        stdout.starts_with(&format!("revoked 1 binding(s) of {GRANT}; 0 live now.")),
        "{stdout}"
    );
    let refused = me(&h, &access).await;
    assert_eq!(refused.status, 401, "{}", text(&refused.body));
    assert_eq!(refused.json()["code"], 124);
    // Bindings only: Zoom was not asked, and the grant still holds its token.
    assert_eq!(h.sim.stats().revoke_requests, 0);
    assert!(h.sim.current_access_token(CLIENT, USER).is_some());
    let grant = listed(&h).await;
    assert_eq!(grant["bindings"], 0);
    assert_eq!(grant["access_token"], "(redacted)", "still holds a token");
    // Again: nothing left to revoke, and that is not an error.
    let (stdout, _) = expect_exit(&admin(&h, &["--json", "revoke", GRANT]).await, 0);
    let printed: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(printed["revoked_bindings"], 0);
    h.shutdown().await;
}

#[tokio::test]
async fn revoking_a_server_to_server_grant_is_refused() {
    let h = start().await;
    let pairs = [
        ("grant_type", "account_credentials"),
        ("account_id", ACCOUNT),
    ];
    let access = token(&h, &pairs).await;
    let id = format!("{CLIENT}/account:{ACCOUNT}");
    let (_, stderr) = expect_exit(&admin(&h, &["revoke", &id]).await, 1);
    assert!(stderr.contains("HTTP 409"), "{stderr}");
    assert!(stderr.contains("rotate the app's secret"), "{stderr}");
    assert_eq!(me(&h, &access).await.status, 200, "still works");
    h.shutdown().await;
}

#[tokio::test]
async fn a_revoke_a_browser_could_send_is_refused() {
    let h = start().await;
    let access = authorize(&h).await;
    let url = h.admin_url(&format!("/grants/{GRANT_IN_PATH}/revoke"));
    let browsers: [&[(&str, &str)]; 2] = [
        &[("origin", "https://evil.example")],
        &[("content-type", "text/plain")],
    ];
    for headers in browsers {
        let a = h
            .call(Method::POST, &url, headers, "x")
            .await
            .expect("admin answers");
        assert_eq!(a.status, 403, "{headers:?}: {}", text(&a.body));
    }
    assert_eq!(me(&h, &access).await.status, 200, "nothing was revoked");
    assert_eq!(listed(&h).await["bindings"], 1);
    h.shutdown().await;
}

#[tokio::test]
async fn status_shows_health_readiness_and_grants_by_state() {
    let h = start().await;
    authorize(&h).await;
    let state = listed(&h).await["state"].as_str().map(str::to_owned);
    let state = state.expect("a state");
    let (stdout, _) = expect_exit(&admin(&h, &["status"]).await, 0);
    let admin_url = h.admin_url("");
    let grants = format!("1 (1 {state}), 0 unpersisted");
    let expected = [
        ("admin", admin_url.as_str()),
        ("healthz", "ok"),
        ("readyz", "ready"),
        ("grants", grants.as_str()),
    ];
    for (label, value) in expected {
        assert_eq!(value_of(&stdout, label), Some(value), "{label}: {stdout}");
    }
    // The store's own readiness, where this grantmux has it.
    let store = h.admin_url("/readyz/store");
    let store = h.call(Method::GET, &store, &[], "").await;
    if store.expect("admin answers").status != 404 {
        assert_eq!(value_of(&stdout, "readyz/store"), Some("ready"), "{stdout}");
    }
    let (stdout, _) = expect_exit(&admin(&h, &["--json", "status"]).await, 0);
    let printed: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(printed["healthz"]["status"], 200);
    assert_eq!(printed["readyz"]["body"]["ready"], true);
    assert_eq!(printed["grants"]["total"], 1);
    assert_eq!(printed["grants"]["by_state"][state.as_str()], 1);
    h.shutdown().await;
}

#[tokio::test]
async fn status_exits_1_naming_a_token_the_store_refused() {
    let store = Arc::new(MemoryStore::new());
    let h = Harness::start_with_store(SimConfig::default(), Some(store.clone()), |_| {})
        .await
        .expect("harness starts");
    authorize(&h).await;
    store.set_fail_writes(true);
    // Rotated at Zoom, served from memory, not persisted.
    admin(&h, &["refresh", GRANT]).await;
    assert_eq!(listed(&h).await["unpersisted"], true);

    let (stdout, stderr) = expect_exit(&admin(&h, &["status"]).await, 1);
    let held = format!("not ready: rotated tokens not yet persisted for {GRANT}");
    assert!(stdout.lines().any(|l| l.ends_with(&held)), "{stdout}");
    assert!(value_of(&stdout, "grants").is_some_and(|g| g.ends_with(", 1 unpersisted")));
    assert!(
        stderr.contains("HTTP 503") && stderr.contains(&held),
        "{stderr}"
    );
    store.set_fail_writes(false);
    h.shutdown().await;
}

#[tokio::test]
async fn ratelimits_prints_each_budget() {
    let h = start_with(|c| c.rate_limit.enabled = true).await;
    let access = authorize(&h).await;
    assert_eq!(me(&h, &access).await.status, 200);
    let view = admin_json(&h, "/ratelimits").await;
    let budgets = view["budgets"].as_array().cloned().unwrap_or_default();
    assert!(!budgets.is_empty(), "a call made a budget: {view}");

    let (stdout, _) = expect_exit(&admin(&h, &["ratelimits"]).await, 0);
    assert!(stdout.starts_with("rate limiting on;"), "{stdout}");
    assert!(stdout.contains("ACCOUNT"), "{stdout}");
    for b in &budgets {
        let (account, category) = (b["account"].as_str(), b["category"].as_str());
        let (account, category) = (account.expect("account"), category.expect("category"));
        let row = stdout
            .lines()
            .find(|l| l.split_whitespace().take(2).eq([account, category]));
        assert!(row.is_some(), "{account} {category}: {stdout}");
    }
    let (stdout, _) = expect_exit(&admin(&h, &["--json", "ratelimits"]).await, 0);
    let printed: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(printed["enabled"], true);
    assert_eq!(
        printed["budgets"].as_array().map(Vec::len),
        Some(budgets.len())
    );
    h.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_admin_address_exits_2_naming_it() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    for command in ["grants", "status"] {
        let out = grantmux(&["admin", "--admin", &url, command]).await;
        let (stdout, stderr) = expect_exit(&out, 2);
        assert!(stdout.is_empty(), "{stdout}");
        assert!(
            stderr.contains(&format!("cannot reach the admin API at {url}")),
            "{stderr}"
        );
        assert!(stderr.contains("refused"), "says why: {stderr}");
    }
}

#[tokio::test]
async fn the_admin_address_comes_from_the_config() {
    let h = start().await;
    authorize(&h).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("proxy.toml");
    // Only listen.admin is read: a secret not in this environment is no error.
    let text = format!(
        "[listen]\nadmin = \"{}\"\n\
         [[app]]\nclient_id = \"x\"\nclient_secret_env = \"UNSET_ADMIN_CLI_TEST\"\n",
        h.gmx.admin_addr
    );
    std::fs::write(&config, text).expect("config written");
    let path = config.to_str().expect("a UTF-8 path");
    let (stdout, _) = expect_exit(&grantmux(&["admin", "--config", path, "grants"]).await, 0);
    assert!(stdout.lines().any(|l| l.starts_with(GRANT)), "{stdout}");

    // A bare host:port is taken as http://.
    let bare = h.gmx.admin_addr.to_string();
    let out = grantmux(&["admin", "--admin", &bare, "grants"]).await;
    expect_exit(&out, 0);

    let missing = dir.path().join("missing.toml");
    let missing = missing.to_str().expect("a UTF-8 path");
    let (_, stderr) = expect_exit(&grantmux(&["admin", "-c", missing, "grants"]).await, 64);
    assert!(stderr.contains("missing.toml"), "{stderr}");
    let https = grantmux(&["admin", "--admin", "https://127.0.0.1:9090", "grants"]).await;
    let (_, stderr) = expect_exit(&https, 64);
    assert!(stderr.contains("plain HTTP"), "{stderr}");
    h.shutdown().await;
}
