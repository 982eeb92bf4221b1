//! Redis killed under load: replicas keep serving the tokens they hold, stay
//! ready to serve (`/readyz`) while reporting the store down (`/readyz/store`),
//! and pick up where they left off once Redis is back.

use std::sync::atomic::Ordering;
use std::time::Duration;

use grantmux::sim::SimConfig;

use crate::support::*;

/// 20 s tokens outlast the outage, so callers need nothing from Redis while it
/// is down. Redis runs with an append-only file fsynced on every write, and
/// comes back on the same port and folder.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_killed_under_load_serves_cached_tokens_and_recovers() {
    let sim = SimConfig {
        user_token_ttl: Duration::from_secs(20),
        ..SimConfig::default()
    };
    let mut cluster = Cluster::start(sim, ReplicaConfig::default()).await;
    let replicas = cluster.replicas(3);
    let http = cluster.http.clone();
    cluster.authorize(&replicas[0]).await;
    let before = cluster.redis.stored_version(USER_GRANT);
    let all: Vec<&Replica> = replicas.iter().collect();
    let load = Load::start(&http, &all, 4, USER_KEY);
    let ok = load.ok.clone();
    eventually("calls before the outage", || async {
        ok.load(Ordering::Relaxed) >= 200
    })
    .await;

    cluster.redis.kill();
    for r in &replicas {
        eventually("/readyz/store to turn 503", || async {
            r.readyz_store(&http).await == 503
        })
        .await;
        // Cached tokens are valid: the replica can still serve, and in a
        // sidecar layout a 503 here would take the app's pod out of service.
        assert_eq!(r.readyz(&http).await, 200, "{} serves from memory", r.name);
    }
    let during = ok.load(Ordering::Relaxed);
    eventually("calls during the outage", || async {
        ok.load(Ordering::Relaxed) >= during + 500
    })
    .await;
    // No refresh without the lock.
    let (status, refused) = replicas[1].force_refresh(&http, USER_GRANT).await;
    assert_eq!(status, 503, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("lock")),
        "{refused}"
    );

    cluster.redis.restart();
    for r in &replicas {
        eventually("/readyz/store to turn 200", || async {
            r.readyz_store(&http).await == 200
        })
        .await;
    }
    assert_eq!(
        cluster.redis.stored_version(USER_GRANT),
        before,
        "the grant survived"
    );
    let (status, refreshed) = replicas[1].force_refresh(&http, USER_GRANT).await;
    assert_eq!(status, 200, "refreshes resume: {refreshed}");
    for r in &replicas {
        eventually("the rotation to reach every replica", || async {
            r.version(&http, USER_GRANT).await == before + 1
        })
        .await;
    }
    let (calls, failures) = load.stop().await;
    assert!(failures.is_empty(), "caller failures: {failures:#?}");
    println!("{calls} calls across the outage");

    // A replica started now finds the grant in the restarted Redis.
    let late = cluster.replica("late");
    assert_eq!(late.me(&http, USER_KEY).await.0, 200);
    assert_eq!(cluster.sim.stats().token_errors, 0);
    // Reconnect errors and all: the Redis URL's password was never logged.
    for r in replicas.iter().chain([&late]) {
        let leaked: Vec<_> = r
            .log()
            .into_iter()
            .filter(|l| l.contains(REDIS_PASSWORD))
            .collect();
        assert!(
            leaked.is_empty(),
            "{} logged the Redis password: {leaked:#?}",
            r.name
        );
    }
}

/// Redis goes away between Zoom's answer and the write: the rotated token is
/// held in memory (served, and reported by `/readyz/store`), written once Redis is
/// back, and a replica started afterwards refreshes with it: nothing was lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_lost_between_zoom_and_the_write_holds_the_token_until_it_is_back() {
    let sim = SimConfig {
        user_token_ttl: Duration::from_secs(60),
        ..SimConfig::default()
    };
    let mut cluster = Cluster::start(sim, ReplicaConfig::default()).await;
    let a = cluster.replica_with("a", Some("after_zoom:stop"));
    let http = cluster.http.clone();
    cluster.authorize(&a).await;
    let before = cluster.redis.stored_version(USER_GRANT);
    let refresh = {
        let url = format!("http://{}/grants/{USER_GRANT}/refresh", a.admin);
        let http = http.clone();
        tokio::spawn(async move { send(&http, http::Method::POST, &url, &[], "").await })
    };
    a.wait_stopped();
    cluster.redis.kill();
    a.resume();
    let (status, answer) = refresh.await.expect("joined").expect("admin answers");
    assert_eq!(status, 200, "the new token is installed: {answer:?}");
    assert_eq!(a.readyz_store(&http).await, 503, "held in memory only");
    assert_eq!(a.readyz(&http).await, 200, "and the replica can serve");
    assert_eq!(a.me(&http, USER_KEY).await.0, 200, "and served from memory");

    cluster.redis.restart();
    eventually("/readyz/store to turn 200", || async {
        a.readyz_store(&http).await == 200
    })
    .await;
    assert!(
        cluster.redis.stored_version(USER_GRANT) > before,
        "the rotated token was written"
    );
    drop(a);
    let b = cluster.replica("b");
    let (status, refreshed) = b.force_refresh(&http, USER_GRANT).await;
    assert_eq!(
        status, 200,
        "the stored refresh token is Zoom's: {refreshed}"
    );
    assert_eq!(cluster.sim.stats().invalid_grant, 0);
    assert_eq!(b.me(&http, USER_KEY).await.0, 200);
}
