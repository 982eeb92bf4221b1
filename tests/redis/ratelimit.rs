//! Rate-limit budgets shared through Redis (`ratelimit::SharedBudget`): two
//! limiters, as two replicas would hold, on one real `redis-server`. The
//! budgets are slow (one call per minute) so that every assertion is about
//! order, never about timing.

use std::sync::Arc;
use std::time::Duration;

use grantmux::clock::Clock;
use grantmux::config::{Plan, RateLimit};
use grantmux::metrics::MetricsRegistry;
use grantmux::ratelimit::{Flow, Observed, RateLimiter, Rates, Refusal, SharedBudget};
use grantmux::secret::Secret;
use grantmux::store::RedisPrimary;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use tokio::time::Instant;

use crate::support::RedisServer;

const PATH: &str = "/v2/users/u-1/meetings"; // Medium

async fn replica(redis: &RedisServer) -> (RateLimiter, MetricsRegistry) {
    let primary = RedisPrimary::open(&Secret::new(redis.url()), None)
        .await
        .expect("connected");
    let settings = RateLimit {
        enabled: true,
        plan: Plan::Custom,
        // One Medium call a minute: the second one is never due within a test.
        rates: Rates::new(30.0, 1.0 / 60.0, 10.0, 10.0),
        max_wait: Duration::from_millis(200),
        headroom: 0.0,
    };
    let metrics = MetricsRegistry::new();
    let limiter = RateLimiter::new(
        settings,
        Some(SharedBudget::new(primary)),
        Clock::new(),
        metrics.metrics.clone(),
    );
    (limiter, metrics)
}

fn flow() -> Flow {
    Flow {
        id: Arc::from("caller:test"),
        weight: 1,
    }
}

async fn admit(l: &RateLimiter) -> Result<(), Refusal> {
    let ask = l
        .ask(Arc::from("acct-1"), None, &Method::GET, PATH, flow())
        .expect("shaping on");
    l.admit(&ask, Instant::now() + l.max_wait()).await
}

#[tokio::test]
async fn replicas_spend_one_budget() {
    let redis = RedisServer::start();
    let (a, _) = replica(&redis).await;
    let (b, _) = replica(&redis).await;
    admit(&a).await.expect("the first call of the minute");
    // B has never spent anything itself, yet the account's slot is taken.
    assert!(
        matches!(admit(&b).await, Err(Refusal::Busy { .. })),
        "B must see A's spending"
    );
    // Another account's budget is its own.
    let other = b
        .ask(Arc::from("acct-2"), None, &Method::GET, PATH, flow())
        .expect("on");
    b.admit(&other, Instant::now() + b.max_wait())
        .await
        .expect("another account");
}

#[tokio::test]
async fn a_daily_closure_reaches_every_replica() {
    let redis = RedisServer::start();
    let (a, _) = replica(&redis).await;
    let (b, _) = replica(&redis).await;
    let ask = a
        .ask(Arc::from("acct-1"), None, &Method::GET, PATH, flow())
        .expect("on");
    let mut h = HeaderMap::new();
    h.insert("x-ratelimit-category", HeaderValue::from_static("Medium"));
    h.insert("x-ratelimit-type", HeaderValue::from_static("Daily-limit"));
    h.insert(
        "retry-after",
        HeaderValue::from_static("2099-01-01T00:00:00Z"),
    );
    let body = br#"{"code":429,"message":"You have reached the maximum daily rate limit for this API. Refer to the response header for details on when you can make another request."}"#;
    let seen = a
        .observe(
            &ask,
            &Method::GET,
            PATH,
            StatusCode::TOO_MANY_REQUESTS,
            &h,
            Some(body),
        )
        .await;
    assert_eq!(seen, Observed::Closed);
    match admit(&b).await {
        Err(Refusal::Closed { closure, .. }) => {
            assert!(closure.message.contains("maximum daily rate limit"));
            assert_eq!(closure.retry_after.as_deref(), Some("2099-01-01T00:00:00Z"));
        }
        other => panic!("B must answer the closure locally, got {other:?}"),
    }
}

#[tokio::test]
async fn without_redis_each_replica_paces_alone() {
    let mut redis = RedisServer::start();
    let (a, _) = replica(&redis).await;
    let (b, metrics) = replica(&redis).await;
    admit(&a).await.expect("the shared slot");
    redis.kill();
    // Redis is gone: B falls back to its own (unspent) budget rather than
    // failing or waiting on Redis, and says so in its metrics.
    admit(&b).await.expect("B paces locally");
    assert!(
        matches!(admit(&b).await, Err(Refusal::Busy { .. })),
        "and its local budget holds"
    );
    let text = metrics.encode();
    assert!(
        text.lines().any(
            |l| l.starts_with("grantmux_ratelimit_shared_fallbacks_total") && !l.ends_with(" 0")
        ),
        "{text}"
    );
}
