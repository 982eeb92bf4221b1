//! Rate limits through the proxy (issue 16), against the simulator's limits:
//! a local 429 after `max_wait`, Zoom's per-second 429 retried, a daily 429
//! closing its category, `/ratelimits`, and shaping turned off.

use std::time::Duration;

use grantmux::config::{Config, Plan, RateLimit};
use grantmux::ratelimit::Rates;
use grantmux::sim::{DailyLimits, RateLimits, SimConfig};

use super::support::{adopt_user, get, start, ACCOUNT, S2S_KEY, USER, USER_KEY};

/// List meetings: labelled Medium by Zoom, in the sim and in grantmux's seeds.
fn medium_path() -> String {
    format!("/v2/users/{USER}/meetings")
}

/// Get a user: Light.
fn light_path() -> String {
    format!("/v2/users/{USER}")
}

fn shaping(c: &mut Config, medium_per_second: f64, max_wait: Duration) {
    c.rate_limit = RateLimit {
        enabled: true,
        plan: Plan::Custom,
        rates: Rates::new(30.0, medium_per_second, 10.0, 10.0),
        max_wait,
        headroom: 0.0,
    };
}

fn sim_with(limits: RateLimits) -> SimConfig {
    SimConfig {
        rate_limits: Some(limits),
        ..SimConfig::default()
    }
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).expect("a JSON body")
}

#[tokio::test]
async fn a_call_past_max_wait_gets_zooms_429_shape_locally() {
    // One Medium call a minute: the second waits 200 ms and gives up.
    let h = start(SimConfig::default(), |c| {
        shaping(c, 1.0 / 60.0, Duration::from_millis(200))
    })
    .await;
    assert_eq!(get(&h, &medium_path(), S2S_KEY).await.status, 200);
    let before = h.sim.stats().api_requests;
    let refused = get(&h, &medium_path(), S2S_KEY).await;
    assert_eq!(refused.status, 429);
    let h429 = &refused.headers;
    assert_eq!(h429["retry-after"], "1");
    assert_eq!(h429["x-ratelimit-category"], "Medium");
    assert_eq!(h429["x-ratelimit-type"], "QPS");
    assert_eq!(h429["x-ratelimit-remaining"], "0");
    assert_eq!(h429["x-grantmux-ratelimit"], "local");
    let body = json(&refused.body);
    assert_eq!(body["code"], 429);
    assert_eq!(
        body["message"],
        "You have reached the maximum per-second rate limit for this API. Try again later."
    );
    assert_eq!(h.sim.stats().api_requests, before, "Zoom was not called");
    // Another category has its own budget.
    assert_eq!(get(&h, &light_path(), S2S_KEY).await.status, 200);
}

#[tokio::test]
async fn zooms_per_second_429_is_retried_transparently() {
    // grantmux believes Medium allows 1000/s; the sim allows 1. The second
    // call in the same second gets Zoom's 429, which grantmux retries once
    // Zoom's window opens: the caller sees only a 200.
    let h = start(
        sim_with(RateLimits {
            medium_per_second: 1,
            ..RateLimits::default()
        }),
        |c| shaping(c, 1000.0, Duration::from_secs(5)),
    )
    .await;
    for _ in 0..3 {
        let answer = get(&h, &medium_path(), S2S_KEY).await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
    }
    let stats = h.sim.stats();
    assert!(stats.api_429_qps >= 1, "the sim refused some: {stats:?}");
    let metrics = h.gmx.metrics.encode();
    assert!(
        metrics.contains("grantmux_zoom_429_total{kind=\"per_second\"}"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("grantmux_ratelimit_retries_total 0"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_daily_429_closes_its_category_and_spends_nothing_more() {
    let h = start(
        sim_with(RateLimits {
            daily: DailyLimits {
                medium: Some(3),
                ..DailyLimits::default()
            },
            ..RateLimits::default()
        }),
        |c| shaping(c, 1000.0, Duration::from_secs(5)),
    )
    .await;
    for _ in 0..3 {
        assert_eq!(get(&h, &medium_path(), S2S_KEY).await.status, 200);
    }
    // The fourth reaches Zoom, which refuses it for the day: passed as is.
    let zoom = get(&h, &medium_path(), S2S_KEY).await;
    assert_eq!(zoom.status, 429);
    assert_eq!(zoom.headers["x-ratelimit-type"], "Daily-limit");
    assert!(zoom.headers.get("x-grantmux-ratelimit").is_none());
    let reset = zoom.headers["retry-after"].clone();
    let message = json(&zoom.body)["message"].clone();
    let seen_by_zoom = h.sim.stats().api_requests;

    // The next 100 calls of that category are answered here, with Zoom's
    // message and Retry-After, and never reach Zoom.
    for _ in 0..100 {
        let local = get(&h, &medium_path(), S2S_KEY).await;
        assert_eq!(local.status, 429);
        assert_eq!(local.headers["retry-after"], reset);
        assert_eq!(local.headers["x-ratelimit-type"], "Daily-limit");
        assert_eq!(local.headers["x-grantmux-ratelimit"], "local");
        assert_eq!(json(&local.body)["message"], message);
    }
    assert_eq!(h.sim.stats().api_requests, seen_by_zoom);

    // Light calls of the same account still pass.
    assert_eq!(get(&h, &light_path(), S2S_KEY).await.status, 200);

    // /ratelimits shows the closure and the budgets.
    let view = h
        .call(http::Method::GET, &h.admin_url("/ratelimits"), &[], "")
        .await
        .expect("admin answers");
    assert_eq!(view.status, 200);
    let view = json(&view.body);
    let closed = &view["closed"][0];
    assert_eq!(closed["account"], ACCOUNT);
    assert_eq!(closed["category"], "Medium");
    assert!(view["budgets"]
        .as_array()
        .expect("budgets")
        .iter()
        .any(|b| b["account"] == ACCOUNT && b["category"] == "Light"));
    let metrics = h.gmx.metrics.encode();
    assert!(
        metrics.contains("grantmux_ratelimit_local_429_total{reason=\"daily_closed\"} 100"),
        "{metrics}"
    );
}

#[tokio::test]
async fn turned_off_zooms_429s_pass_through() {
    let h = start(
        sim_with(RateLimits {
            medium_per_second: 1,
            ..RateLimits::default()
        }),
        |c| c.rate_limit.enabled = false,
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(get(&h, &medium_path(), S2S_KEY).await.status.as_u16());
    }
    // Within one second the sim allows one; the others reach the caller.
    assert!(statuses.contains(&429), "{statuses:?}");
    let view = h
        .call(http::Method::GET, &h.admin_url("/ratelimits"), &[], "")
        .await
        .expect("admin answers");
    assert_eq!(json(&view.body)["enabled"], false);
}

#[tokio::test]
async fn a_user_grant_spends_its_accounts_budget() {
    // One Medium call a minute for the whole account: the S2S grant spends it,
    // and the user grant of the same account finds it spent.
    let h = start(SimConfig::default(), |c| {
        shaping(c, 1.0 / 60.0, Duration::from_millis(200))
    })
    .await;
    adopt_user(&h).await;
    assert_eq!(get(&h, &medium_path(), S2S_KEY).await.status, 200);
    let user = get(&h, &medium_path(), USER_KEY).await;
    assert_eq!(user.status, 429, "{:?}", user.body);
    assert_eq!(user.headers["x-grantmux-ratelimit"], "local");
    let grants = h
        .call(http::Method::GET, &h.admin_url("/grants"), &[], "")
        .await
        .expect("admin answers");
    let grants = json(&grants.body);
    assert!(
        grants
            .as_array()
            .or_else(|| grants["grants"].as_array())
            .expect("a list")
            .iter()
            .all(|g| g["account_id"] == ACCOUNT),
        "{grants}"
    );
}
