//! Webhooks with real processes on a file store: fan-out across a target's
//! outage and a `kill -9` of grantmux (every event Zoom was told "200" for
//! reaches the target, once, in order), and an uninstall that leaves no sealed
//! token in the file.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use grantmux::sim::{Sim, SimConfig};
use grantmux::webhooks::signature;
use http::Method;
use serde_json::json;

use crate::common::receiver::Receiver;
use crate::process::{write_config_with, Grantmux, CLIENT};
use crate::support::{
    admin_json, authorize, call, http, me, point_zoom_at, refresh, sealed_record,
    uninstall_at_zoom, Http,
};

const WEBHOOK_SECRET: &str = "whsec-durable-0123";
/// How long the target stays unreachable.
const OUTAGE: Duration = Duration::from_secs(30);
const EVENTS_PER_LIFE: u64 = 5;

/// Sends Zoom's signed `meeting.started` number `n` to grantmux's endpoint.
async fn zoom_sends(http: &Http, proxy: std::net::SocketAddr, n: u64) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("time");
    let body = json!({"event": "meeting.started", "event_ts": now.as_millis() as u64,
        "payload": {"account_id": "acct-1", "object": {"id": n}}})
    .to_string();
    let ts = now.as_secs().to_string();
    let sig = signature::sign(WEBHOOK_SECRET.as_bytes(), &ts, body.as_bytes());
    let (status, answer) = call(
        http,
        Method::POST,
        &format!("http://{proxy}/webhooks/zoom"),
        &[
            ("content-type", "application/json"),
            ("x-zm-signature", &sig),
            ("x-zm-request-timestamp", &ts),
            ("x-zm-trackingid", &format!("track-{n}")),
        ],
        &body,
    )
    .await
    .expect("grantmux answers");
    assert_eq!(status, 200, "event {n}: {answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_down_for_30s_gets_every_event_in_order_across_a_kill_9() {
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let dir = tempfile::tempdir().expect("tempdir");
    // A port for the target, free while it is down.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let config = write_config_with(
        dir.path(),
        &sim,
        &format!(
            r#"
[webhooks]
backoff_min = "100ms"
backoff_max = "2s"
[[webhook_target]]
name = "billing"
url = "http://{port}/zoom/events"
"#
        ),
        "webhook_secret_env = \"ZOOM_WEBHOOK_SECRET\"",
    );
    let env = [("ZOOM_WEBHOOK_SECRET", WEBHOOK_SECRET)];
    let http = http();
    let down_since = Instant::now();

    let gmx = Grantmux::start(&config, &env);
    let acking = Instant::now();
    for n in 0..EVENTS_PER_LIFE {
        zoom_sends(&http, gmx.proxy, n).await;
    }
    let per_ack = acking.elapsed() / EVENTS_PER_LIFE as u32;
    let (code, _) = gmx.stop("-KILL");
    assert_eq!(code, None, "killed");
    let gmx = Grantmux::start(&config, &env);
    for n in EVENTS_PER_LIFE..2 * EVENTS_PER_LIFE {
        zoom_sends(&http, gmx.proxy, n).await;
    }
    let queued = admin_json(&http, gmx.admin, "/deliveries").await;
    let billing = &queued["queues"][0];
    assert_eq!(billing["queue"], "target:billing", "{queued}");
    assert_eq!(
        billing["pending"],
        2 * EVENTS_PER_LIFE,
        "nothing lost to kill -9: {queued}"
    );

    // The target comes back after its outage.
    if let Some(rest) = OUTAGE.checked_sub(down_since.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let waiting = admin_json(&http, gmx.admin, "/deliveries").await;
    assert!(
        waiting["queues"][0]["head"]["attempts"].as_u64() > Some(0),
        "it was being tried meanwhile: {waiting}"
    );
    let target = Receiver::start_on(port).await;
    let up = Instant::now();
    let all = (2 * EVENTS_PER_LIFE) as usize;
    let got = target
        .wait_until(Duration::from_secs(30), |g| g.len() >= all)
        .await;
    let drained = up.elapsed();
    let order: Vec<_> = got
        .iter()
        .map(|r| r.json()["payload"]["object"]["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(
        order,
        (0..2 * EVENTS_PER_LIFE).collect::<Vec<_>>(),
        "every event, once, in order"
    );
    for r in &got {
        let ts = r.header("x-zm-request-timestamp");
        assert_eq!(
            r.header("x-zm-signature"),
            signature::sign(WEBHOOK_SECRET.as_bytes(), ts, r.body.as_bytes()),
            "verifies with the app's secret token"
        );
        assert!(
            r.header("x-zm-trackingid").starts_with("track-"),
            "Zoom's headers kept"
        );
        assert!(r
            .header("x-grantmux-delivery")
            .starts_with("target:billing/"));
    }
    println!(
        "delivery: {all} events queued over a {OUTAGE:?} outage and a kill -9 reached the target {drained:?} after it came back; Zoom's 200 took {per_ack:?} per event (queued and fsynced first)"
    );
    // The target answers after it has recorded the request; the courier
    // removes a message once it has the answer.
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let after = admin_json(&http, gmx.admin, "/deliveries").await;
        if after["queues"][0]["pending"] == 0 || Instant::now() > deadline {
            break after;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(after["queues"][0]["pending"], 0, "{after}");
    assert_eq!(after["queues"][0]["dead"], 0, "{after}");
    gmx.stop("-TERM");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uninstall_leaves_no_sealed_token_in_the_file_and_a_new_install_works() {
    const USER: &str = "uninstalling-user";
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config_with(
        dir.path(),
        &sim,
        "",
        "webhook_secret_env = \"ZOOM_WEBHOOK_SECRET\"",
    );
    let env = [("ZOOM_WEBHOOK_SECRET", WEBHOOK_SECRET)];
    let http = http();
    let gmx = Grantmux::start(&config, &env);
    let (access, refresh_token) = authorize(&http, &sim, gmx.proxy, USER).await;
    gmx.stop("-TERM");
    let state = dir.path().join("state");
    let sealed = sealed_record(&state, &format!("{CLIENT}/user:{USER}"));

    let gmx = Grantmux::start(&config, &env);
    point_zoom_at(&http, &sim, gmx.proxy, WEBHOOK_SECRET).await;
    let delivered = uninstall_at_zoom(&http, &sim, USER).await;
    assert_eq!(delivered, json!(200), "Zoom's delivery answered");

    // Zoom got its 200 only after the wipe: the file holds no copy of the
    // sealed record any more, not even in a freed page.
    let file = std::fs::read(state.join("grants.redb")).expect("read the file");
    assert!(
        !file.windows(sealed.len()).any(|w| w == sealed.as_slice()),
        "grants.redb still holds the uninstalled grant's sealed record"
    );
    let (status, _) = me(&http, gmx.proxy, &access).await.expect("answer");
    assert_eq!(status, 401, "callers get Zoom's 401");
    let (status, body) = refresh(&http, gmx.proxy, &refresh_token)
        .await
        .expect("answer");
    assert_eq!(
        (status.as_u16(), &body["error"]),
        (400, &json!("invalid_grant")),
        "{body}"
    );

    let (again, _) = authorize(&http, &sim, gmx.proxy, USER).await;
    let (status, body) = me(&http, gmx.proxy, &again).await.expect("answer");
    assert_eq!(status, 200, "a new install works: {body}");
    gmx.stop("-TERM");
    sim.shutdown().await;
}
