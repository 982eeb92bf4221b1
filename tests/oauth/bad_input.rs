//! Bad requests get Zoom's own status and body, and change no grant.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use grantmux::grants::vtoken::{Claims, Signer};
use grantmux::harness::Answer;
use serde_json::json;

use crate::support::{
    self, assert_401_124, assert_oauth_error, authorize, basic, claims, form, gmx, me, post,
    refresh, token, Tokens, CLIENT, SECRET, USER,
};

const FORM: &str = "application/x-www-form-urlencoded";

/// The same claims with another payload field changed, the signature kept.
fn tampered(token: &str) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut payload = claims(token);
    payload["bid"] = json!("someone-elses-binding");
    parts[1] = B64.encode(payload.to_string());
    parts.join(".")
}

/// The same claims, signed with a key that is not grantmux's.
fn foreign_signed(token: &str) -> String {
    let claims: Claims = serde_json::from_value(claims(token)).expect("virtual token claims");
    Signer::random().sign(&claims).expose().to_owned()
}

/// The token-endpoint requests that must be refused, each with a label.
fn refused_requests(t: &Tokens) -> Vec<(&'static str, String, &'static str, String)> {
    let r = t.refresh.clone().expect("refresh token");
    let refresh_form = form(&[("grant_type", "refresh_token"), ("refresh_token", &r)]);
    let ok = basic(CLIENT, SECRET);
    vec![
        (
            "wrong secret",
            basic(CLIENT, "not-the-secret"),
            FORM,
            refresh_form.clone(),
        ),
        (
            "unknown client",
            basic("someone-else", SECRET),
            FORM,
            refresh_form.clone(),
        ),
        ("no credentials", String::new(), FORM, refresh_form),
        (
            "missing grant_type",
            ok.clone(),
            FORM,
            form(&[("refresh_token", &r)]),
        ),
        (
            "unsupported grant_type",
            ok.clone(),
            FORM,
            form(&[("grant_type", "password"), ("username", "u")]),
        ),
        (
            "JSON body",
            ok,
            "application/json",
            json!({"grant_type": "refresh_token", "refresh_token": r}).to_string(),
        ),
    ]
}

fn expect_zoom_refusal(label: &str, a: &Answer) {
    let (reason, error) = match label {
        "wrong secret" | "unknown client" | "no credentials" => {
            ("Invalid client_id or client_secret", "invalid_client")
        }
        _ => ("unsupported grant type", "unsupported_grant_type"),
    };
    assert_eq!(a.status, 400, "{label}: {}", support::text(a));
    assert_eq!(
        a.json(),
        json!({"reason": reason, "error": error}),
        "{label}"
    );
}

#[tokio::test]
async fn malformed_token_requests_get_zooms_errors_and_change_no_grant() {
    let h = support::start().await;
    let base = gmx(&h);
    let t = authorize(&h, &base, USER).await;
    let versions = support::grant_versions(&h).await;
    let stats = h.sim.stats();
    let cases = refused_requests(&t);
    for (label, auth, content_type, body) in &cases {
        let url = format!("{base}/oauth/token");
        let a = post(&h, &url, auth, content_type, body.clone()).await;
        expect_zoom_refusal(label, &a);
    }
    assert_eq!(support::grant_versions(&h).await, versions);
    assert_eq!(h.sim.stats(), stats, "nothing reached Zoom");
    // Zoom itself answers each of these the same way.
    for (label, auth, content_type, body) in cases {
        let url = format!("{}/oauth/token", h.sim.base_url());
        let a = post(&h, &url, &auth, content_type, body).await;
        expect_zoom_refusal(label, &a);
    }
    // The caller's tokens still work.
    assert_eq!(me(&h, &base, &t.access).await.status, 200);
    h.shutdown().await;
}

#[tokio::test]
async fn tampered_or_foreign_signed_virtual_tokens_are_refused_and_change_no_grant() {
    let h = support::start().await;
    let base = gmx(&h);
    let t = authorize(&h, &base, USER).await;
    let r = t.refresh.clone().expect("refresh token");
    let versions = support::grant_versions(&h).await;
    let stats = h.sim.stats();
    for (label, bad) in [
        ("tampered refresh", tampered(&r)),
        ("foreign-signed refresh", foreign_signed(&r)),
        ("access token as refresh token", t.access.clone()),
    ] {
        let a = refresh(&h, &base, &bad).await;
        assert_eq!(a.status, 400, "{label}");
        assert_oauth_error(&a, 400, "Invalid Token!", "invalid_grant");
    }
    for (label, bad) in [
        ("tampered access", tampered(&t.access)),
        ("foreign-signed access", foreign_signed(&t.access)),
        ("refresh token as access token", r.clone()),
    ] {
        let a = me(&h, &base, &bad).await;
        assert_eq!(a.status, 401, "{label}");
        assert_401_124(&a, "Invalid access token.");
    }
    assert_eq!(support::grant_versions(&h).await, versions);
    assert_eq!(h.sim.stats(), stats, "nothing reached Zoom");
    assert_eq!(me(&h, &base, &t.access).await.status, 200);
    h.shutdown().await;
}

#[tokio::test]
async fn an_expired_virtual_access_token_gets_zooms_expired_answer_and_refresh_recovers() {
    let h = support::start().await;
    let base = gmx(&h);
    let t = authorize(&h, &base, USER).await;
    let versions = support::grant_versions(&h).await;
    let stats = h.sim.stats();
    h.clock.advance(Duration::from_secs(t.expires_in + 1));
    assert_401_124(&me(&h, &base, &t.access).await, "Access token is expired.");
    assert_eq!(support::grant_versions(&h).await, versions);
    assert_eq!(h.sim.stats(), stats, "nothing reached Zoom");
    // What the caller does next works: refresh, then call again.
    let fresh = support::tokens(&refresh(&h, &base, t.refresh.as_deref().expect("rt")).await);
    assert_eq!(me(&h, &base, &fresh.access).await.status, 200);
    h.shutdown().await;
}

#[tokio::test]
async fn an_unknown_real_refresh_token_gets_zooms_answer_and_creates_no_grant() {
    let h = support::start().await;
    let base = gmx(&h);
    let a = refresh(&h, &base, "not-a-zoom-refresh-token").await;
    assert_oauth_error(&a, 400, "Invalid Token!", "invalid_grant");
    assert!(support::grant_versions(&h).await.is_empty());
    assert_eq!(
        h.sim.stats().token_requests.refresh_token,
        1,
        "forwarded once"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn an_unknown_account_id_gets_zooms_answer_and_creates_no_grant() {
    let h = support::start().await;
    let base = gmx(&h);
    let zoom = token(
        &h,
        &h.sim.base_url(),
        &[
            ("grant_type", "account_credentials"),
            ("account_id", "nope"),
        ],
    )
    .await;
    let a = token(
        &h,
        &base,
        &[
            ("grant_type", "account_credentials"),
            ("account_id", "nope"),
        ],
    )
    .await;
    assert_eq!(a.status, zoom.status, "{}", support::text(&a));
    assert_eq!(a.json(), zoom.json());
    assert!(support::grant_versions(&h).await.is_empty());
    assert_eq!(h.sim.stats().token_requests.account_credentials, 2);
    h.shutdown().await;
}
