//! How long a replica takes to serve a rotation made by another: the figure in
//! the README. Printed, not asserted (timing depends on the machine).

use std::time::{Duration, Instant};

use grantmux::sim::SimConfig;

use crate::support::*;

const RUNS: usize = 30;

/// Replica A rotates (`POST /grants/{id}/refresh`, which answers once the new
/// token is stored and announced); the clock runs from A's answer until B's
/// `/grants` shows the new version, polled every 0.1 ms (plus the time one
/// look takes), which bounds the resolution. Admin forces one refresh per grant
/// per 5 s, so each run rotates a grant of its own (one user each).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_pickup_latency() {
    let sim = SimConfig {
        user_token_ttl: Duration::from_secs(600),
        ..SimConfig::default()
    };
    let cluster = Cluster::start(sim, ReplicaConfig::default()).await;
    let (a, b) = (cluster.replica("a"), cluster.replica("b"));
    let http = &cluster.http;
    let grants: Vec<String> = (0..RUNS)
        .map(|i| format!("{CLIENT}/user:pickup-{i}"))
        .collect();
    for i in 0..RUNS {
        cluster.authorize_user(&a, &format!("pickup-{i}")).await;
    }
    for grant in &grants {
        eventually("B to load the grant", || async {
            b.version(http, grant).await > 0
        })
        .await;
    }
    let mut lags = Vec::with_capacity(RUNS);
    for grant in &grants {
        let (status, answer) = a.force_refresh(http, grant).await;
        assert_eq!(status, 200, "{answer}");
        let rotated = Instant::now();
        let version = answer["version"].as_u64().expect("version");
        // A tight loop, not `eventually`: its 5 ms pause would be the figure.
        while b.version(http, grant).await < version {
            assert!(
                rotated.elapsed() < Duration::from_secs(10),
                "B never saw {version}"
            );
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
        lags.push(rotated.elapsed());
    }
    lags.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "rotation pickup over {RUNS} runs: median {:.2} ms, p90 {:.2} ms, max {:.2} ms",
        ms(lags[RUNS / 2]),
        ms(lags[RUNS * 9 / 10]),
        ms(lags[RUNS - 1])
    );
}
