//! `rediss://`: a replica against a Redis that speaks TLS only, with a
//! certificate from a CA of the test's own, trusted through `SSL_CERT_FILE`.

use grantmux::sim::SimConfig;

use crate::support::*;

/// Everything a replica does with Redis goes over TLS: loading the grant the
/// user authorized, the lock and the write of a forced rotation (read back
/// here over TLS), and the announcement a second replica subscribes to.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replica_over_tls_authorizes_rotates_and_serves() {
    let cluster = Cluster::start_tls(SimConfig::default(), ReplicaConfig::default()).await;
    assert!(cluster.redis.url().starts_with("rediss://"));
    let (a, b) = (cluster.replica("a"), cluster.replica("b"));
    let http = &cluster.http;

    cluster.authorize(&a).await;
    let authorized = cluster.redis.stored_version(USER_GRANT);
    assert!(authorized > 0, "the authorized grant is in Redis");
    assert_eq!(a.me(http, USER_KEY).await.0, 200);

    let (status, rotated) = a.force_refresh(http, USER_GRANT).await;
    assert_eq!(status, 200, "{rotated}");
    assert_eq!(rotated["version"].as_u64(), Some(authorized + 1));
    assert_eq!(cluster.redis.stored_version(USER_GRANT), authorized + 1);
    assert_eq!(cluster.sim.stats().token_requests.refresh_token, 1);
    // B learns of the rotation from A's announcement on its TLS subscription.
    eventually("B to see the rotation", || async {
        b.version(http, USER_GRANT).await == authorized + 1
    })
    .await;
    for r in [&a, &b] {
        let (status, body) = r.me(http, USER_KEY).await;
        assert_eq!(
            status,
            200,
            "{}: {}",
            r.name,
            String::from_utf8_lossy(&body)
        );
        assert_eq!(r.readyz(http).await, 200, "{}", r.name);
        assert!(
            !r.log().iter().any(|l| l.contains(REDIS_PASSWORD)),
            "{} logged the Redis password",
            r.name
        );
    }
    assert_eq!(cluster.sim.stats().token_errors, 0);
}

/// The same replica, but not told to trust the CA: it must not talk to that
/// Redis at all. grantmux opens the store before it serves, so it exits 1,
/// naming the certificate problem without showing the URL's password. A replica
/// that is told starts against the same Redis: the trust was all that was missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replica_that_does_not_trust_the_redis_ca_does_not_start() {
    let cluster = Cluster::start_tls(SimConfig::default(), ReplicaConfig::default()).await;
    let Err((code, log)) = cluster.try_replica_without_ca("untrusting") else {
        panic!("a replica that does not trust Redis's CA started");
    };
    assert_eq!(code, Some(1), "{log:#?}");
    assert!(
        log.iter()
            .any(|l| l.contains("store unavailable") && l.contains("invalid peer certificate")),
        "no line names the certificate: {log:#?}"
    );
    assert!(
        !log.iter().any(|l| l.contains(REDIS_PASSWORD)),
        "the Redis password was printed: {log:#?}"
    );

    let trusting = cluster.replica("trusting");
    assert_eq!(trusting.readyz(&cluster.http).await, 200);
}
