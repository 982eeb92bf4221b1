//! `kill -9` of the Redis primary right after a rotation, under load: Sentinel
//! promotes the replica, every grantmux replica follows, the rotation is on
//! the new primary, and callers fail only within the failover window, which
//! the test measures and prints.
//!
//! Some do fail there: the simulator kills the previous access token when
//! the token rotates, and the replicas that did not rotate it re-read the new
//! one from Redis, which is gone until they follow the failover. The replica
//! that rotated holds the new token and serves throughout.

use std::time::{Duration, Instant};

use grantmux::sim::SimConfig;

use crate::fleet::*;

/// 6 s tokens: each replica wants a refresh 4.2 s into one (70%), so
/// rotations go on under load before and after the failover, and a token
/// taken just before the kill outlives the failover (about 2 to 3 s).
/// `min_replicas_acked = 1`: the forced refresh answers once the replica
/// holds the rotation, and the primary dies at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn primary_killed_right_after_a_rotation_keeps_it_and_callers_are_served() {
    let _turn = crate::one_at_a_time().await;
    let sim = SimConfig {
        user_token_ttl: Duration::from_secs(6),
        ..SimConfig::default()
    };
    let mut fleet = Fleet::start(sim, 1).await;
    let replicas = fleet.replicas(3);
    let all: Vec<&Replica> = replicas.iter().collect();
    let http = fleet.http.clone();
    fleet.authorize(&replicas[0]).await;
    let v0 = fleet.ha.primary.stored_version(USER_GRANT);
    let callers = Callers::start(&http, &all, 4);
    // A rotation of their own under load, taken in by every replica, so that
    // the forced refresh below is one Zoom sees.
    let refreshes = || fleet.sim.stats().token_requests.refresh_token;
    eventually(
        "a rotation under load before the fault, on every replica",
        || fleet.logs(&all),
        || async {
            let stored = fleet.ha.primary.stored_version(USER_GRANT);
            let mut everywhere = refreshes() >= 1 && stored > v0;
            for r in &replicas {
                everywhere = everywhere && r.version(&http).await >= stored;
            }
            everywhere
        },
    )
    .await;

    let (status, rotated) = replicas[1].force_refresh(&http).await;
    assert_eq!(status, 200, "forced refresh: {rotated}");
    let killed = Instant::now();
    fleet.ha.primary.kill();
    let forced = fleet.sim.stats().token_requests.refresh_token;
    assert_eq!(forced, 2, "the forced refresh rotated the token at Zoom");
    let v1 = rotated["version"].as_u64().expect("version");
    assert!(
        !replicas[1].unpersisted(&http).await,
        "the rotation was durable (a replica acknowledged it) when the refresh answered"
    );
    let old = fleet.ha.primary.port;
    let (new, promoted) =
        tokio::task::block_in_place(|| fleet.ha.wait_for_new_primary(old, killed));
    assert_eq!(new, fleet.ha.standby.port, "Sentinel promoted the replica");
    let kept = fleet.ha.standby.stored_version(USER_GRANT);
    assert!(
        kept >= v1,
        "the new primary holds v{kept}; v{v1} was acknowledged"
    );

    // Following: each replica subscribes to the new primary's change channel
    // and serves.
    eventually(
        "every replica to subscribe on the new primary",
        || fleet.logs(&all),
        || async { fleet.ha.standby.subscribers(CHANGES) >= 3 },
    )
    .await;
    for r in &replicas {
        eventually(
            "every replica to serve",
            || fleet.logs(&all),
            || async { r.me(&http).await == 200 },
        )
        .await;
    }
    let followed_at = Instant::now();
    let followed = followed_at - killed;
    // Promised: within about 1 s of Sentinel's switch (`promoted`, when all
    // three Sentinels name the new primary); twice that on a busy machine.
    assert!(
        followed < promoted + Duration::from_secs(2),
        "replicas followed {followed:?} after the kill, Sentinel switched after {promoted:?}"
    );
    // The crashed node comes back as the new primary's replica, so that
    // writes can be acknowledged (WAIT 1) again.
    fleet.ha.primary.restart_as_replica_of(new);
    for r in &replicas {
        eventually(
            "/readyz/store to turn 200",
            || fleet.logs(&all),
            || async { r.readyz_store(&http).await == 200 },
        )
        .await;
    }
    let ready = killed.elapsed();

    // Rotations go on through the new primary, announced on its channel:
    // the next one is due 4.2 s after the forced one, after the failover.
    let refreshes = || fleet.sim.stats().token_requests.refresh_token;
    eventually(
        "a rotation after the failover to reach every replica",
        || fleet.logs(&all),
        || async {
            let stored = fleet.ha.standby.stored_version(USER_GRANT);
            let mut everywhere = refreshes() > forced && stored > kept;
            for r in &replicas {
                everywhere = everywhere && r.version(&http).await >= stored;
            }
            everywhere
        },
    )
    .await;
    let v2 = fleet.ha.standby.stored_version(USER_GRANT);
    eventually(
        "the restarted node to replicate it",
        || fleet.logs(&all),
        || async { fleet.ha.primary.stored_version(USER_GRANT) >= v2 },
    )
    .await;
    let (calls, failures) = callers.stop().await;
    let stats = fleet.sim.stats();

    let window = Failure::window(&failures, killed);
    println!(
        "kill -9 of the primary: Sentinel promoted the replica after {promoted:?}; every \
         replica subscribed on the new primary and served after {followed:?}; /readyz/store 200 \
         everywhere after {ready:?} (the crashed node restarted as replica); callers: \
         {calls} served, {window}; the grant went from v{v0} to v{v2}; Zoom: {stats:?}"
    );
    assert_eq!(
        stats.invalid_grant, 0,
        "no refresh token was lost: {stats:?}"
    );
    assert_eq!(stats.token_errors, 0, "Zoom refused nothing: {stats:?}");
    let holder: Vec<_> = failures
        .iter()
        .filter(|f| f.replica == replicas[1].name)
        .collect();
    assert!(
        holder.is_empty(),
        "callers of the replica that rotated failed: {holder:#?}"
    );
    // A call sent once every replica had followed the failover must succeed.
    let outside: Vec<_> = failures
        .iter()
        .filter(|f| f.at < killed || f.sent > followed_at)
        .collect();
    assert!(
        outside.is_empty(),
        "callers failed outside the failover window (0 to {followed:?} after the kill): \
         {outside:#?}"
    );
}
