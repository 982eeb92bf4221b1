//! The limiter on its own, on tokio's paused clock: pacing, the fair queue's
//! shares, `max_wait`, and Zoom's 429s of each kind.

use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use tokio::time::Instant;

use super::*;
use crate::config::{Plan, RateLimit};
use crate::metrics::MetricsRegistry;

const MEDIUM_PATH: &str = "/v2/users/u-1/meetings";
const LIGHT_PATH: &str = "/v2/users/u-1";

fn limiter(medium_per_second: f64, max_wait: Duration) -> (RateLimiter, Clock, MetricsRegistry) {
    let clock = Clock::new();
    let metrics = MetricsRegistry::new();
    let settings = RateLimit {
        enabled: true,
        plan: Plan::Custom,
        rates: Rates::new(30.0, medium_per_second, 10.0, 10.0),
        max_wait,
        headroom: 0.0,
    };
    let limiter = RateLimiter::new(settings, None, clock.clone(), metrics.metrics.clone());
    (limiter, clock, metrics)
}

fn flow(id: &str) -> Flow {
    Flow {
        id: Arc::from(id),
        weight: 1,
    }
}

fn ask(l: &RateLimiter, method: &Method, path: &str, who: &str) -> Ask {
    l.ask(Arc::from("acct"), Some("u-1"), method, path, flow(who))
        .expect("shaping is on")
}

fn zoom_429(kind: &str, retry_after: &str, message: &str) -> (HeaderMap, Vec<u8>) {
    let mut h = HeaderMap::new();
    h.insert(headers::CATEGORY, HeaderValue::from_static("Medium"));
    h.insert(headers::TYPE, HeaderValue::from_str(kind).expect("ascii"));
    h.insert(headers::LIMIT, HeaderValue::from_static("2000"));
    h.insert(
        http::header::RETRY_AFTER,
        HeaderValue::from_str(retry_after).expect("ascii"),
    );
    let body =
        serde_json::to_vec(&serde_json::json!({ "code": 429, "message": message })).expect("json");
    (h, body)
}

#[tokio::test(start_paused = true)]
async fn paces_at_the_rate_and_refuses_after_max_wait() {
    let (l, _, _) = limiter(10.0, Duration::from_millis(450));
    let start = Instant::now();
    let mut admitted = Vec::new();
    let mut refused = 0;
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let l = l.clone();
            tokio::spawn(async move {
                let a = ask(&l, &Method::GET, MEDIUM_PATH, "caller:batch");
                let r = l.admit(&a, Instant::now() + l.max_wait()).await;
                (r, Instant::now())
            })
        })
        .collect();
    for t in tasks {
        match t.await.expect("task") {
            (Ok(()), at) => admitted.push(at - start),
            (Err(Refusal::Busy { category, .. }), _) => {
                assert_eq!(category, Category::Medium);
                refused += 1;
            }
            (Err(other), _) => panic!("unexpected {other:?}"),
        }
    }
    admitted.sort();
    // One slot every 100 ms: at 0, 100, 200, 300, 400; the rest waited 450 ms.
    assert_eq!(admitted.len(), 5, "{admitted:?}");
    for (i, at) in admitted.iter().enumerate() {
        assert!(
            at.as_millis().abs_diff(i as u128 * 100) <= 2,
            "slot {i} at {at:?}"
        );
    }
    assert_eq!(refused, 5);
}

#[tokio::test(start_paused = true)]
async fn an_interactive_caller_passes_a_greedy_backlog() {
    let (l, _, _) = limiter(20.0, Duration::from_secs(30));
    // 64 loops of a batch job, each sending as soon as its last call is admitted.
    let greedy: Vec<_> = (0..64)
        .map(|_| {
            let l = l.clone();
            tokio::spawn(async move {
                loop {
                    let a = ask(&l, &Method::GET, MEDIUM_PATH, "caller:batch");
                    if l.admit(&a, Instant::now() + l.max_wait()).await.is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Two requests a second from another caller: each waits about one slot.
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        let a = ask(&l, &Method::GET, MEDIUM_PATH, "caller:ui");
        let asked = Instant::now();
        l.admit(&a, asked + l.max_wait()).await.expect("admitted");
        worst = worst.max(asked.elapsed());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(worst <= Duration::from_millis(110), "worst wait {worst:?}");
    for g in greedy {
        g.abort();
    }
}

#[tokio::test(start_paused = true)]
async fn a_daily_429_closes_the_category_until_zoom_says() {
    let (l, clock, metrics) = limiter(20.0, Duration::from_secs(5));
    let a = ask(&l, &Method::GET, MEDIUM_PATH, "caller:batch");
    l.admit(&a, Instant::now() + l.max_wait())
        .await
        .expect("open");
    let reset_ms = headers::next_utc_midnight(clock.now_ms());
    let reset = iso(reset_ms);
    let message = "You have reached the maximum daily rate limit for this API. \
                   Refer to the response header for details on when you can make another request.";
    let (h, body) = zoom_429("Daily-limit", &reset, message);
    let seen = l
        .observe(
            &a,
            &Method::GET,
            MEDIUM_PATH,
            StatusCode::TOO_MANY_REQUESTS,
            &h,
            Some(&body),
        )
        .await;
    assert_eq!(seen, Observed::Closed);

    // The next calls of that category are answered here, in Zoom's words.
    let again = ask(&l, &Method::GET, "/v2/users/u-2/meetings", "caller:ui");
    let refusal = l
        .admit(&again, Instant::now() + l.max_wait())
        .await
        .expect_err("closed");
    let resp = refusal.into_response();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()[http::header::RETRY_AFTER], reset.as_str());
    assert_eq!(resp.headers()[headers::TYPE], "Daily-limit");
    assert_eq!(resp.headers()[headers::CATEGORY], "Medium");
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("body")
        .to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(v["code"], 429);
    assert_eq!(v["message"], message);

    // Another category of the same account still passes.
    let light = ask(&l, &Method::GET, LIGHT_PATH, "caller:ui");
    l.admit(&light, Instant::now() + l.max_wait())
        .await
        .expect("light is open");

    // After Zoom's reset time the category opens again.
    clock.advance(Duration::from_millis(reset_ms - clock.now_ms() + 1));
    l.admit(&again, Instant::now() + l.max_wait())
        .await
        .expect("reopened");
    assert!(metrics
        .encode()
        .contains("grantmux_ratelimit_local_429_total{reason=\"daily_closed\"} 1"));
}

#[tokio::test(start_paused = true)]
async fn the_user_meeting_cap_closes_that_user_only() {
    let (l, _, _) = limiter(20.0, Duration::from_secs(5));
    let create = |user: &str| {
        l.ask(
            Arc::from("acct"),
            Some("u-1"),
            &Method::POST,
            &format!("/v2/users/{user}/meetings"),
            flow("caller:ui"),
        )
        .expect("shaping is on")
    };
    let a = create("me");
    let message = "You have exceeded the daily rate limit (100) of Meeting Create/Update API \
                   requests permitted for this particular user. You may resume these requests at GMT 00:00:00.";
    let (h, body) = zoom_429("Daily-limit", "2099-01-01T00:00:00Z", message);
    let seen = l
        .observe(
            &a,
            &Method::POST,
            "/v2/users/me/meetings",
            StatusCode::TOO_MANY_REQUESTS,
            &h,
            Some(&body),
        )
        .await;
    assert_eq!(seen, Observed::Closed);
    // `me` and the user's id are the same user; an update by this grant too.
    for path in ["/v2/users/u-1/meetings", "/v2/users/me/meetings"] {
        let again = l
            .ask(
                Arc::from("acct"),
                Some("u-1"),
                &Method::POST,
                path,
                flow("x"),
            )
            .expect("on");
        assert!(
            l.admit(&again, Instant::now() + l.max_wait())
                .await
                .is_err(),
            "{path}"
        );
    }
    // Another user's creates, and this user's reads, still pass.
    l.admit(&create("u-2"), Instant::now() + l.max_wait())
        .await
        .expect("other user");
    let read = ask(&l, &Method::GET, MEDIUM_PATH, "caller:ui");
    l.admit(&read, Instant::now() + l.max_wait())
        .await
        .expect("reads");
}

#[tokio::test(start_paused = true)]
async fn a_per_second_429_pushes_the_budget_back() {
    let (l, clock, _) = limiter(20.0, Duration::from_secs(5));
    let a = ask(&l, &Method::GET, MEDIUM_PATH, "caller:batch");
    l.admit(&a, Instant::now() + l.max_wait())
        .await
        .expect("open");
    let (h, body) = zoom_429(
        "QPS",
        "1",
        "You have reached the maximum per-second rate limit for this API. Try again later.",
    );
    let seen = l
        .observe(
            &a,
            &Method::GET,
            MEDIUM_PATH,
            StatusCode::TOO_MANY_REQUESTS,
            &h,
            Some(&body),
        )
        .await;
    let now = clock.now_ms();
    assert!(
        matches!(seen, Observed::RetryAfter(at) if at.abs_diff(now + 1000) <= 5),
        "{seen:?}"
    );
    let asked = Instant::now();
    l.admit(&a, asked + l.max_wait())
        .await
        .expect("after the wait");
    let waited = asked.elapsed();
    assert!(
        waited >= Duration::from_millis(990) && waited <= Duration::from_millis(1010),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn categories_and_rates_are_learned_from_zoom() {
    let (l, _, _) = limiter(20.0, Duration::from_secs(5));
    let a = ask(&l, &Method::GET, "/v2/rooms/r-1", "caller:ui");
    assert!(!a.has_budget(), "an unknown route is not shaped");
    let mut h = HeaderMap::new();
    h.insert(headers::CATEGORY, HeaderValue::from_static("Heavy"));
    h.insert(headers::TYPE, HeaderValue::from_static("QPS"));
    h.insert(headers::LIMIT, HeaderValue::from_static("4"));
    h.insert(headers::REMAINING, HeaderValue::from_static("3"));
    l.observe(&a, &Method::GET, "/v2/rooms/r-1", StatusCode::OK, &h, None)
        .await;
    let b = ask(&l, &Method::GET, "/v2/rooms/r-2", "caller:ui");
    assert!(b.has_budget());
    let (budgets, _) = l.budgets();
    let heavy = budgets
        .iter()
        .find(|b| b.category == "Heavy")
        .expect("a Heavy budget");
    assert_eq!(heavy.per_second, 4.0);
    assert_eq!(heavy.zoom_remaining, Some(3));
}

#[test]
fn disabled_shapes_nothing() {
    let settings = RateLimit::off();
    let l = RateLimiter::new(settings, None, Clock::new(), MetricsRegistry::new().metrics);
    assert!(l
        .ask(Arc::from("a"), None, &Method::GET, MEDIUM_PATH, flow("x"))
        .is_none());
}

#[test]
fn meeting_writes_name_their_user() {
    assert_eq!(
        meeting_writer(&Method::POST, "/v2/users/me/meetings", Some("u")),
        Some("u")
    );
    assert_eq!(
        meeting_writer(&Method::POST, "/v2/users/x/webinars", Some("u")),
        Some("x")
    );
    assert_eq!(
        meeting_writer(&Method::PATCH, "/v2/meetings/123", Some("u")),
        Some("u")
    );
    assert_eq!(
        meeting_writer(&Method::GET, "/v2/meetings/123", Some("u")),
        None
    );
    assert_eq!(
        meeting_writer(&Method::DELETE, "/v2/meetings/123", Some("u")),
        None
    );
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a whole-second Unix time (midnights, here).
fn iso(ms: UnixMillis) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    // Civil from days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
