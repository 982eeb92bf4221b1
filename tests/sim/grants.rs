//! Token lifecycles over real sockets: rotation, invalidation, expiry, re-authorization,
//! S2S coexistence and revocation (ZOOM.md §8), exact status and body.

use std::time::Duration;

use grantmux::sim::SimConfig;
use http::Method;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn refresh_rotates_and_the_old_refresh_token_is_refused_forever() {
    let f = start_default().await;
    let first = f.login("sim-user").await;
    let old = field(&first, "refresh_token");
    let second = f.refresh(&old).await;
    assert_eq!(second.status, 200);
    let new = field(&second.json(), "refresh_token");
    assert_ne!(new, old);
    assert_eq!(f.refresh(&old).await.pair(), invalid_grant());
    // Still refused after the new one rotated too.
    assert_eq!(f.refresh(&new).await.status, 200);
    assert_eq!(f.refresh(&old).await.pair(), invalid_grant());
}

#[tokio::test]
async fn refresh_kills_the_previous_access_token_by_default() {
    let f = start_default().await;
    let first = f.login("sim-user").await;
    let old_access = field(&first, "access_token");
    assert_eq!(f.api_get("/v2/users/me", &old_access).await.status, 200);
    let second = f.refresh(&field(&first, "refresh_token")).await.json();
    assert_eq!(
        f.api_get("/v2/users/me", &old_access).await.pair(),
        invalid_token()
    );
    let new_access = field(&second, "access_token");
    assert_eq!(f.api_get("/v2/users/me", &new_access).await.status, 200);
    assert_eq!(
        f.sim.current_access_token(CLIENT, "sim-user"),
        Some(new_access)
    );
}

#[tokio::test]
async fn refresh_keeps_the_previous_access_token_when_switched_off() {
    let cfg = SimConfig {
        invalidate_previous_access: false,
        ..SimConfig::default()
    };
    let f = start(cfg).await;
    let first = f.login("sim-user").await;
    let old_access = field(&first, "access_token");
    let second = f.refresh(&field(&first, "refresh_token")).await.json();
    assert_eq!(f.api_get("/v2/users/me", &old_access).await.status, 200);
    assert_eq!(
        f.api_get("/v2/users/me", &field(&second, "access_token"))
            .await
            .status,
        200
    );
    // And the runtime switch turns it back on.
    f.sim.set_invalidate_previous_access(true);
    let third = f.refresh(&field(&second, "refresh_token")).await.json();
    assert_eq!(
        f.api_get("/v2/users/me", &field(&second, "access_token"))
            .await
            .pair(),
        invalid_token()
    );
    assert_eq!(
        f.api_get("/v2/users/me", &field(&third, "access_token"))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn expired_access_token_answers_access_token_is_expired() {
    let f = start_default().await;
    let t = f.login("sim-user").await;
    let access = field(&t, "access_token");
    f.sim.set_user_token_ttl(Duration::from_secs(60));
    f.sim.clock().advance(Duration::from_secs(3599));
    let expired = json!({"code": 124, "message": "Access token is expired."});
    assert_eq!(
        f.api_get("/v2/users/me", &access).await.pair(),
        (401, expired)
    );
    // The refresh token still works, and the new TTL applies to new tokens.
    let again = f.refresh(&field(&t, "refresh_token")).await.json();
    assert_eq!(again["expires_in"], 60);
}

#[tokio::test]
async fn reauthorization_revokes_every_earlier_token_of_the_pair() {
    let f = start_default().await;
    let first = f.login("sim-user").await;
    let other_user = f.login("someone-else").await;
    let second = f.login("sim-user").await;
    assert_eq!(
        f.api_get("/v2/users/me", &field(&first, "access_token"))
            .await
            .pair(),
        invalid_token()
    );
    assert_eq!(
        f.refresh(&field(&first, "refresh_token")).await.pair(),
        invalid_grant()
    );
    assert_eq!(
        f.api_get("/v2/users/me", &field(&second, "access_token"))
            .await
            .status,
        200
    );
    // Another user's grant of the same app is untouched.
    let me = f
        .api_get("/v2/users/me", &field(&other_user, "access_token"))
        .await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["id"], "someone-else");
}

#[tokio::test]
async fn refresh_token_of_another_client_or_expired_is_invalid_grant() {
    let cfg = SimConfig {
        apps: vec![
            grantmux::sim::SimApp::default(),
            grantmux::sim::SimApp {
                client_id: "other".into(),
                client_secret: "other-secret".into(),
                public: false,
            },
        ],
        ..SimConfig::default()
    };
    let f = start(cfg).await;
    let t = f.login("sim-user").await;
    let refresh = field(&t, "refresh_token");
    let form = form(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)]);
    assert_eq!(
        f.token_as("other", "other-secret", &form).await.pair(),
        invalid_grant()
    );
    f.sim.clock().advance(Duration::from_secs(90 * 24 * 3600));
    assert_eq!(f.refresh(&refresh).await.pair(), invalid_grant());
    assert_eq!(f.refresh("garbage").await.pair(), invalid_grant());
}

#[tokio::test]
async fn s2s_tokens_coexist_by_default() {
    let f = start_default().await;
    let a = f.s2s().await.json();
    let b = f.s2s().await.json();
    assert_eq!(a["expires_in"], 3600);
    assert!(a.get("refresh_token").is_none());
    assert_eq!(
        a["scope"],
        "meeting:read:admin meeting:write:admin user:read:admin"
    );
    for t in [&a, &b] {
        let me = f.api_get("/v2/users/me", &field(t, "access_token")).await;
        assert_eq!(me.status, 200);
        assert_eq!(me.json()["id"], "sim-user", "S2S acts as the account owner");
    }
}

#[tokio::test]
async fn legacy_s2s_token_kills_the_previous_one() {
    let f = start(SimConfig {
        legacy_s2s: true,
        ..SimConfig::default()
    })
    .await;
    let a = field(&f.s2s().await.json(), "access_token");
    let b = field(&f.s2s().await.json(), "access_token");
    assert_eq!(f.api_get("/v2/users/me", &a).await.pair(), invalid_token());
    assert_eq!(f.api_get("/v2/users/me", &b).await.status, 200);
    f.sim.set_legacy_s2s(false);
    let c = field(&f.s2s().await.json(), "access_token");
    assert_eq!(f.api_get("/v2/users/me", &b).await.status, 200);
    assert_eq!(f.api_get("/v2/users/me", &c).await.status, 200);
}

#[tokio::test]
async fn unknown_account_id_is_refused() {
    let f = start_default().await;
    let expected = (
        400,
        json!({"reason": "Invalid account_id", "error": "invalid_request"}),
    );
    assert_eq!(
        f.token("grant_type=account_credentials&account_id=nope")
            .await
            .pair(),
        expected
    );
}

#[tokio::test]
async fn revoke_kills_the_whole_grant() {
    let f = start_default().await;
    let t = f.login("sim-user").await;
    let revoke = |token: String| {
        let body = form(&[("token", &token)]);
        f.request(
            Method::POST,
            "/oauth/revoke",
            Some(&basic(CLIENT, SECRET)),
            &body,
        )
    };
    let resp = f.send(revoke(field(&t, "access_token"))).await;
    assert_eq!(resp.pair(), (200, json!({"status": "success"})));
    assert_eq!(
        f.api_get("/v2/users/me", &field(&t, "access_token"))
            .await
            .pair(),
        invalid_token()
    );
    assert_eq!(
        f.refresh(&field(&t, "refresh_token")).await.pair(),
        invalid_grant()
    );
    let again = f.send(revoke(field(&t, "access_token"))).await;
    assert_eq!(
        again.pair(),
        (
            400,
            json!({"reason": "Invalid Token!", "error": "invalid_request"})
        )
    );
}

#[tokio::test]
async fn opaque_access_tokens_carry_no_claims_yet_work_like_jwts() {
    let f = start(SimConfig {
        opaque_tokens: true,
        ..SimConfig::default()
    })
    .await;
    let first = f.login("opaque-user").await;
    let access = field(&first, "access_token");
    assert!(!access.contains('.'), "not a JWT: {access}");
    let me = f.api_get("/v2/users/me", &access).await;
    assert_eq!(
        (me.status.as_u16(), field(&me.json(), "id")),
        (200, "opaque-user".into())
    );
    // Refresh tokens stay JWTs and rotate as ever; the new access token is opaque too.
    let second = f.refresh(&field(&first, "refresh_token")).await.json();
    let rotated = field(&second, "access_token");
    assert!(!rotated.contains('.'), "not a JWT: {rotated}");
    assert_eq!(
        f.api_get("/v2/users/me", &access).await.pair(),
        invalid_token()
    );
    assert_eq!(f.api_get("/v2/users/me", &rotated).await.status, 200);
    // Switched off at run time, the next token is a JWT again.
    f.sim.set_opaque_tokens(false);
    let third = f.refresh(&field(&second, "refresh_token")).await.json();
    assert_eq!(field(&third, "access_token").split('.').count(), 3);
    f.sim.set_opaque_tokens(true);
    let s2s = field(&f.s2s().await.json(), "access_token");
    assert!(!s2s.contains('.'), "S2S tokens too: {s2s}");
    assert_eq!(f.api_get("/v2/users/me", &s2s).await.status, 200);
}
