//! A legacy system's real Zoom refresh token, presented to more than one
//! replica: Zoom sees it once, and every replica answers with the same grant
//! and binding (DESIGN §3.4, §3.6). The replica that wins the pending grant's
//! lease calls Zoom; another one, under the same lease, finds the pending
//! record's tombstone and answers from the binding it points to.

use grantmux::grants::hash;
use grantmux::sim::{SimConfig, SimStats};
use serde_json::Value;

use crate::support::*;

/// Fresh legacy tokens presented at once, one user each: the more rounds, the
/// more often both replicas queue on the pending lease rather than one of them
/// finding the finished adoption already announced.
const ROUNDS: usize = 5;

/// One after the other. B usually knows the adopted grant from A's
/// announcement by the time it is asked; either way it must not call Zoom.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_legacy_token_adopted_on_one_replica_is_the_same_grant_on_another() {
    let cluster = Cluster::start(SimConfig::default(), ReplicaConfig::default()).await;
    let (a, b) = (cluster.replica("a"), cluster.replica("b"));
    let http = &cluster.http;
    let legacy = cluster.authorize_at_zoom(USER).await;
    let before = cluster.sim.stats();

    let at_a = present(&cluster, &a, &legacy).await;
    let at_b = present(&cluster, &b, &legacy).await;

    assert_zoom_saw_one_refresh(&before, &cluster.sim.stats());
    let (ca, cb) = (claims(&at_a.0), claims(&at_b.0));
    assert_eq!(ca["gid"], USER_GRANT, "adopted into the user's grant");
    assert_eq!(cb["gid"], ca["gid"], "same grant on B");
    assert_eq!(
        cb["bid"], ca["bid"],
        "same binding: the one adopted from it"
    );
    for access in [&at_a.0, &at_b.0] {
        for r in [&a, &b] {
            assert_me(r, http, access, USER).await;
        }
    }
    // Both replicas hold one user grant with that one binding; neither keeps
    // the pending grant, whose record in Redis is the tombstone written after
    // its tokens moved (version 1: Zoom's answer, version 2: moved).
    let pending = pending_id(&legacy);
    for r in [&a, &b] {
        let grant = r.grant(http, USER_GRANT).await.expect("the user grant");
        assert_eq!(grant["bindings"], 1, "{}: {grant}", r.name);
        assert_eq!(grant["state"], "live", "{}: {grant}", r.name);
        assert!(r.grant(http, &pending).await.is_none(), "{}", r.name);
    }
    assert_eq!(cluster.redis.stored_version(&pending), 2);
    println!("B answered {}", path_taken(&b, USER_GRANT, &pending));

    // Zoom itself no longer takes the legacy token: grantmux really rotated it.
    let (status, answer) = cluster.refresh_at_zoom(&legacy).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"], "invalid_grant");
}

/// At once: typically both replicas miss the legacy index and queue on the
/// pending grant's lease, and the loser must find the winner's tombstone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_legacy_token_presented_to_two_replicas_at_once_is_forwarded_to_zoom_once() {
    let cluster = Cluster::start(SimConfig::default(), ReplicaConfig::default()).await;
    let (a, b) = (cluster.replica("a"), cluster.replica("b"));
    let http = &cluster.http;
    for round in 0..ROUNDS {
        let user = format!("legacy-user-{round}");
        let grant = format!("{CLIENT}/user:{user}");
        let legacy = cluster.authorize_at_zoom(&user).await;
        let before = cluster.sim.stats();

        let (at_a, at_b) = tokio::join!(
            present(&cluster, &a, &legacy),
            present(&cluster, &b, &legacy)
        );

        assert_zoom_saw_one_refresh(&before, &cluster.sim.stats());
        let (ca, cb) = (claims(&at_a.0), claims(&at_b.0));
        assert_eq!(ca["gid"], grant, "round {round}");
        assert_eq!(cb["gid"], ca["gid"], "round {round}: same grant");
        assert_eq!(cb["bid"], ca["bid"], "round {round}: same binding");
        for access in [&at_a.0, &at_b.0] {
            for r in [&a, &b] {
                assert_me(r, http, access, &user).await;
            }
        }
        let pending = pending_id(&legacy);
        println!(
            "round {round}: A answered {}, B {}",
            path_taken(&a, &grant, &pending),
            path_taken(&b, &grant, &pending)
        );
    }
}

/// `grant_type=refresh_token` with `legacy` at `via`: 200, or the test fails.
/// Returns the virtual access and refresh tokens.
async fn present(cluster: &Cluster, via: &Replica, legacy: &str) -> (String, String) {
    let form = [("grant_type", "refresh_token"), ("refresh_token", legacy)];
    let (status, answer) = cluster.token(via, &form).await;
    assert_eq!(status, 200, "{}: {answer}", via.name);
    let token = |name: &str| answer[name].as_str().expect(name).to_owned();
    (token("access_token"), token("refresh_token"))
}

/// Zoom saw exactly one refresh between the two snapshots, and refused nothing.
fn assert_zoom_saw_one_refresh(before: &SimStats, after: &SimStats) {
    let (b, a) = (&before.token_requests, &after.token_requests);
    assert_eq!(a.refresh_token - b.refresh_token, 1, "refreshes at Zoom");
    assert_eq!(a.authorization_code, b.authorization_code);
    assert_eq!(
        after.token_errors, before.token_errors,
        "Zoom refused a call"
    );
}

/// `GET /v2/users/me` with `access` through `via` answers `user`.
async fn assert_me(via: &Replica, http: &Http, access: &str, user: &str) {
    let (status, body) = via.me(http, access).await;
    assert_eq!(status, 200, "{}: {body:?}", via.name);
    let me: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(me["id"], user, "{}", via.name);
}

/// The pending grant a legacy token is adopted under.
fn pending_id(legacy: &str) -> String {
    format!("{CLIENT}/pending:{}", hash(legacy))
}

/// How a replica answered, from its log (for the test's output): it called
/// Zoom, found the pending grant's tombstone under the lease, or neither (it
/// had loaded the adopted grant already, announced by the other replica).
fn path_taken(r: &Replica, user_grant: &str, pending: &str) -> &'static str {
    let log = r.log();
    let said = |message: &str, grant: &str| {
        let field = format!("\"grant\":\"{grant}\"");
        log.iter()
            .any(|l| l.contains(message) && l.contains(&field))
    };
    if said("tokens adopted", user_grant) {
        "by calling Zoom"
    } else if said("store holds a newer grant", pending) {
        "from the tombstone, under the lease"
    } else {
        "from the announced grant"
    }
}
