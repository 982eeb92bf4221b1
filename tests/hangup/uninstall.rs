//! Zoom hangs up on its `app_deauthorized` delivery while the wipe's write is
//! in flight: the wipe, run in a task the registry owns, still lands whole.
//!
//! In process rather than a `grantmux serve`, so that the test can hold the
//! memory store's writes ([`MemoryStore::hold_writes`]) and hang up at a known
//! point of the wipe.

use std::sync::Arc;
use std::time::Duration;

use grantmux::grants::{GrantKey, Subject};
use grantmux::harness::{Answer, Harness};
use grantmux::sim::{SimConfig, DEFAULT_ACCOUNT_ID};
use grantmux::store::{GrantStore, MemoryStore};
use grantmux::webhooks::signature;
use http::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::support::{code_form, refresh_form, tokens, CLIENT, REDIRECT};

const WEBHOOK_SECRET: &str = "whsec-hangup-0123456789";
/// Bound on each wait, so that a grantmux that never gets there fails the test
/// instead of hanging it: generous for a busy 2-core machine.
const PATIENCE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zoom_hanging_up_on_an_uninstall_mid_write_leaves_the_wipe_whole() {
    const USER: &str = "uninstalled-user";
    let store = Arc::new(MemoryStore::new());
    let h = Harness::start_with_store(SimConfig::default(), Some(store.clone()), |c| {
        c.apps[0].webhook_secret = Some(WEBHOOK_SECRET.to_owned().into());
    })
    .await
    .expect("harness starts");
    let (access, refresh) = authorize(&h, USER).await;
    let api = me(&h, &access).await;
    assert_eq!(api.status, 200, "the caller, before: {}", text(&api));

    // The wipe's write waits at the hold; Zoom hangs up on the delivery then.
    let hold = store.hold_writes();
    let mut zoom = TcpStream::connect(h.gmx.proxy_addr).await.expect("connect");
    zoom.write_all(uninstall(&h, USER).as_bytes())
        .await
        .expect("delivery sent");
    within("the wipe's write to reach the hold", hold.reached()).await;
    // A half-close is a hang-up to grantmux (it cannot tell the two apart
    // until it writes); the close that answers it says grantmux has given up
    // the exchange, so the release below cannot overtake the hang-up.
    zoom.shutdown().await.expect("hang up");
    let mut answered = Vec::new();
    let read = within("grantmux to close on Zoom", zoom.read_to_end(&mut answered)).await;
    assert!(
        read.is_err() || answered.is_empty(),
        "grantmux answered while the wipe was held: {}",
        String::from_utf8_lossy(&answered)
    );
    drop(zoom);
    drop(hold);

    // A wipe run in the hung-up request's future was dropped with it; one run
    // in a task the registry owns is waited for here.
    within("the registry's tasks", h.gmx.registry.ctx().tasks.idle()).await;
    let key = GrantKey::new(CLIENT, Subject::User(USER.into()));
    let stored = store
        .load(&key)
        .await
        .expect("store reads")
        .expect("the record stays, tokenless");
    assert!(
        stored.deauthorized_at().is_some(),
        "the wipe never landed: it died with the request Zoom hung up on"
    );
    assert!(stored.access_token.is_empty(), "access token wiped");
    assert!(stored.refresh_token.is_none(), "refresh token wiped");
    assert!(
        stored.bindings.iter().all(|b| b.revoked),
        "bindings revoked"
    );

    // The caller hears what it would after any uninstall, in Zoom's shapes.
    let api = me(&h, &access).await;
    assert_eq!(api.status, 401, "{}", text(&api));
    assert_eq!(
        api.json(),
        json!({"code": 124, "message": "Invalid access token."})
    );
    let again = token(&h, &refresh_form(&refresh)).await;
    assert_eq!(again.status, 400, "{}", text(&again));
    assert_eq!(again.json()["error"], "invalid_grant", "{}", text(&again));
    h.shutdown().await;
}

/// A signed `app_deauthorized` for `user`, as raw HTTP/1.1, so that hanging up
/// is one close at a moment the test picks.
fn uninstall(h: &Harness, user: &str) -> String {
    let now_ms = h.clock.now_ms();
    let body = json!({"event": "app_deauthorized", "event_ts": now_ms,
        "payload": {"client_id": CLIENT, "user_id": user, "account_id": DEFAULT_ACCOUNT_ID}})
    .to_string();
    let ts = (now_ms / 1000).to_string();
    let sig = signature::sign(WEBHOOK_SECRET.as_bytes(), &ts, body.as_bytes());
    format!(
        "POST /webhooks/zoom HTTP/1.1\r\nhost: grantmux\r\n\
         content-type: application/json; charset=utf-8\r\nx-zm-signature: {sig}\r\n\
         x-zm-request-timestamp: {ts}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The caller's authorization through grantmux: (virtual access, virtual refresh).
async fn authorize(h: &Harness, user: &str) -> (String, String) {
    let code = h.sim.issue_code(CLIENT, user, REDIRECT);
    let a = token(h, &code_form(&code)).await;
    assert_eq!(a.status, 200, "code exchange: {}", text(&a));
    tokens(&a.json())
}

/// `POST /oauth/token` at grantmux with the app's credentials.
async fn token(h: &Harness, form: &str) -> Answer {
    let auth = crate::common::client::basic(CLIENT, crate::common::process::SECRET);
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    let url = h.proxy_url("/oauth/token");
    let a = h.call(Method::POST, &url, &headers, form.to_owned()).await;
    a.expect("grantmux answers")
}

/// `GET /v2/users/me` through grantmux.
async fn me(h: &Harness, access: &str) -> Answer {
    let bearer = format!("Bearer {access}");
    let url = h.proxy_url("/v2/users/me");
    let a = h
        .call(Method::GET, &url, &[("authorization", &bearer)], "")
        .await;
    a.expect("grantmux answers")
}

fn text(a: &Answer) -> String {
    String::from_utf8_lossy(&a.body).into_owned()
}

/// `done`, or a failure naming `what` after [`PATIENCE`].
async fn within<T>(what: &str, done: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, done)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}
