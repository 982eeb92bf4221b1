//! The refresher seen from outside: storms, rotations under load, outages, dead grants.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use grantmux::sim::{Faults, SimConfig};
use http::Method;

use crate::support::{self, get, metrics, sample, storm, S2S_KEY, USER_KEY};

const HOUR: Duration = Duration::from_secs(3600);

/// Waits (bounded) until `cond` holds, yielding to the runtime between checks.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn slow_token_endpoint() -> SimConfig {
    // Requests pile up while the one refresh is in flight.
    SimConfig {
        token_faults: Faults {
            latency: Duration::from_millis(300),
            ..Faults::default()
        },
        ..SimConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_at_an_expired_user_grant_makes_one_refresh() {
    let h = Arc::new(support::start(slow_token_endpoint(), |_| {}).await);
    support::adopt_user(&h).await;
    h.clock.advance(HOUR);
    let failures = storm(&h, 2000, USER_KEY).await;
    assert!(
        failures.is_empty(),
        "{} failed, first: {:?}",
        failures.len(),
        failures.first()
    );
    let stats = h.sim.stats();
    assert_eq!(stats.token_requests.refresh_token, 1, "{stats:?}");
    assert_eq!(stats.api_401, 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_at_an_unminted_s2s_grant_makes_one_mint() {
    let h = Arc::new(support::start(slow_token_endpoint(), |_| {}).await);
    let failures = storm(&h, 2000, S2S_KEY).await;
    assert!(
        failures.is_empty(),
        "{} failed, first: {:?}",
        failures.len(),
        failures.first()
    );
    assert_eq!(h.sim.stats().token_requests.account_credentials, 1);
    // And again across an expiry.
    h.clock.advance(HOUR);
    let failures = storm(&h, 2000, S2S_KEY).await;
    assert!(
        failures.is_empty(),
        "{} failed, first: {:?}",
        failures.len(),
        failures.first()
    );
    assert_eq!(h.sim.stats().token_requests.account_credentials, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotations_under_load_never_surface_a_401() {
    // API latency keeps requests in flight while the token rotates under them;
    // the simulator kills the previous access token at each refresh.
    let sim = SimConfig {
        invalidate_previous_access: true,
        api_faults: Faults {
            latency: Duration::from_millis(20),
            ..Faults::default()
        },
        ..SimConfig::default()
    };
    let h = Arc::new(support::start(sim, |_| {}).await);
    support::adopt_user(&h).await;
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let (h, stop, done, failed) = (h.clone(), stop.clone(), done.clone(), failed.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let a = get(&h, "/v2/users/me", USER_KEY).await;
                    if a.status != 200 {
                        failed.fetch_add(1, Ordering::Relaxed);
                        eprintln!("failed: {} {:?}", a.status, a.body);
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for rotation in 1..=6u64 {
        // Into the refresh-ahead window: the next request starts a background refresh
        // while everyone keeps using the current token.
        h.clock.advance(Duration::from_secs(3400));
        eventually("the rotation", || {
            h.sim.stats().token_requests.refresh_token >= rotation
        })
        .await;
        let seen = done.load(Ordering::Relaxed);
        eventually("traffic after the rotation", || {
            done.load(Ordering::Relaxed) >= seen + 64
        })
        .await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.expect("worker");
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "requests failed");
    assert_eq!(
        h.sim.stats().token_requests.refresh_token,
        6,
        "one refresh per rotation"
    );
    let m = metrics(&h).await;
    let replays: f64 = m
        .lines()
        .filter(|l| l.starts_with("grantmux_replays_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        replays > 0.0,
        "rotations raced in-flight requests, so replays happened:\n{m}"
    );
    assert!(
        h.sim.stats().api_401 > 0,
        "the simulator did refuse superseded tokens"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_served_through_then_503_then_recovers() {
    let h = Arc::new(support::start_default().await);
    support::adopt_user(&h).await;
    h.sim.set_token_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    // Stale: refreshes fail in the background, calls still succeed on the current token.
    h.clock.advance(Duration::from_secs(3400));
    for _ in 0..5 {
        assert_eq!(get(&h, "/v2/users/me", USER_KEY).await.status, 200);
    }
    eventually("a failed refresh", || h.sim.stats().token_errors >= 1).await;
    // Expired: a clear 503, never the dead token.
    h.clock.advance(Duration::from_secs(300));
    let a = get(&h, "/v2/users/me", USER_KEY).await;
    assert_eq!(a.status, 503, "{:?}", a.body);
    // Fixed text: the refresh's own error ("HTTP 503" from the sim) stays in the log.
    assert_eq!(
        a.json(),
        serde_json::json!({
            "code": 503,
            "message": "grantmux: no valid Zoom access token is available right now; try again shortly."
        })
    );
    let api_before = h.sim.stats().api_requests;
    // Zoom recovers; grantmux recovers on its own (its backoff keeps retrying).
    h.sim.set_token_faults(Faults::default());
    let refreshes = h.sim.stats().token_requests.refresh_token;
    eventually("a successful refresh", || {
        let s = h.sim.stats();
        s.token_requests.refresh_token > refreshes
            && s.token_errors < s.token_requests.refresh_token
    })
    .await;
    let mut ok = false;
    for _ in 0..200 {
        if get(&h, "/v2/users/me", USER_KEY).await.status == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(ok, "calls succeed again after Zoom recovered");
    assert!(h.sim.stats().api_requests > api_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_grant_answers_401_is_reported_and_is_not_hammered() {
    let h = Arc::new(support::start_default().await);
    support::adopt_user(&h).await;
    // The user authorizes the app again elsewhere: Zoom revokes grantmux's pair.
    support::authorize_at_sim(&h).await;
    h.clock.advance(HOUR);
    for _ in 0..50 {
        let a = get(&h, "/v2/users/me", USER_KEY).await;
        assert_eq!(a.status, 401);
        assert_eq!(
            a.json(),
            serde_json::json!({"code":124,"message":"Invalid access token."})
        );
    }
    assert_eq!(
        h.sim.stats().token_requests.refresh_token,
        1,
        "one refresh, then no loop"
    );
    let ready = h
        .call(Method::GET, &h.admin_url("/readyz"), &[], "")
        .await
        .expect("admin");
    let ready = ready.json();
    assert_eq!(
        ready["dead_grants"],
        serde_json::json!([support::user_key().id()]),
        "{ready}"
    );
    let grants = h
        .call(Method::GET, &h.admin_url("/grants"), &[], "")
        .await
        .expect("admin")
        .json();
    let listed = grants["grants"]
        .as_array()
        .expect("list")
        .iter()
        .find(|g| g["id"] == support::user_key().id())
        .cloned()
        .expect("listed");
    assert_eq!(listed["state"], "dead");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_requests_latency_token_calls_and_expiry() {
    let h = Arc::new(support::start_default().await);
    support::adopt_user(&h).await;
    assert_eq!(get(&h, "/v2/users/me", S2S_KEY).await.status, 200);
    assert_eq!(get(&h, "/v2/users/me", USER_KEY).await.status, 200);
    let m = metrics(&h).await;
    assert!(
        sample(&m, "grantmux_requests_total{route=\"api\",status=\"200\"}").unwrap_or(0.0) >= 2.0,
        "{m}"
    );
    assert!(
        sample(&m, "grantmux_upstream_duration_seconds_count").unwrap_or(0.0) >= 2.0,
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "grantmux_zoom_token_calls_total{kind=\"mint\",result=\"ok\"}"
        ),
        Some(1.0),
        "{m}"
    );
    // Both grants in use hold a fresh token of about an hour (no per-grant series).
    assert_eq!(
        sample(&m, "grantmux_grants{state=\"fresh\"}"),
        Some(2.0),
        "{m}"
    );
    let under_45m = "grantmux_grant_expiry_seconds_bucket{le=\"2700.0\"}";
    assert_eq!(sample(&m, under_45m), Some(0.0), "{m}");
    assert_eq!(
        sample(&m, "grantmux_grant_expiry_seconds_count"),
        Some(2.0),
        "{m}"
    );
    assert!(m.contains("grantmux_replays"), "{m}");
    for secret in [S2S_KEY, USER_KEY, support::SECRET] {
        assert!(!m.contains(secret));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unused_user_grant_is_kept_alive() {
    let h = Arc::new(support::start_default().await);
    support::adopt_user(&h).await;
    assert_eq!(h.sim.stats().token_requests.refresh_token, 0);
    // Nobody calls for 31 days: the keep-alive sweep refreshes anyway, so the
    // refresh token never lapses at Zoom.
    h.clock.advance(Duration::from_secs(31 * 24 * 3600));
    eventually("a keep-alive refresh", || {
        h.sim.stats().token_requests.refresh_token == 1
    })
    .await;
    assert_eq!(h.sim.stats().api_requests, 0, "no caller was involved");
    assert_eq!(get(&h, "/v2/users/me", USER_KEY).await.status, 200);
    assert_eq!(h.sim.stats().token_requests.refresh_token, 1);
}
