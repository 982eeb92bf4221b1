//! `POST /webhooks/zoom`: Zoom's signed events, over real sockets. The
//! simulator signs and sends them as Zoom does; forged ones are made here.

use std::sync::Arc;
use std::time::Duration;

use grantmux::config::{Config, NotifyTarget, WebhookTarget};

use grantmux::grants::{GrantKey, Subject};
use grantmux::harness::{Answer, Harness};
use grantmux::sim::SimConfig;
use grantmux::store::{GrantStore, MemoryStore};
use grantmux::webhooks::signature;
use http::Method;
use serde_json::{json, Value};

use super::receiver::{Received, Receiver};
use super::support::*;

const WEBHOOK_SECRET: &str = "whsec-sim-0123456789";

async fn start_with_webhooks() -> Harness {
    start_on(None, |_| {}).await
}

/// [`start_with_webhooks`] on `store` (a test that fails its writes keeps a
/// handle), with `tweak` (targets, notify URLs) applied to the config.
async fn start_on(store: Option<Arc<dyn GrantStore>>, tweak: impl FnOnce(&mut Config)) -> Harness {
    let h = Harness::start_with_store(SimConfig::default(), store, |c| {
        c.apps[0].webhook_secret = Some(WEBHOOK_SECRET.to_owned().into());
        c.webhooks.delivery.backoff_min = Duration::from_millis(50);
        c.webhooks.delivery.backoff_max = Duration::from_millis(200);
        tweak(c);
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
    let h = start_on(Some(store.clone()), |_| {}).await;
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

const NOTIFY_SECRET: &str = "notify-secret-42";
/// How long a test waits for deliveries that need no retry before it fails.
const PATIENCE: Duration = Duration::from_secs(20);

fn target(name: &str, url: &str, events: &[&str]) -> WebhookTarget {
    WebhookTarget {
        name: name.to_owned(),
        url: url.parse().expect("target url"),
        events: events.iter().map(|e| (*e).to_owned()).collect(),
        app: None,
    }
}

/// The `[[notify]]` entry "ops", posting to `url`.
fn notify_to(url: &str, events: &[&str]) -> NotifyTarget {
    NotifyTarget {
        name: "ops".into(),
        url: url.parse().expect("url"),
        events: events.iter().map(|e| (*e).to_owned()).collect(),
        secret: NOTIFY_SECRET.to_owned().into(),
    }
}

/// Whether `got` is signed, freshly, as Zoom signs with `secret`.
fn zoom_signed(got: &Received, secret: &str) -> bool {
    let ts = got.header("x-zm-request-timestamp");
    got.header("x-zm-signature") == signature::sign(secret.as_bytes(), ts, got.body.as_bytes())
}

async fn admin_json(h: &Harness, path: &str) -> Value {
    let a = h
        .call(Method::GET, &h.admin_url(path), &[], "")
        .await
        .expect("admin answers");
    assert_eq!(a.status, 200, "{}", text(&a));
    a.json()
}

#[tokio::test]
async fn one_meeting_event_reaches_every_target_that_takes_it() {
    let (billing, crm, audit) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    let urls = (
        billing.url("/zoom/events"),
        crm.url("/hooks"),
        audit.url("/uninstalls"),
    );
    let h = start_on(None, move |c| {
        c.webhooks.targets = vec![
            target("billing", &urls.0, &[]),
            target("crm", &urls.1, &["meeting.*"]),
            target("audit", &urls.2, &["app_deauthorized"]),
        ];
    })
    .await;
    let base = gmx(&h);
    let caller = authorize(&h, &base, USER).await;
    create_and_read(&h, &base, &caller.access)
        .await
        .map_err(|a| text(&a))
        .expect("meeting created");

    let one = |got: &[Received]| !got.is_empty();
    let (at_billing, at_crm) = (
        billing.wait_until(PATIENCE, one).await,
        crm.wait_until(PATIENCE, one).await,
    );
    for (name, got) in [("billing", &at_billing), ("crm", &at_crm)] {
        assert_eq!(got.len(), 1, "{name} got the event once: {got:?}");
        let event = &got[0];
        assert_eq!(event.json()["event"], "meeting.created", "{name}");
        assert!(
            zoom_signed(event, WEBHOOK_SECRET),
            "{name}: verifies with the app's secret token"
        );
        assert!(
            !event.header("x-zm-trackingid").is_empty()
                || event.header("x-grantmux-delivery").starts_with("target:"),
            "{name}"
        );
    }
    assert_eq!(
        at_billing[0].body, at_crm[0].body,
        "the body as Zoom sent it, to both"
    );
    assert_eq!(at_billing[0].path, "/zoom/events");

    // The audit target takes uninstalls only: its queue never held the meeting.
    let deliveries = admin_json(&h, "/deliveries").await;
    let queues = deliveries["queues"].as_array().expect("queues").clone();
    let audit_q = queues
        .iter()
        .find(|q| q["queue"] == "target:audit")
        .expect("audit listed");
    assert_eq!(
        (audit_q["pending"].as_u64(), audit_q["dead"].as_u64()),
        (Some(0), Some(0)),
        "{deliveries}"
    );
    assert!(audit.received().is_empty());
    // Counted once the target's answer is in, which is after it recorded the event.
    let delivered = r#"grantmux_deliveries_total{queue="target:billing",result="delivered"} 1"#;
    let mut m = metrics(&h).await;
    for _ in 0..500 {
        if m.contains(delivered) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        m = metrics(&h).await;
    }
    assert!(m.contains(delivered), "{m}");
    assert!(
        !m.contains(r#"queue="target:audit",result="delivered""#),
        "{m}"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn a_failing_target_holds_up_only_its_own_queue_and_dead_letters_after_its_tries() {
    let (hung, failing, healthy) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    hung.answer(0);
    failing.answer(503);
    let urls = (hung.url("/"), failing.url("/"), healthy.url("/"));
    let h = start_on(None, move |c| {
        c.webhooks.delivery.timeout = Duration::from_millis(300);
        c.webhooks.delivery.max_attempts = 3;
        c.webhooks.targets = vec![
            target("hung", &urls.0, &[]),
            target("failing", &urls.1, &[]),
            target("healthy", &urls.2, &[]),
        ];
    })
    .await;
    let now = h.clock.now_ms() / 1000;
    for n in 0..3 {
        let body = json!({"event": "meeting.started", "event_ts": now * 1000 + n,
            "payload": {"account_id": ACCOUNT, "object": {"id": n}}})
        .to_string();
        // Zoom's acknowledgement waits for nobody's delivery.
        let a = deliver(&h, WEBHOOK_SECRET, now, &body).await;
        assert_eq!(a.status, 200, "{}", text(&a));
    }
    let got = healthy.wait_until(PATIENCE, |g| g.len() >= 3).await;
    let order: Vec<_> = got
        .iter()
        .map(|r| r.json()["payload"]["object"]["id"].clone())
        .collect();
    assert_eq!(order, [json!(0), json!(1), json!(2)], "in order, each once");

    // The failing target gets three tries of its first event, then it is
    // dead-lettered and the next one's turn comes.
    let tried = failing.wait_until(PATIENCE, |g| g.len() >= 4).await;
    let ids: Vec<_> = tried
        .iter()
        .map(|r| r.json()["payload"]["object"]["id"].clone())
        .collect();
    assert_eq!(
        ids[..4],
        [json!(0), json!(0), json!(0), json!(1)],
        "{ids:?}"
    );
    let dead = admin_json(&h, "/deliveries/target:failing/dead").await;
    let first = &dead["dead"][0];
    assert_eq!(first["event"], "meeting.started", "{dead}");
    assert_eq!(first["attempts"], 3, "{dead}");
    assert_eq!(first["last_error"], "status 503", "{dead}");
    assert!(
        dead.to_string().find("object").is_none(),
        "admin shows no body: {dead}"
    );

    // The hung one is still on its first event, the rest queued behind it.
    let deliveries = admin_json(&h, "/deliveries").await;
    let hung_q = deliveries["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .find(|q| q["queue"] == "target:hung")
        .cloned()
        .expect("listed");
    assert!(hung_q["pending"].as_u64() >= Some(2), "{hung_q}");
    assert_eq!(hung_q["head"]["event"], "meeting.started", "{hung_q}");
    let m = metrics(&h).await;
    assert!(
        m.contains(r#"grantmux_deliveries_total{queue="target:failing",result="dead"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(r#"grantmux_delivery_queue{queue="target:failing",state="dead"}"#),
        "{m}"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn a_dead_grant_is_announced_once_and_its_recovery_too() {
    let ops = Receiver::start().await;
    let url = ops.url("/grantmux");
    let h = start_on(None, move |c| {
        c.webhooks.notify = vec![notify_to(&url, &[])];
    })
    .await;
    let base = gmx(&h);
    let caller = authorize(&h, &base, USER).await;
    // The user authorizes another app install directly at Zoom: Zoom revokes
    // the tokens grantmux holds, and its next refresh is refused.
    authorize(&h, &h.sim.base_url(), USER).await;
    let refresh_token = caller.refresh.as_deref().expect("refresh token");
    // An operator's forced refresh is the first to meet the refusal; every
    // caller after it finds the grant dead. One death, one notification.
    let id = format!("{CLIENT}%2Fuser%3A{USER}");
    let forced = h
        .call(
            Method::POST,
            &h.admin_url(&format!("/grants/{id}/refresh")),
            &[],
            "",
        )
        .await
        .expect("admin answers");
    assert!(!forced.status.is_success(), "{}", text(&forced));
    for _ in 0..3 {
        let r = refresh(&h, &base, refresh_token).await;
        assert_eq!(r.json()["error"], "invalid_grant", "{}", text(&r));
    }
    let got = ops.wait_until(PATIENCE, |g| !g.is_empty()).await;
    let dead = &got[0];
    let event = dead.json();
    assert_eq!(event["event"], "grant.dead", "{event}");
    assert_eq!(event["payload"]["client_id"], CLIENT);
    assert_eq!(event["payload"]["user_id"], USER);
    assert!(
        !dead.body.contains(refresh_token),
        "no token in a notification"
    );
    let ts = dead.header("x-grantmux-request-timestamp");
    assert_eq!(
        dead.header("x-grantmux-signature"),
        signature::sign(NOTIFY_SECRET.as_bytes(), ts, dead.body.as_bytes()),
        "signed with the notify secret"
    );

    // The user authorizes through grantmux again: one recovery.
    let again = authorize(&h, &base, USER).await;
    assert_eq!(me(&h, &base, &again.access).await.status, 200);
    let got = ops.wait_until(PATIENCE, |g| g.len() >= 2).await;
    let events: Vec<_> = got.iter().map(|r| r.json()["event"].clone()).collect();
    assert_eq!(events, ["grant.dead", "grant.reauthorized"], "one of each");
    h.shutdown().await;
}

#[tokio::test]
async fn a_late_retry_of_an_uninstall_leaves_a_newer_authorization_alone() {
    let ops = Receiver::start().await;
    let url = ops.url("/grantmux");
    let h = start_on(None, move |c| {
        c.webhooks.notify = vec![notify_to(&url, &["grant.deauthorized"])];
    })
    .await;
    let base = gmx(&h);
    authorize(&h, &base, USER).await;
    let uninstalled_at = h.clock.now_ms();
    let a = sim_control(
        &h,
        "/_sim/uninstall",
        &json!({ "client_id": CLIENT, "user_id": USER }),
    )
    .await;
    assert_eq!(a.json()["delivered_status"], 200, "{}", text(&a));
    let told = ops.wait_until(PATIENCE, |g| !g.is_empty()).await;
    assert_eq!(told[0].json()["event"], "grant.deauthorized");

    // The user installs the app again a little later; Zoom's retries come
    // minutes apart.
    h.clock.advance(Duration::from_secs(5 * 60));
    let again = authorize(&h, &base, USER).await;
    // Zoom retries the old event (its first answer was lost on the way back).
    let late = json!({"event": "app_deauthorized", "event_ts": uninstalled_at,
        "payload": {"client_id": CLIENT, "user_id": USER, "account_id": ACCOUNT}})
    .to_string();
    let a = deliver(&h, WEBHOOK_SECRET, h.clock.now_ms() / 1000, &late).await;
    assert_eq!(a.status, 200, "acknowledged: {}", text(&a));
    let api = me(&h, &base, &again.access).await;
    assert_eq!(api.status, 200, "the new grant stands: {}", text(&api));
    assert_eq!(ops.received().len(), 1, "one uninstall, one notification");
    h.shutdown().await;
}

#[tokio::test]
async fn a_rotated_token_the_store_refused_is_announced() {
    let store = Arc::new(MemoryStore::new());
    let ops = Receiver::start().await;
    let url = ops.url("/grantmux");
    let h = start_on(Some(store.clone()), move |c| {
        c.webhooks.notify = vec![notify_to(&url, &[])];
    })
    .await;
    let caller = authorize(&h, &gmx(&h), USER).await;
    store.set_fail_writes(true);
    let id = format!("{CLIENT}%2Fuser%3A{USER}");
    h.call(
        Method::POST,
        &h.admin_url(&format!("/grants/{id}/refresh")),
        &[],
        "",
    )
    .await
    .expect("admin answers");
    let got = ops.wait_until(PATIENCE, |g| !g.is_empty()).await;
    let event = got[0].json();
    assert_eq!(event["event"], "grant.unpersisted", "{event}");
    assert_eq!(event["payload"]["user_id"], USER, "{event}");
    // The token held in memory still serves the caller meanwhile.
    assert_eq!(me(&h, &gmx(&h), &caller.access).await.status, 200);
    store.set_fail_writes(false);
    h.shutdown().await;
}

#[tokio::test]
async fn a_listener_of_its_own_serves_the_endpoint_and_nothing_else() {
    let h = start_on(None, |c| {
        c.webhooks.listen = Some("127.0.0.1:0".parse().expect("addr"));
    })
    .await;
    let own = h.gmx.webhooks_addr.expect("webhooks.listen is bound");
    let target =
        json!({ "url": format!("http://{own}/webhooks/zoom"), "secret_token": WEBHOOK_SECRET });
    assert_eq!(sim_control(&h, "/_sim/webhooks", &target).await.status, 200);
    let a = sim_control(&h, "/_sim/webhooks/validate", &json!({})).await;
    assert_eq!(a.json()["valid"], true, "{}", text(&a));

    // An Ingress routed here reaches no Zoom API and no token endpoint.
    let caller = authorize(&h, &gmx(&h), USER).await;
    let api = me(&h, &format!("http://{own}"), &caller.access).await;
    assert_eq!(api.status, 404, "{}", text(&api));
    assert_eq!(api.json()["code"], 404);
    let token = refresh(
        &h,
        &format!("http://{own}"),
        caller.refresh.as_deref().expect("refresh"),
    )
    .await;
    assert_eq!(token.status, 404, "{}", text(&token));
    h.shutdown().await;
}
