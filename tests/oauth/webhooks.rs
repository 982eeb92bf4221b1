//! `POST /webhooks/zoom`: Zoom's signed events, over real sockets. The
//! simulator signs and sends them as Zoom does; forged ones are made here.

use std::sync::Arc;

use grantmux::grants::{GrantKey, Subject};
use grantmux::harness::{Answer, Harness};
use grantmux::sim::SimConfig;
use grantmux::store::{GrantStore, MemoryStore};
use grantmux::webhooks::signature;
use http::Method;
use serde_json::{json, Value};

use super::support::*;

const WEBHOOK_SECRET: &str = "whsec-sim-0123456789";

async fn start_with_webhooks() -> Harness {
    start_on(None).await
}

/// [`start_with_webhooks`] on `store` (a test that fails its writes keeps a handle).
async fn start_on(store: Option<Arc<dyn GrantStore>>) -> Harness {
    let h = Harness::start_with_store(SimConfig::default(), store, |c| {
        c.apps[0].webhook_secret = Some(WEBHOOK_SECRET.to_owned().into());
    })
    .await
    .expect("harness starts");
    let target = json!({ "url": h.proxy_url("/webhooks/zoom"), "secret_token": WEBHOOK_SECRET });
    let a = sim_control(&h, "/_sim/webhooks", &target).await;
    assert_eq!(a.status, 200, "{}", text(&a));
    h
}

fn user_key() -> GrantKey {
    GrantKey::new(CLIENT, Subject::User(USER.into()))
}

async fn sim_control(h: &Harness, path: &str, body: &Value) -> Answer {
    h.call(
        Method::POST,
        &format!("{}{path}", h.sim.base_url()),
        &[("content-type", "application/json")],
        body.to_string(),
    )
    .await
    .expect("the simulator answers")
}

/// The Prometheus text from the admin listener.
async fn metrics(h: &Harness) -> String {
    let a = h
        .call(Method::GET, &h.admin_url("/metrics"), &[], "")
        .await
        .expect("admin answers");
    text(&a)
}

/// `body` sent to grantmux's endpoint, signed with `secret` at `ts` (seconds).
async fn deliver(h: &Harness, secret: &str, ts: u64, body: &str) -> Answer {
    let ts = ts.to_string();
    let sig = signature::sign(secret.as_bytes(), &ts, body.as_bytes());
    h.call(
        Method::POST,
        &h.proxy_url("/webhooks/zoom"),
        &[
            ("content-type", "application/json; charset=utf-8"),
            ("x-zm-signature", &sig),
            ("x-zm-request-timestamp", &ts),
        ],
        body.to_owned(),
    )
    .await
    .expect("grantmux answers")
}

#[tokio::test]
async fn zoom_url_validation_challenge_is_answered() {
    let h = start_with_webhooks().await;
    let a = sim_control(&h, "/_sim/webhooks/validate", &json!({})).await;
    assert_eq!(a.status, 200, "{}", text(&a));
    assert_eq!(a.json()["valid"], true, "{}", text(&a));
    h.shutdown().await;
}

#[tokio::test]
async fn forged_or_stale_signatures_are_refused_with_401() {
    let h = start_with_webhooks().await;
    let now = h.clock.now_ms() / 1000;
    let body = json!({"event": "app_deauthorized", "event_ts": now * 1000,
        "payload": {"client_id": CLIENT, "user_id": USER, "account_id": ACCOUNT}})
    .to_string();
    let caller = authorize(&h, &gmx(&h), USER).await;

    let forged = deliver(&h, "not-the-secret", now, &body).await;
    assert_eq!(forged.status, 401, "{}", text(&forged));
    assert_eq!(forged.json()["code"], 401);
    let stale = deliver(&h, WEBHOOK_SECRET, now - 6 * 60, &body).await;
    assert_eq!(stale.status, 401, "{}", text(&stale));
    let unsigned = h
        .call(
            Method::POST,
            &h.proxy_url("/webhooks/zoom"),
            &[],
            body.clone(),
        )
        .await
        .expect("grantmux answers");
    assert_eq!(unsigned.status, 401);

    // None of them acted: the caller's grant still works.
    let me_ = me(&h, &gmx(&h), &caller.access).await;
    assert_eq!(me_.status, 200, "{}", text(&me_));
    // A signature made with the app's secret, in time, is taken.
    let good = deliver(&h, WEBHOOK_SECRET, now, &body).await;
    assert_eq!(good.status, 200, "{}", text(&good));
    h.shutdown().await;
}

#[tokio::test]
async fn an_uninstall_wipes_the_grant_and_a_new_authorization_starts_clean() {
    let h = start_with_webhooks().await;
    let base = gmx(&h);
    let first = authorize(&h, &base, USER).await;
    let second = authorize(&h, &base, USER).await;
    assert_eq!(me(&h, &base, &first.access).await.status, 200);

    let a = sim_control(
        &h,
        "/_sim/uninstall",
        &json!({ "client_id": CLIENT, "user_id": USER }),
    )
    .await;
    assert_eq!(a.status, 200, "{}", text(&a));
    assert_eq!(a.json()["delivered_status"], 200, "{}", text(&a));

    // The store holds no token of the grant any more.
    let stored = h
        .gmx
        .registry
        .ctx()
        .store
        .load(&user_key())
        .await
        .expect("store reads")
        .expect("the record stays, tokenless");
    assert!(stored.access_token.is_empty(), "access token wiped");
    assert!(stored.refresh_token.is_none(), "refresh token wiped");
    assert!(
        stored.bindings.iter().all(|b| b.revoked),
        "every binding revoked"
    );
    assert!(stored.deauthorized_at().is_some());

    // Every caller gets what Zoom would answer: 401 on the API, invalid_grant on refresh.
    for caller in [&first, &second] {
        let api = me(&h, &base, &caller.access).await;
        assert_eq!(api.status, 401, "{}", text(&api));
        let r = refresh(&h, &base, caller.refresh.as_deref().expect("refresh token")).await;
        assert_eq!(r.status, 400, "{}", text(&r));
        assert_eq!(r.json()["error"], "invalid_grant", "{}", text(&r));
    }

    // /grants records it, and the metric counts it.
    let grants = h
        .call(Method::GET, &h.admin_url("/grants"), &[], "")
        .await
        .expect("admin answers");
    let listed = grants.json();
    let user = listed["grants"]
        .as_array()
        .expect("a list of grants")
        .iter()
        .find(|g| g["subject"].as_str().is_some_and(|s| s.contains(USER)))
        .cloned()
        .expect("the user's grant is listed");
    assert_eq!(user["state"], "deauthorized", "{user}");
    assert!(user["deauthorized_at_ms"].as_u64().is_some(), "{user}");
    let metrics = metrics(&h).await;
    assert!(
        metrics.contains("grantmux_grants_deauthorized_total 1"),
        "{metrics}"
    );

    // The user installs the app again: a fresh authorization works, the old tokens stay dead.
    let again = authorize(&h, &base, USER).await;
    let api = me(&h, &base, &again.access).await;
    assert_eq!(api.status, 200, "{}", text(&api));
    assert_eq!(me(&h, &base, &first.access).await.status, 401);
    h.shutdown().await;
}

#[tokio::test]
async fn a_meeting_created_through_grantmux_comes_back_as_a_verified_event() {
    let h = start_with_webhooks().await;
    let base = gmx(&h);
    let caller = authorize(&h, &base, USER).await;
    create_and_read(&h, &base, &caller.access)
        .await
        .map_err(|a| text(&a))
        .expect("meeting created");
    // The simulator sends `meeting.created` after its 201, on its own task:
    // wait (bounded) until grantmux has verified and acknowledged it.
    let accepted = r#"grantmux_webhooks_total{result="accepted"} 1"#;
    let mut seen = String::new();
    for _ in 0..100 {
        seen = metrics(&h).await;
        if seen.contains(accepted) {
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(seen.contains(accepted), "{seen}");
    assert!(!seen.contains(r#"result="refused""#), "{seen}");
    h.shutdown().await;
}

#[tokio::test]
async fn an_uninstall_the_store_cannot_take_is_refused_so_zoom_delivers_again() {
    let store = Arc::new(MemoryStore::new());
    let h = start_on(Some(store.clone())).await;
    let caller = authorize(&h, &gmx(&h), USER).await;
    let now = h.clock.now_ms() / 1000;
    let body = json!({"event": "app_deauthorized", "event_ts": now * 1000,
        "payload": {"client_id": CLIENT, "user_id": USER, "account_id": ACCOUNT}})
    .to_string();

    store.set_fail_writes(true);
    let refused = deliver(&h, WEBHOOK_SECRET, now, &body).await;
    assert!(refused.status.is_server_error(), "{}", text(&refused));
    // Not acknowledged, not acted on: the binding still stands.
    store.set_fail_writes(false);
    let kept = store
        .load(&user_key())
        .await
        .expect("reads")
        .expect("stored");
    assert!(kept.deauthorized_at().is_none());
    assert!(kept.bindings.iter().any(|b| !b.revoked));
    assert!(metrics(&h)
        .await
        .contains(r#"grantmux_webhooks_total{result="failed"} 1"#));

    // Zoom's retry lands once the store is back.
    let retried = deliver(&h, WEBHOOK_SECRET, now, &body).await;
    assert_eq!(retried.status, 200, "{}", text(&retried));
    let wiped = store
        .load(&user_key())
        .await
        .expect("reads")
        .expect("stored");
    assert!(wiped.deauthorized_at().is_some());
    assert!(wiped.access_token.is_empty() && wiped.refresh_token.is_none());
    let api = me(&h, &gmx(&h), &caller.access).await;
    assert_eq!(api.status, 401, "{}", text(&api));
    h.shutdown().await;
}
