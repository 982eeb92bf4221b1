//! The loss `min_replicas_acked` prevents. The Redis replica is partitioned
//! (frozen, its link cut), a replica of grantmux rotates the token, the
//! primary takes the write and is killed at once, and Sentinel promotes the
//! replica, which never had the write.
//!
//! With `min_replicas_acked = 0` the primary's OK made the write durable in
//! grantmux's eyes: nothing retries it, the new primary holds the old refresh
//! token, and the next refresh made from the store gets `invalid_grant`.
//! With `min_replicas_acked = 1` the write was never acknowledged: the token
//! stays in memory, serves, is written to the new primary, and counts as
//! durable once the new primary has a replica again.

use std::time::{Duration, Instant};

use grantmux::sim::SimConfig;

use crate::fleet::*;

/// Everything after the failover: the fleet, its replicas (`[0]` rotated),
/// the callers, the versions before and after the rotation and the one the
/// promoted replica had, when the primary was killed and how long Sentinel took.
struct Lost {
    fleet: Fleet,
    replicas: Vec<Replica>,
    callers: Callers,
    v0: u64,
    v1: u64,
    /// The version the replica held when Sentinel promoted it.
    promoted_with: u64,
    killed: Instant,
    promoted: Duration,
}

/// Without acknowledgements the rotation the primary took is gone after the
/// failover, and the refresh token the store holds is one Zoom has already
/// rotated away: the next refresh made from it (a replica started now, or
/// one of the running ones whose access token Zoom killed with the rotation)
/// gets `invalid_grant`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_acks_a_failover_loses_a_rotation_the_primary_acknowledged() {
    let _turn = crate::one_at_a_time().await;
    let lost = rotate_then_lose_the_primary(0).await;
    let (fleet, replicas) = (&lost.fleet, &lost.replicas);
    let (http, ha) = (&fleet.http, &fleet.ha);
    let kept = lost.promoted_with;
    assert_eq!(
        kept, lost.v0,
        "the new primary lacks v{}: it holds v{kept}",
        lost.v1
    );
    assert!(
        !replicas[0].unpersisted(http).await,
        "min_replicas_acked = 0: the primary's OK made the write durable, so nothing retries it"
    );
    let all: Vec<&Replica> = replicas.iter().collect();
    eventually(
        "every replica to subscribe on the new primary",
        || fleet.logs(&all),
        || async { ha.standby.subscribers(CHANGES) >= 3 },
    )
    .await;

    // A replica that starts now (a restart, a new pod) has only the store's copy.
    let late = fleet.replica("late");
    let (status, answer) = late.force_refresh(http).await;
    let stats = fleet.sim.stats();
    let (calls, failures) = lost.callers.stop().await;
    println!(
        "min_replicas_acked = 0: Sentinel promoted the replica after {:?}; it holds v{kept}, \
         not v{}; a replica started from it refreshed: {status} {answer}; Zoom: {stats:?}; \
         callers: {calls} served, {}",
        lost.promoted,
        lost.v1,
        Failure::window(&failures, lost.killed)
    );
    assert!(
        stats.invalid_grant > 0,
        "Zoom refused the store's refresh token: {stats:?}\n{}",
        fleet.logs(&[&late])
    );
    assert_ne!(status, 200, "the grant is lost: {answer}");
}

/// The same steps with `min_replicas_acked = 1` lose nothing: the token is
/// held in memory (not durable: no replica has it) and serves, is written to
/// the new primary, and is durable once that has a replica (the crashed
/// node, restarted). Zoom never sees a stale refresh token. Callers of the
/// replica holding the token are served throughout; the others' access token
/// died with the rotation, so they fail until the held token reaches the new
/// primary, and not after.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_one_ack_the_same_failover_loses_nothing() {
    let _turn = crate::one_at_a_time().await;
    let Lost {
        mut fleet,
        replicas,
        callers,
        v0,
        v1,
        promoted_with,
        killed,
        promoted,
    } = rotate_then_lose_the_primary(1).await;
    let http = fleet.http.clone();
    let all: Vec<&Replica> = replicas.iter().collect();
    let a = &replicas[0];
    assert_eq!(
        promoted_with, v0,
        "the promoted replica lacks the rotation here too"
    );
    assert!(
        a.unpersisted(&http).await,
        "no replica acknowledged the write"
    );
    assert_eq!(a.readyz_store(&http).await, 503, "held in memory only");
    eventually(
        "every replica to subscribe on the new primary",
        || fleet.logs(&all),
        || async { fleet.ha.standby.subscribers(CHANGES) >= 3 },
    )
    .await;
    // The retry writes the held token to the new primary; with no replica
    // there to acknowledge it, it is still not durable.
    eventually(
        "the held rotation to reach the new primary",
        || fleet.logs(&all),
        || async { fleet.ha.standby.stored_version(USER_GRANT) >= v1 },
    )
    .await;
    let reached = killed.elapsed();
    for r in &replicas {
        eventually(
            "every replica to serve",
            || fleet.logs(&all),
            || async { r.me(&http).await == 200 },
        )
        .await;
    }
    let serving_at = Instant::now();
    assert!(a.unpersisted(&http).await, "the new primary has no replica");
    assert_eq!(a.readyz_store(&http).await, 503);
    callers.wait_served(300).await;

    let new = fleet.ha.standby.port;
    fleet.ha.primary.restart_as_replica_of(new);
    let back = Instant::now();
    for r in &replicas {
        eventually(
            "/readyz/store to turn 200",
            || fleet.logs(&all),
            || async { r.readyz_store(&http).await == 200 },
        )
        .await;
    }
    let durable = back.elapsed();
    assert!(!a.unpersisted(&http).await);

    // A replica that knows only the store refreshes with Zoom's current token.
    let late = fleet.replica("late");
    let (status, answer) = late.force_refresh(&http).await;
    let (calls, failures) = callers.stop().await;
    let stats = fleet.sim.stats();
    println!(
        "min_replicas_acked = 1: Sentinel promoted the replica after {promoted:?}; the held \
         rotation reached the new primary {reached:?} after the kill and was durable \
         {durable:?} after the new primary got a replica; callers: {calls} served, {}; a \
         replica started from the store refreshed: {status}; Zoom: {stats:?}",
        Failure::window(&failures, killed)
    );
    assert_eq!(
        status,
        200,
        "the stored refresh token is Zoom's: {answer}\n{}",
        fleet.logs(&all)
    );
    let holder: Vec<_> = failures.iter().filter(|f| f.replica == a.name).collect();
    assert!(
        holder.is_empty(),
        "callers of the token's holder failed: {holder:#?}"
    );
    let late_failures: Vec<_> = failures.iter().filter(|f| f.sent > serving_at).collect();
    assert!(
        late_failures.is_empty(),
        "failures once all served: {late_failures:#?}"
    );
    let declared_dead: Vec<&str> = replicas
        .iter()
        .filter(|r| r.logged("grant is dead"))
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(
        stats.invalid_grant,
        0,
        "Zoom saw a stale refresh token (replicas that declared the grant dead: \
         {declared_dead:?}): {stats:?}\n{}",
        fleet.logs(&all)
    );
    assert_eq!(stats.token_errors, 0, "{stats:?}");
}

/// 60 s tokens (only the forced refresh rotates), callers on all three
/// replicas of grantmux. The Redis replica is partitioned, `[0]`'s forced
/// refresh rotates the token at Zoom, and the moment the primary holds the
/// new version it is killed; the replica is thawed at once (frozen for so
/// short a time, Sentinel never calls it down) and promoted.
async fn rotate_then_lose_the_primary(min_acked: u32) -> Lost {
    let sim = SimConfig {
        user_token_ttl: Duration::from_secs(60),
        ..SimConfig::default()
    };
    let mut fleet = Fleet::start(sim, min_acked).await;
    let replicas = fleet.replicas(3);
    let all: Vec<&Replica> = replicas.iter().collect();
    let http = fleet.http.clone();
    fleet.authorize(&replicas[0]).await;
    let v0 = fleet.ha.primary.stored_version(USER_GRANT);
    eventually(
        "the replica to hold the grant",
        || fleet.logs(&all),
        || async { fleet.ha.standby.stored_version(USER_GRANT) == v0 },
    )
    .await;
    let callers = Callers::start(&http, &all, 4);
    callers.wait_served(100).await;

    assert_eq!(fleet.sim.stats().invalid_grant, 0);
    fleet.ha.partition_standby();
    let refresh = replicas[0].spawn_force_refresh(&http);
    eventually(
        "the rotation to reach the primary",
        || fleet.logs(&all),
        || async { fleet.ha.primary.stored_version(USER_GRANT) > v0 },
    )
    .await;
    let v1 = fleet.ha.primary.stored_version(USER_GRANT);
    let killed = Instant::now();
    fleet.ha.primary.kill();
    fleet.ha.standby.thaw();
    // Read before Sentinel promotes it: a replica of a dead primary, it can
    // take no write, so this is what the new primary starts with.
    let promoted_with = fleet.ha.standby.stored_version(USER_GRANT);
    let (status, body) = refresh.await.expect("joined").expect("admin answers");
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 200, "the new token is installed: {body}");
    let old = fleet.ha.primary.port;
    let (new, promoted) =
        tokio::task::block_in_place(|| fleet.ha.wait_for_new_primary(old, killed));
    assert_eq!(new, fleet.ha.standby.port, "Sentinel promoted the replica");
    drop(all);
    Lost {
        fleet,
        replicas,
        callers,
        v0,
        v1,
        promoted_with,
        killed,
        promoted,
    }
}
