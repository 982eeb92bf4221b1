//! The Redis replica unreachable (SIGSTOP) while a replica of grantmux
//! rotates the token: `WAIT 1` cannot be satisfied, so the write is not
//! durable. The token is held in memory and served, `/readyz/store` says so,
//! and the retry lands once the Redis replica is back.

use std::time::{Duration, Instant};

use grantmux::sim::SimConfig;

use crate::fleet::*;

/// 60 s tokens: only the forced refresh rotates. Callers use all three
/// replicas of grantmux throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_while_the_replica_is_frozen_is_held_until_it_acknowledges() {
    let _turn = crate::one_at_a_time().await;
    let sim = SimConfig {
        user_token_ttl: Duration::from_secs(60),
        ..SimConfig::default()
    };
    let fleet = Fleet::start(sim, 1).await;
    let replicas = fleet.replicas(3);
    let all: Vec<&Replica> = replicas.iter().collect();
    let (http, ha, a) = (&fleet.http, &fleet.ha, &replicas[0]);
    let logs = || fleet.logs(&all);
    fleet.authorize(a).await;
    let v0 = ha.primary.stored_version(USER_GRANT);
    eventually("the replica to hold the grant", logs, || async {
        ha.standby.stored_version(USER_GRANT) == v0
    })
    .await;
    let callers = Callers::start(http, &all, 4);
    callers.wait_served(100).await;

    ha.standby.freeze();
    let frozen = Instant::now();
    let (status, rotated) = a.force_refresh(http).await;
    assert_eq!(status, 200, "the new token is installed: {rotated}");
    let v1 = rotated["version"].as_u64().expect("version");
    assert!(v1 > v0);
    assert!(
        a.unpersisted(http).await,
        "no replica acknowledged the write"
    );
    assert_eq!(a.readyz_store(http).await, 503, "held in memory only");
    eventually(
        "the log to say the token was not persisted",
        logs,
        || async { a.logged("not persisted") },
    )
    .await;
    // Served from memory meanwhile, on every replica.
    callers.wait_served(300).await;
    assert_eq!(a.me(http).await, 200);
    assert_eq!(
        a.readyz_store(http).await,
        503,
        "still held while the replica is frozen"
    );

    ha.standby.thaw();
    let held = frozen.elapsed();
    let landed = eventually("the held write to be acknowledged", logs, || async {
        a.readyz_store(http).await == 200
    })
    .await;
    assert!(!a.unpersisted(http).await);
    let stored = ha.primary.stored_version(USER_GRANT);
    assert!(
        stored >= v1,
        "the primary holds v{stored}; v{v1} was rotated"
    );
    eventually(
        "the replica to hold what the primary holds",
        logs,
        || async { ha.standby.stored_version(USER_GRANT) == ha.primary.stored_version(USER_GRANT) },
    )
    .await;
    let stats = fleet.sim.stats();
    assert_eq!(stats.invalid_grant, 0, "{stats:?}");

    // Nothing lost: a replica that knows only the store refreshes with the
    // refresh token it holds, and Zoom takes it.
    let late = fleet.replica("late");
    let (status, next) = late.force_refresh(http).await;
    assert_eq!(
        status,
        200,
        "the stored refresh token is Zoom's: {next}\n{}",
        logs()
    );
    let v2 = next["version"].as_u64().expect("version");
    for r in all.iter().chain([&&late]) {
        eventually("every replica to take the new rotation", logs, || async {
            r.version(http).await >= v2 && r.readyz_store(http).await == 200
        })
        .await;
    }
    let (calls, failures) = callers.stop().await;
    let stats = fleet.sim.stats();
    println!(
        "replica frozen: the rotation was held in memory for {held:?}, written \
         {landed:?} after the replica woke; callers: {calls} served, {} failed",
        failures.len()
    );
    assert!(failures.is_empty(), "caller failures: {failures:#?}");
    assert_eq!(stats.invalid_grant, 0, "{stats:?}");
    assert_eq!(stats.token_errors, 0, "{stats:?}");
}
