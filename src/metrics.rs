//! Prometheus metrics, registered once at start-up and passed down as cheap handles.
//!
//! Labels stay bounded: route classes, status classes, results, grant states
//! and rate-limit categories. Never a path, a token, or a grant, user or
//! account id: grants are counted by state at scrape time ([`GrantStates`]),
//! so 100k grants cost no more series than ten.

use std::sync::{Arc, Mutex};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

mod grants;
mod process;

pub use self::grants::{GrantStates, Standing};
pub use self::process::ProcessCollector;

/// The route class of a request, as seen by the proxy listener.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Route {
    Api,
    OauthToken,
    OauthRevoke,
    OauthAuthorize,
    Webhook,
    Rejected,
}

impl Route {
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Api => "api",
            Route::OauthToken => "oauth_token",
            Route::OauthRevoke => "oauth_revoke",
            Route::OauthAuthorize => "oauth_authorize",
            Route::Webhook => "webhook",
            Route::Rejected => "rejected",
        }
    }
}

impl EncodeLabelValue for Route {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: Route,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenCallLabels {
    /// `refresh`, `mint`, `exchange` (an authorization code) or `adopt` (a
    /// legacy refresh token presented by a caller).
    pub kind: &'static str,
    /// `ok`, `invalid_grant`, `rejected`, `transient`, `unknown_app`.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReplayLabels {
    /// `refreshed` (this replay caused the refresh) or `rotated` (someone else had).
    pub cause: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CategoryLabels {
    pub category: String,
    /// `per_second`, `daily` or `unknown`: what `X-RateLimit-Type` said.
    pub r#type: &'static str,
}

/// A rate-limit category, lowercase (`light` … `resource_intensive`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CategoryLabel {
    pub category: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LocalLimitLabels {
    /// `max_wait`, `daily_closed` or `user_daily_closed`.
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `ok`, `restart_needed` (applied, but a section needing a restart changed
    /// too) or `refused` (the file did not validate; nothing changed).
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    /// `validated`, `deauthorized`, `accepted`, `refused` (signature or
    /// timestamp), `malformed` or `failed` (the store did not take it).
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    /// `target:{name}` or `notify:{name}`.
    pub queue: String,
    /// `delivered`, `failed` (will be tried again), `dead` (given up) or
    /// `unqueued` (the store refused the push; tried from memory instead).
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub queue: String,
    /// `pending` or `dead`.
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ZoomLimitLabels {
    /// `per_second`, `daily`, `user_daily` or `unknown`.
    pub kind: &'static str,
}

/// Every metric handle. Clones share the underlying series.
#[derive(Clone, Debug)]
pub struct Metrics {
    pub requests: Family<RequestLabels, Counter>,
    pub upstream_seconds: Histogram,
    pub upstream_connections: Counter,
    pub token_calls: Family<TokenCallLabels, Counter>,
    pub replays: Family<ReplayLabels, Counter>,
    /// Time a refresh took, from taking the grant's lock to publishing.
    pub refresh_seconds: Histogram,
    /// Time from Zoom's answer to the durable write of the rotated token.
    pub persist_seconds: Histogram,
    pub ratelimit_remaining: Family<CategoryLabels, Gauge>,
    /// Requests that waited in a budget's fair queue.
    pub ratelimit_held: Family<CategoryLabel, Counter>,
    pub ratelimit_held_seconds: Family<CategoryLabel, Histogram>,
    /// 429s grantmux answered itself, without calling Zoom.
    pub ratelimit_local_429: Family<LocalLimitLabels, Counter>,
    /// 429s Zoom answered.
    pub zoom_429: Family<ZoomLimitLabels, Counter>,
    /// Calls retried after Zoom's per-second 429.
    pub ratelimit_retries: Counter,
    /// Budget takes answered locally because Redis was unreachable.
    pub ratelimit_shared_fallbacks: Counter,
    /// Config reloads (SIGHUP, `--watch-config`), by result.
    pub config_reloads: Family<ReloadLabels, Counter>,
    /// Deliveries to `POST /webhooks/zoom`, by result.
    pub webhooks: Family<WebhookLabels, Counter>,
    /// Grants wiped by Zoom's `app_deauthorized`.
    pub grants_deauthorized: Counter,
    /// Attempts to deliver queued events, by queue and result.
    pub deliveries: Family<DeliveryLabels, Counter>,
    /// Messages waiting in, and dead-lettered from, each delivery queue.
    pub delivery_queue: Family<QueueLabels, Gauge>,
}

/// The registry and the handles, built together.
#[derive(Clone, Debug)]
pub struct MetricsRegistry {
    pub registry: Arc<Mutex<Registry>>,
    pub metrics: Metrics,
}

/// Zoom's documented rate-limit categories; anything else is reported as `other`.
const CATEGORIES: [&str; 4] = ["Light", "Medium", "Heavy", "Resource-intensive"];

// === impl Metrics ===

impl Metrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            requests: Family::default(),
            upstream_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            upstream_connections: Counter::default(),
            token_calls: Family::default(),
            replays: Family::default(),
            refresh_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            persist_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            ratelimit_remaining: Family::default(),
            ratelimit_held: Family::default(),
            ratelimit_held_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 14))
            }),
            ratelimit_local_429: Family::default(),
            zoom_429: Family::default(),
            ratelimit_retries: Counter::default(),
            ratelimit_shared_fallbacks: Counter::default(),
            config_reloads: Family::default(),
            webhooks: Family::default(),
            grants_deauthorized: Counter::default(),
            deliveries: Family::default(),
            delivery_queue: Family::default(),
        };
        // Zero series up front, so dashboards see them before the first replay.
        for cause in ["refreshed", "rotated"] {
            let _ = m.replays.get_or_create(&ReplayLabels { cause });
        }
        let r = registry.sub_registry_with_prefix("grantmux");
        // `grantmux_build_info{version} 1`: an OpenMetrics info metric.
        r.register(
            "build",
            "The grantmux build serving this endpoint",
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );
        r.register(
            "requests",
            "Requests answered on the proxy listener, by route class and status",
            m.requests.clone(),
        );
        r.register(
            "upstream_duration_seconds",
            "Time until Zoom's API response headers arrived",
            m.upstream_seconds.clone(),
        );
        r.register(
            "upstream_connections",
            "Connections opened to Zoom's API origin (kept alive and reused)",
            m.upstream_connections.clone(),
        );
        r.register(
            "zoom_token_calls",
            "Calls grantmux made to Zoom's token endpoint, by kind and result",
            m.token_calls.clone(),
        );
        r.register(
            "replays",
            "API requests replayed after Zoom answered 401 code 124",
            m.replays.clone(),
        );
        r.register(
            "refresh_duration_seconds",
            "Refresh lag: time from taking a grant's lock to publishing its new token",
            m.refresh_seconds.clone(),
        );
        r.register(
            "persist_duration_seconds",
            "Time from Zoom's token answer to the durable write of the rotated token",
            m.persist_seconds.clone(),
        );
        r.register(
            "zoom_ratelimit_remaining",
            "X-RateLimit-Remaining last seen from Zoom, by category and X-RateLimit-Type",
            m.ratelimit_remaining.clone(),
        );
        r.register(
            "ratelimit_held",
            "Requests that waited for their rate-limit budget, by category",
            m.ratelimit_held.clone(),
        );
        r.register(
            "ratelimit_held_seconds",
            "Time requests waited for their rate-limit budget, by category",
            m.ratelimit_held_seconds.clone(),
        );
        r.register(
            "ratelimit_local_429",
            "429s answered by grantmux without calling Zoom, by reason",
            m.ratelimit_local_429.clone(),
        );
        r.register(
            "zoom_429",
            "429s Zoom answered, by the limit it named",
            m.zoom_429.clone(),
        );
        r.register(
            "ratelimit_retries",
            "Calls retried transparently after Zoom's per-second 429",
            m.ratelimit_retries.clone(),
        );
        r.register(
            "config_reloads",
            "Config reloads (SIGHUP or a watched file), by result",
            m.config_reloads.clone(),
        );
        r.register(
            "webhooks",
            "Zoom webhook deliveries received, by result",
            m.webhooks.clone(),
        );
        r.register(
            "grants_deauthorized",
            "Grants wiped because Zoom sent app_deauthorized",
            m.grants_deauthorized.clone(),
        );
        r.register(
            "deliveries",
            "Attempts to deliver queued webhook events and grant notifications, by result",
            m.deliveries.clone(),
        );
        r.register(
            "delivery_queue",
            "Messages in each delivery queue, waiting or dead-lettered",
            m.delivery_queue.clone(),
        );
        r.register(
            "ratelimit_shared_fallbacks",
            "Budget decisions made locally because Redis was unreachable",
            m.ratelimit_shared_fallbacks.clone(),
        );
        m
    }

    pub fn token_call(&self, kind: &'static str, result: &'static str) {
        self.token_calls
            .get_or_create(&TokenCallLabels { kind, result })
            .inc();
    }

    /// Records Zoom's rate-limit headers from an API answer.
    pub fn observe_ratelimit(&self, headers: &http::HeaderMap) {
        // Named by constants: a `&str` name would be parsed and checked on every call.
        const REMAINING: http::HeaderName = http::HeaderName::from_static("x-ratelimit-remaining");
        const CATEGORY: http::HeaderName = http::HeaderName::from_static("x-ratelimit-category");
        const TYPE: http::HeaderName = http::HeaderName::from_static("x-ratelimit-type");
        let Some(remaining) = headers
            .get(REMAINING)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok())
        else {
            return;
        };
        let category = headers
            .get(CATEGORY)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| CATEGORIES.iter().find(|c| c.eq_ignore_ascii_case(v.trim())))
            .copied()
            .unwrap_or("other");
        self.ratelimit_remaining
            .get_or_create(&CategoryLabels {
                category: category.to_owned(),
                r#type: headers
                    .get(TYPE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(crate::ratelimit::LimitType::parse)
                    .map_or("unknown", crate::ratelimit::LimitType::label),
            })
            .set(remaining);
    }
}

// === impl MetricsRegistry ===

impl Default for MetricsRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricsRegistry {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        // Unprefixed: `process_*` are the names every exporter shares.
        registry.register_collector(Box::new(ProcessCollector));
        Self {
            registry: Arc::new(Mutex::new(registry)),
            metrics,
        }
    }

    /// Adds a collector evaluated at scrape time ([`GrantStates`], for one).
    pub fn register_collector(&self, collector: Box<dyn prometheus_client::collector::Collector>) {
        let mut registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        registry
            .sub_registry_with_prefix("grantmux")
            .register_collector(collector);
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
            out.clear();
        }
        out
    }
}
