//! Four replicas, one grant, load on all of them: Zoom sees one refresh per rotation.

use std::time::Duration;

use grantmux::sim::SimConfig;

use crate::support::*;

/// User grant, 2 s tokens: each replica refreshes at 70% of the lifetime (the
/// `ahead` of 5 m is capped to 30%), so every 1.4 s all four want to refresh
/// at once. The simulator kills the previous access token on every refresh, so
/// a replica still injecting the old one gets Zoom's 401 and must replay with
/// the new one, re-read from Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_replicas_one_user_grant_one_refresh_per_rotation() {
    let sim = SimConfig {
        user_token_ttl: Duration::from_secs(2),
        ..SimConfig::default()
    };
    let cluster = Cluster::start(sim, ReplicaConfig::default()).await;
    let replicas = cluster.replicas(4);
    cluster.authorize(&replicas[0]).await;
    let start = cluster.redis.stored_version(USER_GRANT);
    let refreshes_before = cluster.sim.stats().token_requests.refresh_token;

    let all: Vec<&Replica> = replicas.iter().collect();
    let load = Load::start(&cluster.http, &all, 4, USER_KEY);
    eventually("five rotations", || async {
        cluster.redis.stored_version(USER_GRANT) >= start + 5
    })
    .await;
    let (ok, failures) = load.stop().await;

    // Every refresh Zoom saw is one stored rotation: no refresh of a token
    // another replica had already rotated (that would be an invalid_grant),
    // and no second refresh of a fresh token.
    let stats = cluster.sim.stats();
    let refreshes = stats.token_requests.refresh_token - refreshes_before;
    let rotations = cluster.redis.stored_version(USER_GRANT) - start;
    println!("{ok} calls over {rotations} rotations, {refreshes} refreshes at Zoom");
    assert!(failures.is_empty(), "caller failures: {failures:#?}");
    assert_eq!(stats.token_errors, 0, "Zoom refused a refresh");
    assert_eq!(refreshes, rotations, "one refresh per rotation");
    assert!(rotations >= 5);
}

/// Server-to-Server: the grant starts unminted, then each round lets the token
/// expire everywhere and sends a burst of concurrent calls to all four. With
/// `ahead = 0s` nothing refreshes early, so each burst needs exactly one mint.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_replicas_one_s2s_grant_one_mint_per_expiry() {
    let sim = SimConfig {
        s2s_token_ttl: Duration::from_secs(1),
        ..SimConfig::default()
    };
    let replica_config = ReplicaConfig {
        ahead: "0s",
        ..ReplicaConfig::default()
    };
    let cluster = Cluster::start(sim, replica_config).await;
    let replicas = cluster.replicas(4);
    let all: Vec<&Replica> = replicas.iter().collect();
    let mut all_failures = Vec::new();
    for round in 1..=3u64 {
        // Let every replica's copy expire (the first round: none minted yet).
        for r in &replicas {
            eventually("the S2S token to expire", || async {
                r.grant(&cluster.http, S2S_GRANT)
                    .await
                    .and_then(|g| g["expires_at_ms"].as_u64())
                    .is_none_or(|exp| exp <= now_ms())
            })
            .await;
        }
        let load = Load::start(&cluster.http, &all, 8, S2S_KEY);
        let ok = load.ok.clone();
        eventually("a burst of calls", || async {
            ok.load(std::sync::atomic::Ordering::Relaxed) >= 100
        })
        .await;
        let (_, failures) = load.stop().await;
        all_failures.extend(failures);
        let mints = cluster.sim.stats().token_requests.account_credentials;
        assert_eq!(mints, round, "one mint per expiry, round {round}");
    }
    assert!(
        all_failures.is_empty(),
        "caller failures: {all_failures:#?}"
    );
}
