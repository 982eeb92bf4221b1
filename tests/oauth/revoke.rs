//! `POST /oauth/revoke` by policy, a revoked binding's tokens, and
//! `GET /oauth/authorize`.

use grantmux::config::{Caller, Config, RevokePolicy};
use grantmux::grants::{GrantKey, Subject};
use grantmux::harness::{Answer, Harness};
use http::{header, Method};
use serde_json::json;

use crate::support::{
    self, assert_401_124, assert_oauth_error, authorize, basic, create_and_read, form, gmx, me,
    post, refresh, ACCOUNT, CLIENT, SECRET, USER,
};

const REPORTS_KEY: &str = "caller-key-reports-0123456789";
const BILLING_KEY: &str = "caller-key-billing-0123456789";
const S2S_KEY: &str = "caller-key-s2s-0123456789";

async fn revoke(h: &Harness, token: &str) -> Answer {
    let url = format!("{}/oauth/revoke", gmx(h));
    let body = form(&[("token", token)]);
    let auth = basic(CLIENT, SECRET);
    post(h, &url, &auth, "application/x-www-form-urlencoded", body).await
}

fn assert_revoked(a: &Answer) {
    assert_eq!(a.status, 200, "{}", support::text(a));
    assert_eq!(a.json(), json!({"status": "success"}));
}

/// The `last_binding` policy and these static callers, each `(name, key, subject)`.
fn last_binding_with(c: &mut Config, callers: &[(&str, &str, Subject)]) {
    c.apps[0].revoke_upstream = RevokePolicy::LastBinding;
    c.callers = callers
        .iter()
        .map(|(name, key, subject)| Caller {
            name: (*name).into(),
            key: (*key).into(),
            grant: GrantKey::new(CLIENT, subject.clone()),
            weight: 1,
        })
        .collect();
}

#[tokio::test]
async fn by_default_revoking_never_reaches_zoom_and_other_bindings_keep_working() {
    let h = support::start().await;
    let base = gmx(&h);
    let l = authorize(&h, &base, USER).await;
    let n = authorize(&h, &base, USER).await;
    assert_revoked(&revoke(&h, &l.access).await);
    assert_eq!(h.sim.stats().revoke_requests, 0);

    // L's tokens are dead, and stay refused without touching any grant.
    let versions = support::grant_versions(&h).await;
    let stats = h.sim.stats();
    assert_401_124(&me(&h, &base, &l.access).await, "Invalid access token.");
    let r = l.refresh.as_deref().expect("refresh token");
    assert_oauth_error(
        &refresh(&h, &base, r).await,
        400,
        "Invalid Token!",
        "invalid_grant",
    );
    // Revoking it again is answered as Zoom answers a revoke, and changes nothing.
    assert_revoked(&revoke(&h, r).await);
    assert_eq!(support::grant_versions(&h).await, versions);
    assert_eq!(h.sim.stats(), stats);

    // N keeps working; revoking the last binding still leaves Zoom alone.
    assert!(create_and_read(&h, &base, &n.access).await.is_ok());
    assert_revoked(&revoke(&h, n.refresh.as_deref().expect("refresh")).await);
    assert_eq!(h.sim.stats().revoke_requests, 0);
    assert!(h.sim.current_access_token(CLIENT, USER).is_some());
    h.shutdown().await;
}

#[tokio::test]
async fn with_last_binding_policy_revoking_the_last_binding_revokes_at_zoom() {
    let h = support::start_with(|c| c.apps[0].revoke_upstream = RevokePolicy::LastBinding).await;
    let base = gmx(&h);
    let l = authorize(&h, &base, USER).await;
    let n = authorize(&h, &base, USER).await;
    assert_revoked(&revoke(&h, &l.access).await);
    assert_eq!(h.sim.stats().revoke_requests, 0, "N still holds a binding");
    assert!(create_and_read(&h, &base, &n.access).await.is_ok());

    assert_revoked(&revoke(&h, &n.access).await);
    assert_eq!(h.sim.stats().revoke_requests, 1);
    // N revoking again (its refresh token this time) does not revoke at Zoom twice.
    assert_revoked(&revoke(&h, n.refresh.as_deref().expect("refresh")).await);
    assert_eq!(h.sim.stats().revoke_requests, 1);
    assert!(
        h.sim.current_access_token(CLIENT, USER).is_none(),
        "Zoom revoked the grant"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn with_last_binding_policy_static_callers_of_the_grant_keep_it_at_zoom() {
    let h = support::start_with(|c| {
        last_binding_with(
            c,
            &[
                ("reports", REPORTS_KEY, Subject::User(USER.into())),
                ("s2s", S2S_KEY, Subject::Account(ACCOUNT.into())),
                ("billing", BILLING_KEY, Subject::User(USER.into())),
            ],
        )
    })
    .await;
    let base = gmx(&h);
    let l = authorize(&h, &base, USER).await;

    // The last binding goes; the answer says why the grant stays, naming the
    // callers of this grant only, and never their keys.
    let a = revoke(&h, &l.access).await;
    assert_eq!(a.status, 200, "{}", support::text(&a));
    assert_eq!(
        a.json(),
        json!({
            "status": "success",
            "grant_kept_at_zoom":
                "not revoked at Zoom: 2 configured callers (reports, billing) still use this grant",
        })
    );
    assert_eq!(h.sim.stats().revoke_requests, 0);
    assert!(h.sim.current_access_token(CLIENT, USER).is_some());
    assert_401_124(&me(&h, &base, &l.access).await, "Invalid access token.");

    // The static callers' calls keep working.
    assert!(create_and_read(&h, &base, REPORTS_KEY).await.is_ok());
    assert!(create_and_read(&h, &base, BILLING_KEY).await.is_ok());
    // Revoking again changes nothing, and still leaves Zoom alone.
    assert_revoked(&revoke(&h, l.refresh.as_deref().expect("refresh")).await);
    assert_eq!(h.sim.stats().revoke_requests, 0);
    h.shutdown().await;
}

#[tokio::test]
async fn with_last_binding_policy_a_static_caller_of_another_grant_does_not_hold_this_one() {
    let h = support::start_with(|c| {
        last_binding_with(c, &[("s2s", S2S_KEY, Subject::Account(ACCOUNT.into()))])
    })
    .await;
    let base = gmx(&h);
    let l = authorize(&h, &base, USER).await;
    assert_revoked(&revoke(&h, &l.access).await);
    assert_eq!(h.sim.stats().revoke_requests, 1);
    assert!(h.sim.current_access_token(CLIENT, USER).is_none());
    h.shutdown().await;
}

#[tokio::test]
async fn authorize_redirects_to_zooms_authorize_url_with_the_query_unchanged() {
    let h = support::start().await;
    let query = "response_type=code&client_id=sim-client\
                 &redirect_uri=http%3A%2F%2Flocalhost%2Fcb&state=a%20b%2Bc&login_hint=sim-user";
    let url = h.proxy_url(&format!("/oauth/authorize?{query}"));
    let a = h.call(Method::GET, &url, &[], "").await.expect("answer");
    assert_eq!(a.status, 302);
    let location = a.headers[header::LOCATION].to_str().expect("ascii");
    assert_eq!(
        location,
        format!("{}/oauth/authorize?{query}", h.sim.base_url())
    );
    h.shutdown().await;
}
