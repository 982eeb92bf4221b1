//! A lock holder frozen (SIGSTOP) mid-refresh, past its lease: another replica
//! takes over, the frozen one wakes up late, and the grant stays healthy.
//!
//! Replica A carries the failpoint; a forced refresh (`POST /grants/{id}/refresh`)
//! walks it into the freeze while it holds the lock. Leases are 2 s, so B waits
//! about that long before it can take over. Callers use B and C throughout.

use std::time::Duration;

use grantmux::sim::SimConfig;
use serde_json::Value;

use crate::support::*;

/// Frozen before its call to Zoom, past its lease. B refreshes; A wakes, sees by
/// its own clock that the lock is no longer surely its own, and does not send the
/// refresh token B already rotated: it re-reads Redis and takes B's token. Zoom
/// sees one refresh and no `invalid_grant`; A writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn holder_frozen_before_zoom_does_not_call_zoom_when_it_wakes() {
    let (cluster, a) = frozen_before_zoom_while_b_refreshes("before_zoom:stop").await;
    wait_for("A to log that its lock lapsed", || {
        a.logged("refresh lock lapsed before the call to Zoom")
    });
    let stats = cluster.sim.stats();
    assert_eq!(stats.token_requests.refresh_token, 1, "B's only: {stats:?}");
    assert_eq!(
        stats.token_errors, 0,
        "no stale refresh token sent: {stats:?}"
    );
}

/// Frozen a moment later, past that check (the window no local check closes):
/// A sends the refresh token B already rotated. Zoom answers `invalid_grant`; A
/// re-reads Redis, finds B's newer token, and does not mark the grant dead. A
/// writes nothing. (This is also the invalid_grant race of issue 8.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn holder_frozen_calling_zoom_gets_invalid_grant_as_a_lost_race() {
    let (cluster, a) = frozen_before_zoom_while_b_refreshes("calling_zoom:stop").await;
    wait_for("A to log the lost race", || {
        a.logged("invalid_grant was a lost race")
    });
    let stats = cluster.sim.stats();
    assert_eq!(
        stats.token_requests.refresh_token, 2,
        "B's, then A's stale one"
    );
    assert_eq!(stats.token_errors, 1, "A's stale refresh token");
}

/// A, carrying `failpoint`, freezes in a forced refresh while holding the lock;
/// B takes over and rotates; A wakes. Checks what holds either way: callers of B
/// and C never failed, A answers with B's rotation, A wrote nothing, and every
/// replica serves B's version.
async fn frozen_before_zoom_while_b_refreshes(failpoint: &str) -> (Cluster, Replica) {
    let cluster = Cluster::start(long_lived(), ReplicaConfig::default()).await;
    let (a, b, c) = three(&cluster, failpoint);
    let http = &cluster.http;
    cluster.authorize(&b).await;
    let v0 = cluster.redis.stored_version(USER_GRANT);
    let load = Load::start(http, &[&b, &c], 4, USER_KEY);

    let a_refresh = freeze_in_refresh(&cluster, &a).await;
    let (status, took_over) = b.force_refresh(http, USER_GRANT).await;
    assert_eq!(
        (status, &took_over["version"]),
        (200, &Value::from(v0 + 1)),
        "{took_over}\n{:?}\n{}",
        cluster.sim.stats(),
        logs(&[&a, &b, &c])
    );
    a.resume();
    let (status, woke) = a_refresh.await.expect("A's refresh");
    assert_eq!(status, 200, "A after waking: {woke}");
    assert_eq!(woke["version"], v0 + 1, "A adopted B's rotation: {woke}");

    let (_, failures) = load.stop().await;
    assert!(failures.is_empty(), "caller failures: {failures:#?}");
    assert_eq!(
        cluster.redis.stored_version(USER_GRANT),
        v0 + 1,
        "A wrote nothing"
    );
    all_live_at(&cluster, &[&a, &b, &c], USER_GRANT, v0 + 1).await;
    (cluster, a)
}

/// Frozen after Zoom rotated the token, before writing it. The only valid
/// refresh token now lives in A's memory, so B's takeover gets `invalid_grant`:
/// B sees the unfinished refresh A recorded and waits (limbo) instead of
/// declaring the grant dead. A wakes and stores its tokens; the fence accepts
/// them, as nothing newer was written meanwhile.
///
/// The simulator keeps the previous access token valid here. With the strict
/// default, Zoom kills it at A's refresh, and until A wakes no replica can hold
/// a valid token: callers would fail whatever grantmux did.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn holder_frozen_after_zoom_stores_its_rotation_late() {
    let sim = SimConfig {
        invalidate_previous_access: false,
        ..long_lived()
    };
    let cluster = Cluster::start(sim, ReplicaConfig::default()).await;
    let (a, b, c) = three(&cluster, "after_zoom:stop");
    let http = &cluster.http;
    cluster.authorize(&b).await;
    let v0 = cluster.redis.stored_version(USER_GRANT);
    let load = Load::start(http, &[&b, &c], 4, USER_KEY);

    let a_refresh = freeze_in_refresh(&cluster, &a).await;
    let (status, limbo) = b.force_refresh(http, USER_GRANT).await;
    assert_eq!(
        status,
        503,
        "B waits for A's rotation: {limbo}\n{:?}\n{}",
        cluster.sim.stats(),
        logs(&[&a, &b, &c])
    );
    assert!(
        limbo["error"]
            .as_str()
            .is_some_and(|e| e.contains("not stored it yet")),
        "{limbo}"
    );
    assert_eq!(
        b.grant(http, USER_GRANT).await.expect("grant")["state"],
        "live"
    );
    a.resume();
    let (status, woke) = a_refresh.await.expect("A's refresh");
    assert_eq!(
        (status, &woke["version"]),
        (200, &Value::from(v0 + 1)),
        "{woke}"
    );
    all_live_at(&cluster, &[&a, &b, &c], USER_GRANT, v0 + 1).await;

    // Healthy: the next refresh (at C) uses A's refresh token and succeeds.
    let (status, next) = c.force_refresh(http, USER_GRANT).await;
    assert_eq!(
        (status, &next["version"]),
        (200, &Value::from(v0 + 2)),
        "{next}"
    );
    let (_, failures) = load.stop().await;
    assert!(failures.is_empty(), "caller failures: {failures:#?}");
    let stats = cluster.sim.stats();
    assert_eq!(
        stats.token_requests.refresh_token, 3,
        "A's, B's refused one, C's"
    );
    assert_eq!(stats.token_errors, 1, "B's, with the token A had rotated");
    all_live_at(&cluster, &[&a, &b, &c], USER_GRANT, v0 + 2).await;
}

/// Server-to-Server mints do not revoke each other, so both A (frozen after
/// its mint) and B get tokens. B minted later and wrote first; A's late write
/// hits the version fence, and A takes B's newer grant instead of rebasing its
/// older token over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn frozen_mint_written_late_is_refused_by_the_fence() {
    let cluster = Cluster::start(long_lived(), ReplicaConfig::default()).await;
    let a = cluster.replica_with("a", Some("after_zoom:stop"));
    let b = cluster.replica("b");
    let http = &cluster.http;
    assert_eq!(b.me(http, S2S_KEY).await.0, 200, "first mint at B");
    let v1 = cluster.redis.stored_version(S2S_GRANT);
    eventually("A to load the grant B minted", || async {
        a.version(http, S2S_GRANT).await == v1
    })
    .await;

    let id = S2S_GRANT;
    let frozen = {
        let (a_admin, http) = (a.admin, http.clone());
        tokio::spawn(async move { force_refresh_at(&http, a_admin, id).await })
    };
    a.wait_stopped();
    let (status, took_over) = b.force_refresh(http, id).await;
    assert_eq!(
        (status, &took_over["version"]),
        (200, &Value::from(v1 + 1)),
        "{took_over}"
    );
    a.resume();
    let (status, woke) = frozen.await.expect("A's refresh");
    assert_eq!(
        (status, &woke["version"]),
        (200, &Value::from(v1 + 1)),
        "{woke}"
    );
    wait_for("A to log that it took B's grant", || {
        a.logged("stored meanwhile; taking it")
    });
    assert_eq!(
        cluster.redis.stored_version(id),
        v1 + 1,
        "A's late write was refused"
    );
    assert_eq!(cluster.sim.stats().token_requests.account_credentials, 3);
    all_live_at(&cluster, &[&a, &b], id, v1 + 1).await;
    assert_eq!(a.me(http, S2S_KEY).await.0, 200);
}

/// The replicas' logs, for a failure message.
fn logs(replicas: &[&Replica]) -> String {
    let mut out = String::new();
    for r in replicas {
        out.push_str(&format!("--- {}\n{}\n", r.name, r.log().join("\n")));
    }
    out
}

/// 60 s tokens: nothing refreshes unless a test forces it.
fn long_lived() -> SimConfig {
    SimConfig {
        user_token_ttl: Duration::from_secs(60),
        s2s_token_ttl: Duration::from_secs(60),
        ..SimConfig::default()
    }
}

fn three(cluster: &Cluster, failpoint: &str) -> (Replica, Replica, Replica) {
    let a = cluster.replica_with("a", Some(failpoint));
    (a, cluster.replica("b"), cluster.replica("c"))
}

/// Starts a forced refresh of the user grant at `a` and returns once `a` is
/// frozen at its failpoint, lock held. The task ends when `a` is resumed.
async fn freeze_in_refresh(
    cluster: &Cluster,
    a: &Replica,
) -> tokio::task::JoinHandle<(u16, Value)> {
    eventually("A to load the grant", || async {
        a.version(&cluster.http, USER_GRANT).await > 0
    })
    .await;
    let (admin, http) = (a.admin, cluster.http.clone());
    let task = tokio::spawn(async move { force_refresh_at(&http, admin, USER_GRANT).await });
    a.wait_stopped();
    task
}

async fn force_refresh_at(http: &Http, admin: std::net::SocketAddr, id: &str) -> (u16, Value) {
    let url = format!("http://{admin}/grants/{id}/refresh");
    let (status, body) = send(http, http::Method::POST, &url, &[], "")
        .await
        .expect("admin answers");
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Every replica serves grant `id`'s token at `version`, alive.
async fn all_live_at(cluster: &Cluster, replicas: &[&Replica], id: &str, version: u64) {
    for r in replicas {
        eventually(&format!("{} at version {version}", r.name), || async {
            let g = r.grant(&cluster.http, id).await;
            g.is_some_and(|g| g["version"] == version && g["state"] == "live")
        })
        .await;
    }
}
