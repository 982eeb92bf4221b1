//! Fifty `kill -9`s at random moments during refresh churn.
//!
//! The one loss no design can avoid is a kill between Zoom's answer and the
//! durable write: Zoom has rotated the token, the store still holds the old one.
//! Every other kill must leave a working grant. The test tells the two apart by
//! comparing the stored access token with the one Zoom (the simulator) holds.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use grantmux::config::KeySource;
use grantmux::grants::{GrantKey, Subject};
use grantmux::sim::{Sim, SimConfig};
use grantmux::store::{FileStore, GrantStore};
use rand::Rng as _;

use crate::process::{write_config, Grantmux, CLIENT};
use crate::support::{authorize, http, me, raw_metrics};

const USER: &str = "churn-user";
const KILLS: usize = 50;

/// The stored access token, read with the store's own key while grantmux is down.
async fn stored_access_token(state: &std::path::Path) -> Option<String> {
    let store = FileStore::open(state, &KeySource::Generated).expect("store opens");
    let key = GrantKey::new(CLIENT, Subject::User(USER.into()));
    let grant = store.load(&key).await.expect("load")?;
    Some(grant.access_token.expose().to_owned())
}

/// `grantmux_persist_duration_seconds` bucket counts (upper bound → cumulative count).
fn persist_buckets(metrics: &str) -> Vec<(f64, u64)> {
    metrics
        .lines()
        .filter(|l| l.starts_with("grantmux_persist_duration_seconds_bucket{le=\""))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let count = l.rsplit(' ').next()?.parse().ok()?;
            Some((
                if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                },
                count,
            ))
        })
        .collect()
}

fn quantile(buckets: &[(f64, u64)], q: f64) -> f64 {
    let total = buckets.last().map_or(0, |b| b.1);
    let rank = (total as f64 * q).ceil() as u64;
    buckets
        .iter()
        .find(|b| b.1 >= rank)
        .map_or(f64::NAN, |b| b.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_random_kills_lose_no_grant_outside_the_inherent_window() {
    // One-second tokens: with refresh-ahead at 30% of the lifetime, the grant
    // rotates about every 0.7 s while callers use it.
    let sim = Sim::start(SimConfig {
        user_token_ttl: Duration::from_secs(1),
        ..SimConfig::default()
    })
    .await
    .expect("sim");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &sim);
    let state = dir.path().join("state");
    let http = http();
    let mut gmx = Grantmux::start(&config, &[]);
    let (mut access, _) = authorize(&http, &sim, gmx.proxy, USER).await;
    let (mut in_window, mut survived) = (0, 0);
    let mut totals: Vec<(f64, u64)> = Vec::new();
    for round in 0..KILLS {
        let running = Arc::new(AtomicBool::new(true));
        let load = {
            let (http, proxy, access, running) =
                (http.clone(), gmx.proxy, access.clone(), running.clone());
            tokio::spawn(async move {
                while running.load(Ordering::Relaxed) && me(&http, proxy, &access).await.is_some() {
                }
            })
        };
        let wait = rand::rng().random_range(100..900);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let metrics = raw_metrics(gmx.admin).await;
        for (i, (le, count)) in persist_buckets(&metrics).into_iter().enumerate() {
            match totals.get_mut(i) {
                Some(t) => t.1 += count,
                None => totals.push((le, count)),
            }
        }
        let (code, _) = gmx.stop("-KILL");
        assert_eq!(code, None, "round {round}: killed");
        running.store(false, Ordering::Relaxed);
        let _ = load.await;

        let stored = stored_access_token(&state).await;
        let at_zoom = sim.current_access_token(CLIENT, USER);
        gmx = Grantmux::start(&config, &[]);
        let (status, body) = me(&http, gmx.proxy, &access).await.expect("answer");
        if stored.is_some() && stored == at_zoom {
            assert_eq!(
                status, 200,
                "round {round}: the store was up to date, yet the grant failed: {body}"
            );
            survived += 1;
        } else {
            // Zoom rotated the token and the kill came before the write landed.
            assert_eq!(status, 401, "round {round}: {body}");
            in_window += 1;
            access = authorize(&http, &sim, gmx.proxy, USER).await.0;
        }
    }
    gmx.stop("-TERM");
    let refreshes = sim.stats().token_requests.refresh_token;
    println!(
        "{KILLS} kills during {refreshes} refreshes: {in_window} landed between Zoom's answer and the write, {survived} lost nothing"
    );
    println!(
        "persist window (Zoom's answer to durable write): p50 <= {:.4} s, p99 <= {:.4} s over {} writes",
        quantile(&totals, 0.5),
        quantile(&totals, 0.99),
        totals.last().map_or(0, |t| t.1)
    );
    assert_eq!(in_window + survived, KILLS);
    assert!(
        refreshes >= KILLS as u64 / 2,
        "the grant churned: {refreshes} refreshes"
    );
    sim.shutdown().await;
}
