//! Zoom's rate limits, shared fairly (DESIGN §3.11, `ZOOM.md` §5).
//!
//! Zoom limits calls per account and category (Light, Medium, Heavy,
//! Resource-intensive), across every app and user of the account. grantmux puts
//! many systems on one grant, so it keeps one budget per (account, category)
//! and spends it fairly:
//!
//! ```text
//! category.rs  route → category: Zoom's published labels, then what its headers said
//! headers.rs   X-RateLimit-* and Retry-After (seconds, HTTP date, ISO datetime)
//! queue.rs     the fair queue of one budget (weighted by caller)
//! shared.rs    the pacing itself: a GCRA per budget, in memory or (with Redis)
//!              one Lua script for every replica, with the daily closures beside it
//! ```
//!
//! A request asks for one slot ([`RateLimiter::admit`]). With budget to spare it
//! goes at once; otherwise it waits in the budget's fair queue, which one
//! dispatcher task per busy budget serves at the paced rate, for at most
//! `rate_limit.max_wait`, and then gets Zoom's own 429 shape locally. Zoom's
//! answers feed back ([`RateLimiter::observe`]): a per-second 429 pushes the
//! budget back (the proxy retries the call, which Zoom did not perform), and a
//! daily 429 closes the budget until Zoom's reset time, so later calls are
//! answered locally and spend nothing.
//!
//! Pacing is strict (no burst) at `1 - headroom` of Zoom's per-second rate:
//! Zoom counts in fixed one-second windows, so a paced stream never crosses the
//! limit, and the headroom absorbs the jitter between our clock and Zoom's.

mod category;
pub mod headers;
mod queue;
mod shared;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use dashmap::DashMap;
use http::{HeaderValue, Method, StatusCode};
use serde::Serialize;
use tokio::time::Instant;

pub use self::category::{route_template, Category, RouteBook};
pub use self::headers::{LimitType, ZoomLimits};
use self::queue::FairQueue;
pub use self::queue::Flow;
pub use self::shared::SharedBudget;
use crate::body::{self, Body};
use crate::clock::{Clock, UnixMillis};
use crate::config::RateLimit as Settings;
use crate::metrics::{LocalLimitLabels, Metrics, ZoomLimitLabels};

/// Zoom's per-second message (ZOOM.md §5), used on a local 429 after `max_wait`.
const PER_SECOND_MESSAGE: &str =
    "You have reached the maximum per-second rate limit for this API. Try again later.";

/// Budgets per account and category, and the days Zoom has closed.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Replaced whole on a config reload.
    settings: arc_swap::ArcSwap<Settings>,
    routes: RouteBook,
    buckets: DashMap<BucketKey, Arc<Bucket>>,
    /// Closed until a reset time, by (account, category) or (account, user).
    closed: DashMap<ClosedKey, Arc<Closure>>,
    shared: Option<SharedBudget>,
    clock: Clock,
    metrics: Metrics,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BucketKey {
    pub account: Arc<str>,
    pub category: Category,
}

/// What Zoom closed for the rest of its day.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ClosedKey {
    /// A daily limit of the account's category.
    Category(BucketKey),
    /// The per-user cap on meeting and webinar creates and updates.
    UserWrites { account: Arc<str>, user: Arc<str> },
}

/// A daily 429 from Zoom, kept to answer later calls with it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Closure {
    pub until_ms: UnixMillis,
    pub category: Option<Category>,
    /// Zoom's own message.
    pub message: String,
    pub limit: Option<u64>,
    /// Zoom's `Retry-After` as it came when it was a date (absolute, so still
    /// true later); `None`: say the seconds left.
    pub retry_after: Option<String>,
}

/// One budget: the paced rate, the fair queue of those waiting for it.
#[derive(Debug)]
pub(crate) struct Bucket {
    key: BucketKey,
    /// The Redis key of the shared pacing state, built once.
    shared_key: String,
    state: Mutex<BucketState>,
}

#[derive(Debug)]
struct BucketState {
    /// Zoom's per-second limit (the plan's, or what Zoom's headers said).
    per_second: f64,
    /// Time between two admissions: `1 / (per_second × (1 - headroom))`.
    interval: Duration,
    /// Local pacing (GCRA's theoretical arrival time): also the fallback
    /// while Redis is unreachable.
    next_free: Instant,
    queue: FairQueue,
    dispatching: bool,
    /// `X-RateLimit-Remaining` of Zoom's last answer, with its type.
    zoom_remaining: Option<(u64, Option<LimitType>)>,
}

/// What one request will spend: made by [`RateLimiter::ask`].
#[derive(Debug)]
pub struct Ask {
    account: Arc<str>,
    category: Option<Category>,
    bucket: Option<Arc<Bucket>>,
    flow: Flow,
    /// A meeting or webinar create/update: the user whose daily cap it spends.
    writes_for: Option<Arc<str>>,
}

/// Why a request gets a local 429 instead of going to Zoom.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Refusal {
    #[error("waited {waited:?} for the {category} budget")]
    Busy {
        category: Category,
        waited: Duration,
        limit: u64,
    },
    #[error("Zoom's daily limit is reached until {}", .closure.until_ms)]
    Closed {
        closure: Arc<Closure>,
        /// When refused: `Retry-After` in seconds counts from here.
        at_ms: UnixMillis,
    },
}

/// The verdict on one of Zoom's answers.
#[derive(Debug, PartialEq, Eq)]
pub enum Observed {
    Served,
    /// A per-second 429: Zoom did not perform the call; retry after this time.
    RetryAfter(UnixMillis),
    /// A daily 429: passed to the caller, and the budget is now closed.
    Closed,
}

/// One row of `/ratelimits`.
#[derive(Debug, Serialize)]
pub struct BudgetView {
    pub account: String,
    pub category: &'static str,
    pub per_second: f64,
    pub paced_per_second: f64,
    /// Slots free now (0 or 1: pacing holds no burst), as this replica sees them.
    pub available_now: bool,
    pub zoom_remaining: Option<u64>,
    pub zoom_remaining_type: Option<&'static str>,
    pub closed_until_ms: Option<UnixMillis>,
    pub waiting: Vec<WaitingView>,
}

#[derive(Debug, Serialize)]
pub struct WaitingView {
    pub caller: String,
    pub requests: usize,
}

#[derive(Debug, Serialize)]
pub struct ClosureView {
    pub account: String,
    pub category: Option<&'static str>,
    pub user: Option<String>,
    pub until_ms: UnixMillis,
    pub message: String,
}

// === impl Ask ===

impl Ask {
    /// Whether the route's category is known, so that it spends a budget.
    pub fn has_budget(&self) -> bool {
        self.bucket.is_some()
    }
}

// === impl RateLimiter ===

impl RateLimiter {
    pub fn new(
        settings: Settings,
        shared: Option<SharedBudget>,
        clock: Clock,
        metrics: Metrics,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                settings: arc_swap::ArcSwap::from_pointee(settings),
                routes: RouteBook::new(),
                buckets: DashMap::new(),
                closed: DashMap::new(),
                shared,
                clock,
                metrics,
            }),
        }
    }

    pub fn enabled(&self) -> bool {
        self.inner.settings.load().enabled
    }

    pub fn max_wait(&self) -> Duration {
        self.inner.settings.load().max_wait
    }

    /// Takes reloaded settings: every budget gets its category's new rate
    /// (until Zoom's headers state another), and waits start counting the new
    /// `max_wait`. Requests already waiting keep their deadline.
    pub fn reload(&self, settings: Settings) {
        for entry in self.inner.buckets.iter() {
            let bucket = entry.value();
            let per_second = settings.rates.per_second(bucket.key.category);
            bucket.lock().set_rate(per_second, settings.headroom);
        }
        self.inner.settings.store(Arc::new(settings));
    }

    /// What a call of `method path` for `account` will spend, or `None` when
    /// shaping is off. `user` is the grant's own user, for `me` in a path.
    pub fn ask(
        &self,
        account: Arc<str>,
        user: Option<&str>,
        method: &Method,
        path: &str,
        flow: Flow,
    ) -> Option<Ask> {
        if !self.enabled() {
            return None;
        }
        let category = self.inner.routes.category(method, path);
        let bucket = category.map(|category| {
            self.inner.bucket(BucketKey {
                account: account.clone(),
                category,
            })
        });
        let writes_for = meeting_writer(method, path, user).map(Arc::from);
        Some(Ask {
            account,
            category,
            bucket,
            flow,
            writes_for,
        })
    }

    /// Waits for a slot of the request's budget until `deadline`.
    pub async fn admit(&self, ask: &Ask, deadline: Instant) -> Result<(), Refusal> {
        let inner = &self.inner;
        if let Some(closure) = inner.closure_for(ask) {
            return Err(inner.refused(inner.closed_refusal(closure)));
        }
        let Some(bucket) = &ask.bucket else {
            return Ok(());
        };
        let first_look = bucket.lock().queue.is_empty();
        if first_look {
            match inner.take(bucket).await {
                Taken::Yes => return Ok(()),
                Taken::Closed(closure) => return Err(inner.refused(inner.closed_refusal(closure))),
                Taken::Later(_) => {}
            }
        }
        let started = Instant::now();
        let rx = {
            let mut state = bucket.lock();
            let rx = state.queue.push(&ask.flow);
            if !state.dispatching {
                state.dispatching = true;
                tokio::spawn(dispatch(self.inner.clone(), bucket.clone()));
            }
            rx
        };
        let labels = bucket.key.category.label();
        inner
            .metrics
            .ratelimit_held
            .get_or_create(&crate::metrics::CategoryLabel { category: labels })
            .inc();
        let outcome = tokio::time::timeout_at(deadline, rx).await;
        inner
            .metrics
            .ratelimit_held_seconds
            .get_or_create(&crate::metrics::CategoryLabel { category: labels })
            .observe(started.elapsed().as_secs_f64());
        match outcome {
            Ok(Ok(grant)) => grant.map_err(|r| inner.refused(r)),
            // The dispatcher is gone (cannot happen while the limiter lives).
            Ok(Err(_)) => Ok(()),
            Err(_) => {
                let limit = bucket.lock().per_second.round() as u64;
                Err(inner.refused(Refusal::Busy {
                    category: bucket.key.category,
                    waited: started.elapsed(),
                    limit,
                }))
            }
        }
    }

    /// Takes in Zoom's answer to a call: learns the route's category and the
    /// budget's rate, and acts on a 429. `body` is read only for a 429.
    pub async fn observe(
        &self,
        ask: &Ask,
        method: &Method,
        path: &str,
        status: StatusCode,
        headers: &http::HeaderMap,
        body: Option<&[u8]>,
    ) -> Observed {
        let inner = &self.inner;
        let now_ms = inner.clock.now_ms();
        let zoom = ZoomLimits::parse(headers, now_ms);
        if let Some(category) = zoom.category {
            if ask.category != Some(category) {
                inner.routes.learn(method, path, category);
            }
            if let Some(remaining) = zoom.remaining {
                let bucket = inner.bucket(BucketKey {
                    account: ask.account.clone(),
                    category,
                });
                let mut state = bucket.lock();
                state.zoom_remaining = Some((remaining, zoom.kind));
                // A per-second figure from Zoom beats the plan's. (Zoom sends the
                // per-minute figure of Resource-intensive in the same header.)
                if let (Some(LimitType::PerSecond), Some(limit)) = (zoom.kind, zoom.limit) {
                    if category != Category::ResourceIntensive && limit > 0 {
                        state.set_rate(limit as f64, inner.settings.load().headroom);
                    }
                }
            }
        }
        if status != StatusCode::TOO_MANY_REQUESTS {
            return Observed::Served;
        }
        let message = body.and_then(zoom_message).unwrap_or_default();
        let user_cap =
            message.contains("Meeting Create/Update") || message.contains("particular user");
        let daily = user_cap || zoom.kind == Some(LimitType::Daily) || message.contains("daily");
        let kind = match (user_cap, daily) {
            (true, _) => "user_daily",
            (false, true) => "daily",
            (false, false)
                if zoom.kind == Some(LimitType::PerSecond) || message.contains("per-second") =>
            {
                "per_second"
            }
            _ => "unknown",
        };
        inner
            .metrics
            .zoom_429
            .get_or_create(&ZoomLimitLabels { kind })
            .inc();
        let category = zoom.category.or(ask.category);
        if !daily {
            // Zoom did not perform the call. Everyone on this budget waits
            // until the window Zoom named opens; the caller's call is retried.
            let at = zoom.retry_at_ms.unwrap_or(now_ms + 1000);
            if let Some(category) = category {
                let bucket = inner.bucket(BucketKey {
                    account: ask.account.clone(),
                    category,
                });
                inner.defer(&bucket, at.saturating_sub(now_ms)).await;
            }
            return Observed::RetryAfter(at);
        }
        let until_ms = zoom
            .retry_at_ms
            .filter(|at| *at > now_ms)
            .unwrap_or_else(|| headers::next_utc_midnight(now_ms));
        let retry_after = headers
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.trim().parse::<u64>().is_err())
            .map(str::to_owned);
        let closure = Closure {
            until_ms,
            category,
            message,
            limit: zoom.limit,
            retry_after,
        };
        let key = match (&ask.writes_for, user_cap, category) {
            (Some(user), true, _) => Some(ClosedKey::UserWrites {
                account: ask.account.clone(),
                user: user.clone(),
            }),
            (_, false, Some(category)) => Some(ClosedKey::Category(BucketKey {
                account: ask.account.clone(),
                category,
            })),
            _ => None,
        };
        if let Some(key) = key {
            tracing::warn!(
                category = category.map(Category::as_str),
                until_ms,
                "Zoom's daily rate limit reached; answering this budget locally until it resets"
            );
            inner.close(key, closure).await;
        }
        Observed::Closed
    }

    /// Counts one transparent retry after Zoom's per-second 429.
    pub fn count_retry(&self) {
        self.inner.metrics.ratelimit_retries.inc();
    }

    /// Every budget this replica knows, for `/ratelimits`.
    pub fn budgets(&self) -> (Vec<BudgetView>, Vec<ClosureView>) {
        let inner = &self.inner;
        let now_ms = inner.clock.now_ms();
        let now = Instant::now();
        let mut budgets: Vec<BudgetView> = inner
            .buckets
            .iter()
            .map(|entry| {
                let bucket = entry.value();
                let state = bucket.lock();
                let closed = inner
                    .closed
                    .get(&ClosedKey::Category(bucket.key.clone()))
                    .map(|c| c.until_ms)
                    .filter(|until| *until > now_ms);
                BudgetView {
                    account: bucket.key.account.to_string(),
                    category: bucket.key.category.as_str(),
                    per_second: state.per_second,
                    paced_per_second: 1.0 / state.interval.as_secs_f64(),
                    available_now: state.next_free <= now,
                    zoom_remaining: state.zoom_remaining.map(|(n, _)| n),
                    zoom_remaining_type: state
                        .zoom_remaining
                        .and_then(|(_, kind)| kind.map(LimitType::label)),
                    closed_until_ms: closed,
                    waiting: state
                        .queue
                        .waiting()
                        .into_iter()
                        .map(|(caller, requests)| WaitingView {
                            caller: caller.to_string(),
                            requests,
                        })
                        .collect(),
                }
            })
            .collect();
        budgets.sort_by(|a, b| (&a.account, a.category).cmp(&(&b.account, b.category)));
        let mut closures: Vec<ClosureView> = inner
            .closed
            .iter()
            .filter(|e| e.value().until_ms > now_ms)
            .map(|e| {
                let (account, user) = match e.key() {
                    ClosedKey::Category(k) => (k.account.to_string(), None),
                    ClosedKey::UserWrites { account, user } => {
                        (account.to_string(), Some(user.to_string()))
                    }
                };
                ClosureView {
                    account,
                    category: e.value().category.map(Category::as_str),
                    user,
                    until_ms: e.value().until_ms,
                    message: e.value().message.clone(),
                }
            })
            .collect();
        closures.sort_by(|a, b| (&a.account, a.until_ms).cmp(&(&b.account, b.until_ms)));
        (budgets, closures)
    }
}

/// The slot taken, or when to try again, or the day is closed.
enum Taken {
    Yes,
    Later(Duration),
    Closed(Arc<Closure>),
}

// === impl Inner ===

impl Inner {
    fn bucket(&self, key: BucketKey) -> Arc<Bucket> {
        if let Some(b) = self.buckets.get(&key) {
            return b.clone();
        }
        let settings = self.settings.load();
        let per_second = settings.rates.per_second(key.category);
        self.buckets
            .entry(key.clone())
            .or_insert_with(|| Arc::new(Bucket::new(key, per_second, settings.headroom)))
            .clone()
    }

    /// A closure that still holds for this request, dropping expired ones.
    fn closure_for(&self, ask: &Ask) -> Option<Arc<Closure>> {
        if self.closed.is_empty() {
            return None;
        }
        let now_ms = self.clock.now_ms();
        let keys = ask
            .category
            .map(|category| {
                ClosedKey::Category(BucketKey {
                    account: ask.account.clone(),
                    category,
                })
            })
            .into_iter()
            .chain(ask.writes_for.as_ref().map(|user| ClosedKey::UserWrites {
                account: ask.account.clone(),
                user: user.clone(),
            }));
        for key in keys {
            let Some(closure) = self.closed.get(&key).map(|c| c.clone()) else {
                continue;
            };
            if closure.until_ms > now_ms {
                return Some(closure);
            }
            self.closed.remove_if(&key, |_, c| c.until_ms <= now_ms);
        }
        None
    }

    /// One slot of `bucket` now, from Redis when shared (falling back to
    /// local pacing while it is unreachable).
    async fn take(&self, bucket: &Bucket) -> Taken {
        if let Some(shared) = &self.shared {
            let interval = bucket.lock().interval;
            match shared.take(bucket, interval, slack(interval)).await {
                Ok(shared::Took::Yes) => return Taken::Yes,
                Ok(shared::Took::Later(wait)) => return Taken::Later(wait),
                Ok(shared::Took::Closed(closure)) => {
                    let closure = Arc::new(closure);
                    self.closed
                        .insert(ClosedKey::Category(bucket.key.clone()), closure.clone());
                    return Taken::Closed(closure);
                }
                Err(()) => {
                    self.metrics.ratelimit_shared_fallbacks.inc();
                }
            }
        }
        let now = Instant::now();
        let mut state = bucket.lock();
        if state.next_free <= now {
            let from = state.next_free.max(now - slack(state.interval));
            state.next_free = from + state.interval;
            Taken::Yes
        } else {
            Taken::Later(state.next_free - now)
        }
    }

    /// No slot before `wait` from now (Zoom said so with a 429).
    async fn defer(&self, bucket: &Bucket, wait_ms: u64) {
        let wait = Duration::from_millis(wait_ms.min(60_000));
        {
            let mut state = bucket.lock();
            let until = Instant::now() + wait;
            state.next_free = state.next_free.max(until);
        }
        if let Some(shared) = &self.shared {
            if shared.defer(bucket, wait).await.is_err() {
                self.metrics.ratelimit_shared_fallbacks.inc();
            }
        }
    }

    async fn close(&self, key: ClosedKey, closure: Closure) {
        let closure = Arc::new(closure);
        self.closed.insert(key.clone(), closure.clone());
        if let ClosedKey::Category(bucket_key) = &key {
            if let Some(bucket) = self.buckets.get(bucket_key).map(|b| b.clone()) {
                bucket
                    .lock()
                    .queue
                    .refuse_all(&self.closed_refusal(closure.clone()));
            }
        }
        if let Some(shared) = &self.shared {
            let ttl_ms = closure.until_ms.saturating_sub(self.clock.now_ms());
            if shared.close(&key, &closure, ttl_ms).await.is_err() {
                self.metrics.ratelimit_shared_fallbacks.inc();
            }
        }
    }

    fn closed_refusal(&self, closure: Arc<Closure>) -> Refusal {
        Refusal::Closed {
            closure,
            at_ms: self.clock.now_ms(),
        }
    }

    /// Counts a local 429 by its reason.
    fn refused(&self, refusal: Refusal) -> Refusal {
        let reason = match &refusal {
            Refusal::Busy { .. } => "max_wait",
            Refusal::Closed { closure, .. }
                if closure.category.is_none() || closure.message.contains("particular user") =>
            {
                "user_daily_closed"
            }
            Refusal::Closed { .. } => "daily_closed",
        };
        self.metrics
            .ratelimit_local_429
            .get_or_create(&LocalLimitLabels { reason })
            .inc();
        refusal
    }
}

/// How late a slot may be taken and still count from its own time rather
/// than from now. The dispatcher wakes up to a timer tick late; without this,
/// each late wake-up would push every later slot back and the budget would
/// run below its rate. Small enough that no one-second window of Zoom's
/// sees more than the paced rate plus headroom.
fn slack(interval: Duration) -> Duration {
    (interval / 10).min(Duration::from_millis(5))
}

/// Serves one budget's queue at the paced rate until it is empty.
async fn dispatch(inner: Arc<Inner>, bucket: Arc<Bucket>) {
    loop {
        {
            let mut state = bucket.lock();
            state.queue.prune();
            if state.queue.is_empty() {
                state.dispatching = false;
                return;
            }
        }
        match inner.take(&bucket).await {
            Taken::Yes => {
                let served = bucket.lock().queue.serve_next();
                if !served {
                    // Everyone left between the check and the slot: give it back
                    // (locally; a shared slot is simply unused).
                    let mut state = bucket.lock();
                    state.next_free = state
                        .next_free
                        .checked_sub(state.interval)
                        .unwrap_or(state.next_free);
                }
            }
            Taken::Later(wait) => {
                tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
            }
            Taken::Closed(closure) => {
                let refusal = inner.closed_refusal(closure);
                bucket.lock().queue.refuse_all(&refusal);
            }
        }
    }
}

// === impl Bucket ===

impl Bucket {
    fn new(key: BucketKey, per_second: f64, headroom: f64) -> Self {
        let shared_key = shared::bucket_key(&key);
        let mut state = BucketState {
            per_second,
            interval: Duration::ZERO,
            next_free: Instant::now(),
            queue: FairQueue::default(),
            dispatching: false,
            zoom_remaining: None,
        };
        state.set_rate(per_second, headroom);
        Self {
            key,
            shared_key,
            state: Mutex::new(state),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BucketState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl BucketState {
    fn set_rate(&mut self, per_second: f64, headroom: f64) {
        self.per_second = per_second;
        let paced = (per_second * (1.0 - headroom)).max(f64::MIN_POSITIVE);
        self.interval = Duration::from_secs_f64((1.0 / paced).min(3600.0));
    }
}

// === impl Refusal ===

impl Refusal {
    /// The answer the caller gets, in Zoom's 429 shape (ZOOM.md §5), with a
    /// header saying grantmux answered, not Zoom.
    pub fn into_response(self) -> http::Response<Body> {
        let (message, category, kind, limit, retry_after) = match &self {
            Refusal::Busy {
                category, limit, ..
            } => (
                PER_SECOND_MESSAGE.to_owned(),
                Some(*category),
                LimitType::PerSecond,
                Some(*limit),
                HeaderValue::from_static("1"),
            ),
            Refusal::Closed { closure: c, at_ms } => {
                let retry_after = c
                    .retry_after
                    .as_deref()
                    .and_then(|v| HeaderValue::from_str(v).ok())
                    .unwrap_or_else(|| {
                        HeaderValue::from(headers::retry_after_secs(*at_ms, c.until_ms))
                    });
                (
                    c.message.clone(),
                    c.category,
                    LimitType::Daily,
                    c.limit,
                    retry_after,
                )
            }
        };
        let mut resp = body::json(
            StatusCode::TOO_MANY_REQUESTS,
            &serde_json::json!({ "code": 429, "message": message }),
        );
        let h = resp.headers_mut();
        match category {
            Some(category) => headers::stamp(h, category, kind, limit, retry_after),
            None => {
                h.insert(http::header::RETRY_AFTER, retry_after);
            }
        }
        h.insert(
            http::HeaderName::from_static("x-grantmux-ratelimit"),
            HeaderValue::from_static("local"),
        );
        resp
    }
}

/// Zoom's `message` from an error body.
fn zoom_message(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("message")?.as_str().map(str::to_owned)
}

/// The user whose daily cap of meeting and webinar creates and updates a call
/// spends (ZOOM.md §5: 100 per user per day): the path's user for a create,
/// the grant's own user for an update (Zoom counts it against the host, whom
/// only Zoom knows; under a user grant that is nearly always the grant's user).
fn meeting_writer<'a>(method: &Method, path: &'a str, user: Option<&'a str>) -> Option<&'a str> {
    let path = path.split('?').next().unwrap_or_default();
    let path = path.strip_prefix("/v2").unwrap_or(path);
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match (method, segments.as_slice()) {
        (&Method::POST, ["users", id, "meetings" | "webinars"]) => {
            if *id == "me" {
                user
            } else {
                Some(id)
            }
        }
        (&Method::PATCH, ["meetings" | "webinars", _]) => user,
        _ => None,
    }
}

/// Per-category per-second rates (Resource-intensive's per-minute figure
/// divided by 60), from the plan and its overrides.
#[derive(Clone, Debug, PartialEq)]
pub struct Rates {
    by_category: HashMap<Category, f64>,
}

impl Rates {
    pub fn new(light: f64, medium: f64, heavy: f64, resource_intensive_per_minute: f64) -> Self {
        Self {
            by_category: HashMap::from([
                (Category::Light, light),
                (Category::Medium, medium),
                (Category::Heavy, heavy),
                (
                    Category::ResourceIntensive,
                    resource_intensive_per_minute / 60.0,
                ),
            ]),
        }
    }

    pub fn per_second(&self, category: Category) -> f64 {
        self.by_category.get(&category).copied().unwrap_or(1.0)
    }

    pub fn set(&mut self, category: Category, per_second: f64) {
        self.by_category.insert(category, per_second);
    }
}

#[cfg(test)]
mod tests;
