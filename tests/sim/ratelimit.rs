//! Zoom's rate limits (ZOOM.md §5) over real sockets: per second, per minute,
//! per UTC day, and the per-user meeting cap, with Zoom's headers and messages.
//!
//! Windows are fixed on the sim's clock; the tests move it to a window's start
//! instead of sleeping, then stay well inside the window.

use std::time::{Duration, UNIX_EPOCH};

use grantmux::clock::Clock;
use grantmux::sim::{CategoryCounts, DailyLimits, RateLimits, SimConfig};
use http::Method;
use serde_json::{json, Value};

use crate::support::*;

const DAY_MS: u64 = 24 * 3600 * 1000;
const PER_SECOND: &str =
    "You have reached the maximum per-second rate limit for this API. Try again later.";
const DAILY: &str = "You have reached the maximum daily rate limit for this API. \
     Refer to the response header for details on when you can make another request.";

/// Limits so high that only the one a test sets can refuse.
fn roomy() -> RateLimits {
    RateLimits {
        light_per_second: 1000,
        medium_per_second: 1000,
        heavy_per_second: 1000,
        resource_intensive_per_minute: 1000,
        ..RateLimits::default()
    }
}

async fn start_limited(limits: RateLimits) -> Fixture {
    start(SimConfig {
        rate_limits: Some(limits),
        // Tests move the clock by days; the tokens outlive that.
        user_token_ttl: Duration::from_secs(30 * 24 * 3600),
        ..SimConfig::default()
    })
    .await
}

/// Moves `clock` to `offset_ms` past the start of its next window of `window_ms`.
fn align(clock: &Clock, window_ms: u64, offset_ms: u64) {
    let now = clock.now_ms();
    let start = (now / window_ms + 1) * window_ms;
    clock.advance(Duration::from_millis(start + offset_ms - now));
}

/// The next 00:00 UTC by `clock`, as Zoom writes it in `Retry-After`.
fn next_midnight(clock: &Clock) -> String {
    let midnight = (clock.now_ms() / DAY_MS + 1) * DAY_MS;
    let at = UNIX_EPOCH + Duration::from_millis(midnight);
    humantime::format_rfc3339_seconds(at).to_string()
}

/// Category, type, limit and remaining.
fn limit_headers(r: &Resp) -> [String; 4] {
    [
        "x-ratelimit-category",
        "x-ratelimit-type",
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
    ]
    .map(|h| r.header(h).to_owned())
}

fn too_many(message: &str) -> (u16, Value) {
    (429, json!({"code": 429, "message": message}))
}

impl Fixture {
    async fn call(&self, method: Method, path: &str, token: &str, body: &str) -> Resp {
        let auth = format!("Bearer {token}");
        self.send(self.request(method, path, Some(&auth), body))
            .await
    }

    async fn create_meeting(&self, user: &str, token: &str) -> Resp {
        let path = format!("/v2/users/{user}/meetings");
        self.call(Method::POST, &path, token, r#"{"topic":"t"}"#)
            .await
    }

    async fn patch_meeting(&self, id: u64, token: &str) -> Resp {
        let path = format!("/v2/meetings/{id}");
        self.call(Method::PATCH, &path, token, r#"{"topic":"u"}"#)
            .await
    }
}

#[tokio::test]
async fn per_second_refusal_has_zoom_s_message_headers_and_retry_after() {
    let f = start_limited(RateLimits {
        light_per_second: 2,
        ..roomy()
    })
    .await;
    let token = field(&f.login("sim-user").await, "access_token");
    align(&f.sim.clock(), 1000, 0);

    for remaining in ["1", "0"] {
        let ok = f.api_get("/v2/users/me", &token).await;
        assert_eq!(ok.status, 200);
        assert_eq!(limit_headers(&ok), ["Light", "QPS", "2", remaining]);
    }
    let refused = f.api_get("/v2/users/me", &token).await;
    assert_eq!(refused.pair(), too_many(PER_SECOND));
    assert_eq!(limit_headers(&refused), ["Light", "QPS", "2", "0"]);
    assert_eq!(refused.header("retry-after"), "1");

    f.sim.clock().advance(Duration::from_secs(1));
    assert_eq!(f.api_get("/v2/users/me", &token).await.status, 200);
    let stats = f.sim.stats();
    assert_eq!(
        (stats.api_429, stats.api_429_qps, stats.api_429_daily),
        (1, 1, 0)
    );
    let served = CategoryCounts {
        light: 3,
        ..CategoryCounts::default()
    };
    assert_eq!(stats.api_served, served);
}

#[tokio::test]
async fn users_of_one_account_share_its_window_and_categories_do_not() {
    let f = start_limited(RateLimits {
        light_per_second: 1,
        medium_per_second: 1,
        ..roomy()
    })
    .await;
    let alice = field(&f.login("alice").await, "access_token");
    let bob = field(&f.login("bob").await, "access_token");
    align(&f.sim.clock(), 1000, 0);

    assert_eq!(f.api_get("/v2/users/me", &alice).await.status, 200);
    // Bob is another user of the same account: Zoom's limits are the account's.
    let refused = f.api_get("/v2/users/me", &bob).await;
    assert_eq!(refused.pair(), too_many(PER_SECOND));
    // List meetings is Medium, a window of its own.
    let list = f.api_get("/v2/users/me/meetings", &bob).await;
    assert_eq!(
        (list.status.as_u16(), limit_headers(&list)),
        (200, ["Medium", "QPS", "1", "0"].map(String::from))
    );
    let echo = f.call(Method::GET, "/v2/_echo/heavy", &bob, "").await;
    assert_eq!(
        (echo.status.as_u16(), echo.header("x-ratelimit-category")),
        (200, "Heavy")
    );
    let served = f.sim.stats().api_served;
    assert_eq!((served.light, served.medium, served.heavy), (1, 1, 1));
}

#[tokio::test]
async fn a_daily_limit_closes_its_category_until_the_next_utc_midnight() {
    let f = start_limited(RateLimits {
        daily: DailyLimits {
            light: Some(3),
            ..DailyLimits::default()
        },
        ..roomy()
    })
    .await;
    let token = field(&f.login("sim-user").await, "access_token");
    let clock = f.sim.clock();
    align(&clock, DAY_MS, 3600 * 1000);

    for remaining in ["2", "1", "0"] {
        let ok = f.api_get("/v2/users/me", &token).await;
        assert_eq!(limit_headers(&ok), ["Light", "Daily-limit", "3", remaining]);
    }
    let midnight = next_midnight(&clock);
    let closed = f.api_get("/v2/users/me", &token).await;
    assert_eq!(closed.pair(), too_many(DAILY));
    assert_eq!(limit_headers(&closed), ["Light", "Daily-limit", "3", "0"]);
    assert_eq!(closed.header("retry-after"), midnight);
    // Medium has no daily limit: it passes and reports its per-second window.
    let list = f.api_get("/v2/users/me/meetings", &token).await;
    assert_eq!(limit_headers(&list), ["Medium", "QPS", "1000", "999"]);

    // Still closed ten seconds before 00:00 UTC, open again at it.
    let midnight_ms = (clock.now_ms() / DAY_MS + 1) * DAY_MS;
    clock.advance(Duration::from_millis(midnight_ms - 10_000 - clock.now_ms()));
    assert_eq!(f.api_get("/v2/users/me", &token).await.status, 429);
    align(&clock, DAY_MS, 0);
    let reopened = f.api_get("/v2/users/me", &token).await;
    assert_eq!(reopened.status, 200);
    assert_eq!(reopened.header("x-ratelimit-remaining"), "2");
    let stats = f.sim.stats();
    assert_eq!(
        (stats.api_429, stats.api_429_daily, stats.api_429_qps),
        (2, 2, 0)
    );
}

#[tokio::test]
async fn the_meeting_cap_counts_creates_and_updates_against_the_host() {
    let f = start_limited(RateLimits {
        meeting_writes_per_user_per_day: Some(3),
        ..roomy()
    })
    .await;
    let alice = field(&f.login("alice").await, "access_token");
    let bob = field(&f.login("bob").await, "access_token");
    let owner = field(&f.login("sim-user").await, "access_token");
    let clock = f.sim.clock();
    align(&clock, DAY_MS, 3600 * 1000);

    let first = f.create_meeting("me", &alice).await;
    assert_eq!(first.status, 201);
    let id = first.json()["id"].as_u64().expect("meeting id");
    assert_eq!(f.create_meeting("alice", &alice).await.status, 201);
    // The owner's update of Alice's meeting is Alice's third write.
    assert_eq!(f.patch_meeting(id, &owner).await.status, 204);

    let message = "You have exceeded the daily rate limit (3) of Meeting Create/Update \
         API requests permitted for this particular user. You may resume these requests \
         at GMT 00:00:00.";
    let capped = f.create_meeting("me", &alice).await;
    assert_eq!(capped.pair(), too_many(message));
    assert_eq!(limit_headers(&capped), ["Medium", "Daily-limit", "3", "0"]);
    assert_eq!(capped.header("retry-after"), next_midnight(&clock));
    let patch = f.patch_meeting(id, &owner).await;
    assert_eq!(patch.pair(), too_many(message));
    assert_eq!(patch.header("x-ratelimit-category"), "Light");

    // Other users, and Alice's reads, are unaffected; the refused create made nothing.
    assert_eq!(f.create_meeting("me", &bob).await.status, 201);
    assert_eq!(f.create_meeting("me", &owner).await.status, 201);
    let listed = f.api_get("/v2/users/me/meetings", &alice).await;
    assert_eq!(listed.json()["total_records"], 2);
    assert_eq!(
        f.api_get(&format!("/v2/meetings/{id}"), &alice)
            .await
            .status,
        200
    );
    assert_eq!(f.sim.stats().api_429_user, 2);

    align(&clock, DAY_MS, 0);
    assert_eq!(f.create_meeting("me", &alice).await.status, 201);
}

#[tokio::test]
async fn resource_intensive_has_a_per_minute_window() {
    let f = start_limited(RateLimits {
        resource_intensive_per_minute: 2,
        ..roomy()
    })
    .await;
    let token = field(&f.login("sim-user").await, "access_token");
    let clock = f.sim.clock();
    align(&clock, 60_000, 0);

    for remaining in ["1", "0"] {
        let ok = f.call(Method::GET, "/v2/_echo/resource", &token, "").await;
        let expected = ["Resource-intensive", "QPS", "2", remaining];
        assert_eq!(
            (ok.status.as_u16(), limit_headers(&ok)),
            (200, expected.map(String::from))
        );
    }
    // Half a minute on, the window is still closed, for another ~30 s.
    clock.advance(Duration::from_secs(30));
    let refused = f
        .call(Method::POST, "/v2/_echo/resource/x", &token, "")
        .await;
    assert_eq!(refused.pair(), too_many(PER_SECOND));
    let retry: u64 = refused.header("retry-after").parse().expect("seconds");
    assert!((20..=30).contains(&retry), "retry-after {retry}");

    clock.advance(Duration::from_secs(30));
    let reopened = f.call(Method::GET, "/v2/_echo/resource", &token, "").await;
    assert_eq!(reopened.status, 200);
    assert_eq!(f.sim.stats().api_served.resource_intensive, 3);
}
