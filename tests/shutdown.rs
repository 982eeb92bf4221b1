//! A real `grantmux serve` process: SIGTERM lets slow in-flight requests finish, then exits 0.

use std::time::Duration;

use grantmux::sim::{Faults, Sim, SimConfig};
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

mod common;

use common::client::{http, send};
use common::process::{write_config, Grantmux};
use http::Method;

const CALLER_KEY: &str = "shutdown-test-caller-key";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_and_exits_0() {
    let sim = Sim::start(SimConfig {
        api_faults: Faults {
            latency: Duration::from_millis(1500),
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .await
    .expect("sim");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &sim.base_url(),
        r#"
[store]
backend = "memory"
[[caller]]
name = "worker"
key_env = "CALLER_KEY"
grant = { client_id = "sim-client", account_id = "sim-account" }
"#,
    );
    let mut gmx = Grantmux::start(&config, &[("CALLER_KEY", CALLER_KEY)]);
    let proxy = gmx.proxy;

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let in_flight: Vec<_> = (0..3)
        .map(|_| {
            let req = Request::get(format!("http://{proxy}/v2/users/me"))
                .header("authorization", format!("Bearer {CALLER_KEY}"))
                .body(Empty::new())
                .expect("request");
            let client = client.clone();
            tokio::spawn(async move {
                let resp = client.request(req).await.expect("answer despite SIGTERM");
                let status = resp.status();
                let body = resp.into_body().collect().await.expect("body").to_bytes();
                (status, body)
            })
        })
        .collect();
    // SIGTERM only once all three have reached Zoom and wait on its latency.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while sim.stats().api_requests < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "requests never reached the simulator"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    gmx.signal("-TERM");
    for task in in_flight {
        let (status, body) = task.await.expect("task");
        assert_eq!(status, 200, "{body:?}");
    }
    let (code, log) = tokio::task::spawn_blocking(move || gmx.wait())
        .await
        .expect("join");
    assert_eq!(code, Some(0), "exit status");
    assert!(
        log.iter().any(|l| l.contains("grantmux stopped")),
        "{log:?}"
    );
    sim.shutdown().await;
}

/// The store refuses every write (`GRANTMUX_FAILPOINT=store_save:fail`, as a
/// broken disk would): the minted token is served from memory, `/readyz/store` says
/// so, and SIGTERM ends in a non-zero exit that names the grant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_an_unsaved_grant_exits_non_zero_naming_it() {
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let config = write_config(
        dir.path(),
        &sim.base_url(),
        &format!(
            r#"
[store]
backend = "file"
path = "{}"
[[caller]]
name = "worker"
key_env = "CALLER_KEY"
grant = {{ client_id = "sim-client", account_id = "sim-account" }}
"#,
            state.display()
        ),
    );
    let gmx = Grantmux::start(
        &config,
        &[
            ("CALLER_KEY", CALLER_KEY),
            ("GRANTMUX_FAILPOINT", "store_save:fail"),
        ],
    );
    let http = http();
    let bearer = format!("Bearer {CALLER_KEY}");
    let me = format!("http://{}/v2/users/me", gmx.proxy);
    let (status, body) = send(&http, Method::GET, &me, &[("authorization", &bearer)], "")
        .await
        .expect("answer");
    assert_eq!(status, 200, "served from memory: {body:?}");
    let readyz = format!("http://{}/readyz/store", gmx.admin);
    let (status, body) = send(&http, Method::GET, &readyz, &[], "")
        .await
        .expect("readyz");
    assert_eq!(status, 503, "{body:?}");
    assert!(
        String::from_utf8_lossy(&body).contains("sim-client/account:sim-account"),
        "{body:?}"
    );

    let (code, log) = tokio::task::spawn_blocking(move || gmx.stop("-TERM"))
        .await
        .expect("join");
    assert_ne!(code, Some(0), "exit status: {log:#?}");
    assert!(code.is_some(), "it exits, not killed by a signal: {log:#?}");
    let named = log
        .iter()
        .filter(|l| l.contains("sim-client/account:sim-account"))
        .filter(|l| l.contains("could not be saved") || l.contains("STILL NOT PERSISTED"))
        .count();
    assert!(
        named >= 2,
        "the log and the exit message name the grant: {log:#?}"
    );
    sim.shutdown().await;
}
