//! Rate limits, injected faults and counters over real sockets.

use std::time::{Duration, Instant};

use bytes::Bytes;
use grantmux::sim::{Faults, RateLimits, SimConfig, SimStats, TokenRequests};
use http::{Method, Request};
use http_body_util::Full;
use serde_json::json;

use crate::support::*;

fn always_error() -> Faults {
    Faults {
        error_rate: 1.0,
        ..Faults::default()
    }
}

fn always_reset() -> Faults {
    Faults {
        reset_rate: 1.0,
        ..Faults::default()
    }
}

#[tokio::test]
async fn rate_limit_answers_429_with_headers_per_category() {
    let limits = RateLimits {
        light_per_second: 2,
        medium_per_second: 1,
        heavy_per_second: 1,
        ..RateLimits::default()
    };
    let f = start(SimConfig {
        rate_limits: Some(limits),
        ..SimConfig::default()
    })
    .await;
    let token = field(&f.login("sim-user").await, "access_token");
    // Stay inside one window on the sim clock: start at a whole second.
    let clock = f.sim.clock();
    clock.advance(Duration::from_millis(1000 - clock.now_ms() % 1000));

    let first = f.api_get("/v2/users/me", &token).await;
    assert_eq!(first.status, 200);
    let headers = |r: &Resp| {
        [
            "x-ratelimit-category",
            "x-ratelimit-type",
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
        ]
        .map(|h| r.header(h).to_owned())
    };
    assert_eq!(headers(&first), ["Light", "QPS", "2", "1"]);
    assert_eq!(
        headers(&f.api_get("/v2/users/me", &token).await),
        ["Light", "QPS", "2", "0"]
    );
    let limited = f.api_get("/v2/users/me", &token).await;
    let message =
        "You have reached the maximum per-second rate limit for this API. Try again later.";
    assert_eq!(
        limited.pair(),
        (429, json!({"code": 429, "message": message}))
    );
    assert_eq!(headers(&limited), ["Light", "QPS", "2", "0"]);
    assert_eq!(limited.header("retry-after"), "1");

    // Medium has its own bucket.
    let post = f.request(
        Method::POST,
        "/v2/users/me/meetings",
        Some(&format!("Bearer {token}")),
        "{}",
    );
    let created = f.send(post).await;
    assert_eq!(
        (
            created.status.as_u16(),
            created.header("x-ratelimit-category")
        ),
        (201, "Medium")
    );

    // The next second opens a new window.
    clock.advance(Duration::from_secs(1));
    assert_eq!(f.api_get("/v2/users/me", &token).await.status, 200);
    let stats = f.sim.stats();
    assert_eq!((stats.api_429, stats.api_429_qps), (1, 1));
    f.sim.set_rate_limits(None);
    assert!(f
        .api_get("/v2/users/me", &token)
        .await
        .headers
        .get("x-ratelimit-limit")
        .is_none());
}

#[tokio::test]
async fn token_endpoint_injected_503_leaves_the_api_alone() {
    let f = start_default().await;
    let token = field(&f.login("sim-user").await, "access_token");
    f.sim.set_token_faults(always_error());
    let expected = (
        503,
        json!({"reason": "Service unavailable", "error": "server_error"}),
    );
    assert_eq!(f.s2s().await.pair(), expected);
    assert_eq!(f.api_get("/v2/users/me", &token).await.status, 200);
    let stats = f.sim.stats();
    assert_eq!(
        (stats.token_requests.account_credentials, stats.token_errors),
        (1, 1)
    );
    f.sim.set_token_faults(Faults::default());
    assert_eq!(f.s2s().await.status, 200);
}

#[tokio::test]
async fn token_endpoint_injected_reset_drops_the_connection() {
    let f = start_default().await;
    let token = field(&f.login("sim-user").await, "access_token");
    f.sim.set_token_faults(always_reset());
    let req = f.request(
        Method::POST,
        "/oauth/token",
        Some(&basic(CLIENT, SECRET)),
        "grant_type=account_credentials&account_id=sim-account",
    );
    let err = f.try_send(req).await.expect_err("no answer");
    assert!(
        err.contains("IncompleteMessage") || err.contains("reset"),
        "{err}"
    );
    assert_eq!(f.api_get("/v2/users/me", &token).await.status, 200);
    assert_eq!(f.sim.stats().token_requests.account_credentials, 1);
}

#[tokio::test]
async fn api_injected_503_and_reset_leave_the_token_endpoint_alone() {
    let f = start_default().await;
    let token = field(&f.login("sim-user").await, "access_token");
    f.sim.set_api_faults(always_error());
    let expected = (
        503,
        json!({"code": 503, "message": "Service temporarily unavailable (injected)."}),
    );
    assert_eq!(f.api_get("/v2/users/me", &token).await.pair(), expected);
    assert_eq!(f.s2s().await.status, 200);

    f.sim.set_api_faults(always_reset());
    let req = f.request(
        Method::GET,
        "/v2/users/me",
        Some(&format!("Bearer {token}")),
        "",
    );
    let err = f.try_send(req).await.expect_err("no answer");
    assert!(
        err.contains("IncompleteMessage") || err.contains("reset"),
        "{err}"
    );
    assert_eq!(f.s2s().await.status, 200);
    assert_eq!(f.sim.stats().api_requests, 2);
}

#[tokio::test]
async fn latency_delays_the_answer() {
    let f = start_default().await;
    let latency = Duration::from_millis(100);
    f.sim.set_token_faults(Faults {
        latency,
        ..Faults::default()
    });
    let started = Instant::now();
    assert_eq!(f.s2s().await.status, 200);
    assert!(started.elapsed() >= latency);
}

/// A refresh request, for a caller that sends it on its own terms.
fn refresh_request(f: &Fixture, refresh_token: &str) -> Request<Full<Bytes>> {
    let mut req = f.request(
        Method::POST,
        "/oauth/token",
        Some(&basic(CLIENT, SECRET)),
        &form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ]),
    );
    req.headers_mut().insert(
        "content-type",
        "application/x-www-form-urlencoded".parse().expect("header"),
    );
    req
}

#[tokio::test]
async fn a_refresh_whose_caller_hangs_up_during_the_answer_delay_still_rotated() {
    let f = start_default().await;
    let first = f.login("sim-user").await;
    let (old_access, old_refresh) = (
        field(&first, "access_token"),
        field(&first, "refresh_token"),
    );
    // Far longer than the test: the caller always hangs up before the answer.
    f.sim.set_token_faults(Faults {
        answer_delay: Duration::from_secs(60),
        ..Faults::default()
    });
    let http = f.http.clone();
    let req = refresh_request(&f, &old_refresh);
    let caller = tokio::spawn(async move { http.request(req).await });
    // Counted and handled in one poll of the sim's handler, before the delay.
    until("the refresh to reach the sim", || {
        f.sim.stats().token_requests.refresh_token == 1
    })
    .await;
    caller.abort();
    let hung_up = caller
        .await
        .expect_err("the caller hung up before the answer");
    assert!(hung_up.is_cancelled(), "{hung_up:?}");

    f.sim.set_token_faults(Faults::default());
    assert_eq!(f.refresh(&old_refresh).await.pair(), invalid_grant());
    assert_eq!(
        f.api_get("/v2/users/me", &old_access).await.pair(),
        invalid_token()
    );
    let rotated = f
        .sim
        .current_access_token(CLIENT, "sim-user")
        .expect("the grant lives on with tokens the caller never saw");
    assert_ne!(rotated, old_access);
    assert_eq!(f.api_get("/v2/users/me", &rotated).await.status, 200);
    let stats = f.sim.stats();
    assert_eq!(
        (stats.invalid_grant, stats.token_errors),
        (1, 1),
        "{stats:?}"
    );
}

#[tokio::test]
async fn answer_delay_acts_at_once_and_answers_late() {
    let f = start_default().await;
    let old_refresh = field(&f.login("sim-user").await, "refresh_token");
    let delay = Duration::from_millis(300);
    f.sim.set_token_faults(Faults {
        answer_delay: delay,
        ..Faults::default()
    });
    let started = Instant::now();
    let http = f.http.clone();
    let req = refresh_request(&f, &old_refresh);
    let slow = tokio::spawn(async move { http.request(req).await });
    until("the refresh to reach the sim", || {
        f.sim.stats().token_requests.refresh_token == 1
    })
    .await;
    // Without a delay of its own, a second use of the same token shows the rotation.
    f.sim.set_token_faults(Faults::default());
    assert_eq!(f.refresh(&old_refresh).await.pair(), invalid_grant());
    let answer = slow
        .await
        .expect("the caller ran")
        .expect("an answer, late");
    assert_eq!(answer.status(), 200);
    assert!(started.elapsed() >= delay, "{:?}", started.elapsed());
}

#[tokio::test]
async fn stats_count_every_kind_of_request() {
    let f = start_default().await;
    let t = f.login("sim-user").await; // 1 authorize, 1 authorization_code
    f.refresh(&field(&t, "refresh_token")).await; // 1 refresh_token
    f.refresh("stale").await; // 1 refresh_token, 1 error
    f.s2s().await; // 1 account_credentials
    f.token("grant_type=password").await; // 1 error, no grant type counted
    f.api_get("/v2/users/me", "bad").await; // 1 api, 1 401
    let revoke = f.request(
        Method::POST,
        "/oauth/revoke",
        Some(&basic(CLIENT, SECRET)),
        "token=nope",
    );
    f.send(revoke).await;
    let expected = SimStats {
        token_requests: TokenRequests {
            authorization_code: 1,
            refresh_token: 2,
            account_credentials: 1,
            client_credentials: 0,
        },
        token_errors: 2,
        invalid_grant: 1,
        api_requests: 1,
        api_401: 1,
        api_429: 0,
        revoke_requests: 1,
        authorize_requests: 1,
        ..SimStats::default()
    };
    assert_eq!(f.sim.stats(), expected);
    let served = f
        .send(f.request(Method::GET, "/_sim/stats", None, ""))
        .await;
    assert_eq!(served.status, 200);
    let served: SimStats = serde_json::from_slice(&served.body).expect("stats JSON");
    assert_eq!(served, expected);
}
