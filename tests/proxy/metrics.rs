//! `/metrics` that scale (issue 17): grants counted by state, never one series
//! per grant; an idle grant is not an alarm; build and process metrics; code
//! exchanges among the token calls.

use std::time::{Duration, Instant};

use grantmux::grants::{GrantKey, Subject};
use grantmux::harness::Harness;
use grantmux::sim::Faults;
use http::Method;

use crate::support::{self, get, metrics, sample, CLIENT, S2S_KEY, SECRET, USER, USER_KEY};

const STATES: [&str; 6] = ["fresh", "stale", "idle", "expired", "dead", "unpersisted"];

/// Sample lines: everything but `# HELP`, `# TYPE`, `# EOF` and blank lines.
fn series(m: &str) -> Vec<&str> {
    m.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

fn state(m: &str, state: &str) -> f64 {
    sample(m, &format!("grantmux_grants{{state=\"{state}\"}} ")).unwrap_or(-1.0)
}

fn states_total(m: &str) -> f64 {
    STATES.iter().map(|s| state(m, s)).sum()
}

/// Exchanges an authorization code of `USER` at grantmux's token endpoint, as
/// an app would: grantmux calls Zoom and adopts the grant.
async fn exchange_code(h: &Harness) {
    let code = h.sim.issue_code(CLIENT, USER, "http://localhost/cb");
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", &code)
        .append_pair("redirect_uri", "http://localhost/cb")
        .finish();
    let basic = format!("Basic {}", support::b64(&format!("{CLIENT}:{SECRET}")));
    let headers = [
        ("authorization", basic.as_str()),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    let a = h
        .call(Method::POST, &h.proxy_url("/oauth/token"), &headers, form)
        .await
        .expect("grantmux answers");
    assert_eq!(a.status, 200, "{:?}", a.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_at_100k_grants_have_no_per_grant_series() {
    let h = support::start_default().await;
    exchange_code(&h).await;
    assert_eq!(get(&h, "/v2/users/me", USER_KEY).await.status, 200);
    assert_eq!(get(&h, "/v2/users/me", S2S_KEY).await.status, 200);
    let registry = h.gmx.registry.clone();
    let ensure_up_to = |n: usize| {
        for i in 0.. {
            if registry.len() >= n {
                break;
            }
            registry.ensure(&GrantKey::new(CLIENT, Subject::User(format!("u-{i}"))));
        }
    };
    ensure_up_to(10);
    let small = metrics(&h).await;
    assert_eq!(states_total(&small), 10.0, "{small}");

    ensure_up_to(100_000);
    let started = Instant::now();
    let large = metrics(&h).await;
    let scrape = started.elapsed();
    println!("/metrics at {} grants: {scrape:?}", registry.len());

    assert_eq!(
        states_total(&large),
        100_000.0,
        "states add up to the grants"
    );
    assert_eq!(
        state(&large, "fresh"),
        2.0,
        "the user and S2S grants in use"
    );
    assert_eq!(state(&large, "idle"), 99_998.0, "created, never used");
    for line in series(&large) {
        assert!(!line.contains("grant="), "a per-grant series: {line}");
        assert!(
            !line.contains(USER) && !line.contains("u-9"),
            "an id: {line}"
        );
    }
    let (few, many) = (series(&small).len(), series(&large).len());
    assert_eq!(few, many, "series do not grow with grants");
    assert!(many < 300, "{many} series");
    assert!(scrape < Duration::from_secs(5), "scrape took {scrape:?}");

    // Both grants in use hold a token of about an hour.
    assert_eq!(
        sample(&large, "grantmux_grant_expiry_seconds_count "),
        Some(2.0)
    );
    let le_45m = "grantmux_grant_expiry_seconds_bucket{le=\"2700.0\"} ";
    assert_eq!(sample(&large, le_45m), Some(0.0), "{large}");
    assert_eq!(
        sample(&large, "grantmux_grants_refresh_failing "),
        Some(0.0)
    );
    let exchanges = "grantmux_zoom_token_calls_total{kind=\"exchange\",result=\"ok\"} ";
    assert_eq!(sample(&large, exchanges), Some(1.0), "{large}");
    let version = env!("CARGO_PKG_VERSION");
    let build = format!("grantmux_build_info{{version=\"{version}\"}} ");
    assert_eq!(sample(&large, &build), Some(1.0), "{large}");
    for process in [
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_virtual_memory_bytes ",
        "process_open_fds ",
        "process_max_fds ",
        "process_start_time_seconds ",
    ] {
        let value = sample(&large, process);
        assert!(value.is_some_and(|v| v > 0.0), "{process}{value:?}");
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_grant_nobody_uses_is_idle_and_one_a_caller_wants_is_expired() {
    let h = support::start_default().await;
    support::adopt_user(&h).await;
    assert_eq!(get(&h, "/v2/users/me", USER_KEY).await.status, 200);
    let m = metrics(&h).await;
    assert_eq!((state(&m, "fresh"), states_total(&m)), (1.0, 1.0), "{m}");

    // Used once while fresh, then nobody asks: its token lapses unrefreshed.
    h.clock.advance(Duration::from_secs(2 * 3600));
    let m = metrics(&h).await;
    assert_eq!((state(&m, "idle"), state(&m, "expired")), (1.0, 0.0), "{m}");
    assert_eq!(
        sample(&m, "grantmux_grant_expiry_seconds_count "),
        Some(0.0)
    );

    // A caller wants it while Zoom's token endpoint fails: that is an alarm.
    h.sim.set_token_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    assert_eq!(get(&h, "/v2/users/me", USER_KEY).await.status, 503);
    let m = metrics(&h).await;
    assert_eq!((state(&m, "idle"), state(&m, "expired")), (0.0, 1.0), "{m}");
    assert_eq!(sample(&m, "grantmux_grants_refresh_failing "), Some(1.0));
    let expired_in_use = "grantmux_grant_expiry_seconds_bucket{le=\"0.0\"} ";
    assert_eq!(sample(&m, expired_in_use), Some(1.0), "{m}");

    // Zoom recovers; the background retry refreshes it.
    h.sim.set_token_faults(Faults::default());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = metrics(&h).await;
        if state(&m, "fresh") == 1.0 {
            assert_eq!(sample(&m, "grantmux_grants_refresh_failing "), Some(0.0));
            break;
        }
        assert!(Instant::now() < deadline, "never recovered: {m}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    h.shutdown().await;
}
