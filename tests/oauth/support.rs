//! Fixtures for the token-endpoint tests: a simulator, grantmux in front of it,
//! and the calls an OAuth caller makes, pointed at either of them.

use std::collections::HashMap;

use base64::Engine as _;
use grantmux::config::Config;
use grantmux::harness::{Answer, Harness};
use grantmux::sim::SimConfig;
use http::Method;
use serde_json::{json, Value};

pub(crate) const CLIENT: &str = "sim-client";
pub(crate) const SECRET: &str = "sim-secret";
pub(crate) const USER: &str = "sim-user";
pub(crate) const ACCOUNT: &str = "sim-account";
pub(crate) const REDIRECT: &str = "http://localhost/cb";
const FORM: &str = "application/x-www-form-urlencoded";

/// A token answer, as a caller keeps it.
#[derive(Clone, Debug)]
pub(crate) struct Tokens {
    pub access: String,
    pub refresh: Option<String>,
    pub expires_in: u64,
}

pub(crate) async fn start() -> Harness {
    start_with(|_| {}).await
}

pub(crate) async fn start_with(tweak: impl FnOnce(&mut Config)) -> Harness {
    Harness::start(SimConfig::default(), tweak)
        .await
        .expect("harness starts")
}

/// grantmux's base URL, where callers point both their token URL and API base.
pub(crate) fn gmx(h: &Harness) -> String {
    h.proxy_url("")
}

pub(crate) fn basic(client_id: &str, secret: &str) -> String {
    let pair = format!("{client_id}:{secret}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

pub(crate) fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// `POST {base}/oauth/token` with the app's credentials and a form body.
pub(crate) async fn token(h: &Harness, base: &str, pairs: &[(&str, &str)]) -> Answer {
    let auth = basic(CLIENT, SECRET);
    post(h, &format!("{base}/oauth/token"), &auth, FORM, form(pairs)).await
}

/// `POST url` with exactly these credentials, content type and body.
pub(crate) async fn post(
    h: &Harness,
    url: &str,
    authorization: &str,
    content_type: &str,
    body: String,
) -> Answer {
    let mut headers = vec![("content-type", content_type)];
    if !authorization.is_empty() {
        headers.push(("authorization", authorization));
    }
    h.call(Method::POST, url, &headers, body)
        .await
        .expect("an answer")
}

/// The caller's authorization: a code from the simulator (the user approved),
/// exchanged at `base`'s token endpoint.
pub(crate) async fn authorize(h: &Harness, base: &str, user: &str) -> Tokens {
    let code = h.sim.issue_code(CLIENT, user, REDIRECT);
    let a = token(
        h,
        base,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    tokens(&a)
}

pub(crate) async fn refresh(h: &Harness, base: &str, refresh_token: &str) -> Answer {
    token(
        h,
        base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

pub(crate) async fn account_credentials(h: &Harness, base: &str) -> Answer {
    token(
        h,
        base,
        &[
            ("grant_type", "account_credentials"),
            ("account_id", ACCOUNT),
        ],
    )
    .await
}

/// A successful token answer's tokens; panics with the body otherwise.
pub(crate) fn tokens(a: &Answer) -> Tokens {
    assert_eq!(a.status, 200, "token answer: {}", text(a));
    let v = a.json();
    Tokens {
        access: v["access_token"].as_str().expect("access_token").to_owned(),
        refresh: v["refresh_token"].as_str().map(str::to_owned),
        expires_in: v["expires_in"].as_u64().expect("expires_in"),
    }
}

/// `method {base}{path}` with a bearer token.
pub(crate) async fn api(
    h: &Harness,
    base: &str,
    method: Method,
    path: &str,
    bearer: &str,
    body: &str,
) -> Answer {
    let auth = format!("Bearer {bearer}");
    let mut headers = vec![("authorization", auth.as_str())];
    if !body.is_empty() {
        headers.push(("content-type", "application/json"));
    }
    h.call(method, &format!("{base}{path}"), &headers, body.to_owned())
        .await
        .expect("an answer")
}

/// `GET /v2/users/me`: the cheapest call that proves a token works.
pub(crate) async fn me(h: &Harness, base: &str, bearer: &str) -> Answer {
    api(h, base, Method::GET, "/v2/users/me", bearer, "").await
}

/// Creates a meeting and reads it back; the first answer that is not a success.
pub(crate) async fn create_and_read(h: &Harness, base: &str, bearer: &str) -> Result<(), Answer> {
    let body = json!({"topic": "standup", "type": 2}).to_string();
    let created = api(
        h,
        base,
        Method::POST,
        "/v2/users/me/meetings",
        bearer,
        &body,
    )
    .await;
    if created.status != 201 {
        return Err(created);
    }
    let id = created.json()["id"].as_u64().expect("meeting id");
    let read = api(
        h,
        base,
        Method::GET,
        &format!("/v2/meetings/{id}"),
        bearer,
        "",
    )
    .await;
    if read.status != 200 {
        return Err(read);
    }
    Ok(())
}

/// Zoom's OAuth error: this status and `{"reason": reason, "error": error}`.
pub(crate) fn assert_oauth_error(a: &Answer, status: u16, reason: &str, error: &str) {
    assert_eq!(a.status, status, "{}", text(a));
    assert_eq!(a.json(), json!({"reason": reason, "error": error}));
}

/// Zoom's API error: 401 and `{"code":124,"message": message}`.
pub(crate) fn assert_401_124(a: &Answer, message: &str) {
    assert_eq!(a.status, 401, "{}", text(a));
    assert_eq!(a.json(), json!({"code": 124, "message": message}));
}

pub(crate) fn text(a: &Answer) -> String {
    String::from_utf8_lossy(&a.body).into_owned()
}

/// The payload of a JWT-shaped token, unverified.
pub(crate) fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT-shaped token");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON payload")
}

/// Every grant's record version, which any change (tokens, bindings) bumps.
/// Read from the registry: the admin listener's `GET /grants` shows the
/// published token's version, which binding changes do not move.
pub(crate) async fn grant_versions(h: &Harness) -> HashMap<String, u64> {
    let mut versions = HashMap::new();
    for grant in h.gmx.registry.all() {
        versions.insert(grant.id().to_owned(), grant.record().await.version);
    }
    versions
}
