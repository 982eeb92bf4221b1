//! Virtual tokens issued by one replica work on every other, right away: a
//! replica that has not seen the grant or binding yet asks Redis.

use std::sync::Arc;

use grantmux::sim::SimConfig;
use tokio::task::JoinSet;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn virtual_tokens_from_one_replica_work_on_every_other() {
    let cluster = Cluster::start(SimConfig::default(), ReplicaConfig::default()).await;
    let replicas = cluster.replicas(3);
    let http = &cluster.http;
    let tokens = cluster.authorize(&replicas[0]).await;
    let access = tokens["access_token"].as_str().expect("access_token");
    let refresh = tokens["refresh_token"].as_str().expect("refresh_token");

    // At once, without waiting for the announcement.
    for r in &replicas {
        let (status, body) = r.me(http, access).await;
        assert_eq!(status, 200, "{}: {body:?}", r.name);
    }

    // The caller refreshes its virtual token at another replica.
    let (status, renewed) = cluster
        .token(
            &replicas[1],
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
        .await;
    assert_eq!(status, 200, "refresh at r1: {renewed}");
    let access2 = renewed["access_token"].as_str().expect("access_token");
    for r in &replicas {
        assert_eq!(r.me(http, access2).await.0, 200, "{}", r.name);
    }
    // A virtual refresh is answered from the grant: Zoom saw no refresh.
    assert_eq!(cluster.sim.stats().token_requests.refresh_token, 0);

    // Revoked at r2: the announcement reaches the others.
    let (status, _) = cluster.revoke(&replicas[2], access2).await;
    assert_eq!(status, 200);
    for r in &replicas {
        eventually("the revocation to reach every replica", || async {
            r.me(http, access2).await.0 == 401
        })
        .await;
    }
}

/// `account_credentials` at each replica in turn: only the first mints, the
/// others find the grant in Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s2s_tokens_from_any_replica_share_one_mint() {
    let cluster = Cluster::start(SimConfig::default(), ReplicaConfig::default()).await;
    let replicas = cluster.replicas(3);
    let form = [
        ("grant_type", "account_credentials"),
        ("account_id", ACCOUNT),
    ];
    for r in &replicas {
        let (status, answer) = cluster.token(r, &form).await;
        assert_eq!(status, 200, "{}: {answer}", r.name);
        let access = answer["access_token"].as_str().expect("access_token");
        for other in &replicas {
            assert_eq!(
                other.me(&cluster.http, access).await.0,
                200,
                "{}",
                other.name
            );
        }
    }
    assert_eq!(cluster.sim.stats().token_requests.account_credentials, 1);
}

/// The first `account_credentials` asked of every replica at once: the mint
/// runs under the grant's Redis lease, so Zoom sees one, and every caller gets
/// the one grant.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_first_s2s_mint_asked_of_every_replica_at_once_is_one_mint() {
    const PER_REPLICA: usize = 2;
    const FORM: [(&str, &str); 2] = [
        ("grant_type", "account_credentials"),
        ("account_id", ACCOUNT),
    ];
    let cluster = Arc::new(Cluster::start(SimConfig::default(), ReplicaConfig::default()).await);
    let replicas = Arc::new(cluster.replicas(3));
    let mut asks = JoinSet::new();
    for i in 0..replicas.len() * PER_REPLICA {
        let (cluster, replicas) = (cluster.clone(), replicas.clone());
        asks.spawn(async move {
            let r = &replicas[i % replicas.len()];
            (r.name.clone(), cluster.token(r, &FORM).await)
        });
    }
    let answers = asks.join_all().await;

    let stats = cluster.sim.stats();
    assert_eq!(stats.token_requests.account_credentials, 1, "one mint");
    assert_eq!(stats.token_errors, 0);
    for (name, (status, answer)) in &answers {
        assert_eq!(*status, 200, "{name}: {answer}");
        let access = answer["access_token"].as_str().expect("access_token");
        assert_eq!(claims(access)["gid"], S2S_GRANT, "{name}");
        for other in replicas.iter() {
            let (status, body) = other.me(&cluster.http, access).await;
            assert_eq!(status, 200, "{name}'s token via {}: {body:?}", other.name);
        }
    }
    assert_eq!(cluster.sim.stats().token_requests.account_credentials, 1);
}
