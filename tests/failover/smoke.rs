//! The Redis topology alone, no grantmux: Sentinel promotes the replica when
//! the primary is killed, and a partitioned replica is promoted without what
//! the primary wrote after the partition (the loss `min_replicas_acked` is for).

use std::time::{Duration, Instant};

use crate::support::*;

/// A write the replica acknowledged (`WAIT 1`) before the primary's `kill -9`
/// is on the replica Sentinel promotes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_promotes_the_replica_when_the_primary_is_killed() {
    let _turn = crate::one_at_a_time().await;
    let mut ha = Ha::start();
    let old = ha.primary.port;
    assert_eq!(ha.agreed_primary(), Some(old));
    let mut conn = ha.primary.connection();
    let () = redis::cmd("SET")
        .arg("k")
        .arg("acked")
        .query(&mut conn)
        .expect("SET");
    let acked: u64 = redis::cmd("WAIT")
        .arg(1)
        .arg(1000)
        .query(&mut conn)
        .expect("WAIT");
    assert_eq!(acked, 1, "the replica acknowledged the write");

    let killed = Instant::now();
    ha.primary.kill();
    let (new, took) = ha.wait_for_new_primary(old, killed);
    println!("Sentinel promoted the replica {took:?} after the primary's kill -9");
    assert_eq!(new, ha.standby.port, "the replica is the primary now");
    wait(
        "the replica to take the primary's role",
        Duration::from_secs(10),
        || ha.standby.info_field("replication", "role") == Some("master".into()),
    );
    let value: Option<String> = redis::cmd("GET")
        .arg("k")
        .query(&mut ha.standby.connection())
        .expect("GET");
    assert_eq!(
        value.as_deref(),
        Some("acked"),
        "the acknowledged write survived"
    );
}

/// Frozen and cut off, the replica misses a write the primary acknowledged
/// (`WAIT 1` says 0 replicas have it); thawed once the primary is killed, it
/// is promoted without it. Frozen but not cut off, it would have applied the
/// write from its socket buffer on waking: see [`Ha::partition_standby`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_replica_is_promoted_without_the_writes_it_missed() {
    let _turn = crate::one_at_a_time().await;
    let mut ha = Ha::start();
    let old = ha.primary.port;
    let mut conn = ha.primary.connection();
    let () = redis::cmd("SET")
        .arg("before")
        .arg("1")
        .query(&mut conn)
        .expect("SET");
    let acked: u64 = redis::cmd("WAIT")
        .arg(1)
        .arg(1000)
        .query(&mut conn)
        .expect("WAIT");
    assert_eq!(acked, 1);

    ha.partition_standby();
    let () = redis::cmd("SET")
        .arg("after")
        .arg("1")
        .query(&mut conn)
        .expect("SET");
    let acked: u64 = redis::cmd("WAIT")
        .arg(1)
        .arg(100)
        .query(&mut conn)
        .expect("WAIT");
    assert_eq!(acked, 0, "no replica acknowledges the write");
    let killed = Instant::now();
    ha.primary.kill();
    ha.standby.thaw();
    let (new, took) = ha.wait_for_new_primary(old, killed);
    println!("Sentinel promoted the partitioned replica {took:?} after the primary's kill -9");
    assert_eq!(new, ha.standby.port);
    let mut conn = ha.standby.connection();
    let has = |key: &str, conn: &mut redis::Connection| -> bool {
        redis::cmd("EXISTS").arg(key).query(conn).expect("EXISTS")
    };
    assert!(has("before", &mut conn), "what it acknowledged is there");
    assert!(!has("after", &mut conn), "what it missed is lost");
}
