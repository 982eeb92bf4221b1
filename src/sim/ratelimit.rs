//! Zoom's rate limits (ZOOM.md §5), enforced as fixed windows on the sim's clock,
//! so the sim can be the oracle for grantmux's own limiter.
//!
//! - Every request spends one category, by Zoom's "Rate Limit Label" for its
//!   route ([`Category::of`]).
//! - Per account and category, a rate window: one second for Light, Medium and
//!   Heavy, one minute for Resource-intensive.
//! - Optionally, per account, a daily limit per category and a combined one for
//!   Heavy and Resource-intensive. Days are UTC days: they end at 00:00 UTC.
//! - Meeting creates and updates also spend their user's daily cap (100 by default).
//!
//! The daily limits are checked first, then the per-user cap, then the rate
//! window, so a closed day spends no per-second budget; a refused request spends
//! nothing anywhere. Zoom does not publish its algorithm; fixed windows keep the
//! tests exact. They align with whole seconds, minutes and days of Unix time,
//! which has no leap seconds, so a day's window ends at 00:00 UTC.
//!
//! `verdict.rs` turns an admission into Zoom's headers and 429 answers.

mod verdict;

use std::collections::HashMap;

use http::Method;

use super::config::RateLimits;

pub(crate) use verdict::{Kind, Verdict};

const SECOND_MS: u64 = 1000;
const MINUTE_MS: u64 = 60 * SECOND_MS;
const DAY_MS: u64 = 24 * 60 * MINUTE_MS;

/// Zoom's "Rate Limit Label" of each simulated route, from the API reference
/// (ZOOM.md §5): segments after `/v2/`, `*` for an id. Routes not listed fall
/// back to [`Category::of`]'s rules.
const LABELS: &[(Method, &[&str], Category)] = &[
    (Method::GET, &["users", "*"], Category::Light), // Get a user
    (Method::GET, &["users", "*", "meetings"], Category::Medium), // List meetings
    (Method::POST, &["users", "*", "meetings"], Category::Medium), // Create a meeting
    (Method::GET, &["meetings", "*"], Category::Light), // Get a meeting
    (Method::PATCH, &["meetings", "*"], Category::Light), // Update a meeting
    (Method::DELETE, &["meetings", "*"], Category::Light), // Delete a meeting
    (Method::POST, &["im", "chat", "messages"], Category::Medium), // Send chatbot messages
];

/// One of Zoom's four rate-limit labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Category {
    Light,
    Medium,
    Heavy,
    ResourceIntensive,
}

/// What the limits need to know about one request.
#[derive(Debug)]
pub(crate) struct Ask<'a> {
    pub account: &'a str,
    pub category: Category,
    /// The user whose meeting create/update cap this request spends, if any.
    pub meeting_writer: Option<&'a str>,
}

/// Request counts per window, for every account, category and user seen.
#[derive(Debug, Default)]
pub(crate) struct Limiter {
    windows: HashMap<Key, Window>,
}

/// Whose count a window holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    /// An (account, category)'s per-second or per-minute window.
    Rate(String, Category),
    /// An (account, category)'s day.
    Daily(String, Category),
    /// An account's day of Heavy and Resource-intensive calls together.
    HeavyAndResource(String),
    /// A user's day of meeting creates and updates (the sim has one account, so
    /// user ids are unique).
    MeetingWrites(String),
}

/// A limit of `max` requests per fixed window of `window_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limit {
    pub max: u32,
    pub window_ms: u64,
}

/// One limit a request must fit: which count, what bound, and how Zoom names it.
#[derive(Debug)]
struct Check {
    key: Key,
    limit: Limit,
    kind: Kind,
}

/// The checks of one request, in the order they are made.
#[derive(Debug)]
struct Plan {
    days: Vec<Check>,
    user: Option<Check>,
    rate: Check,
}

/// What a window reports once a request is counted in it.
#[derive(Clone, Copy, Debug)]
struct Reading {
    kind: Kind,
    limit: Limit,
    remaining: u32,
}

/// The count of the window numbered `index` (`now_ms / window_ms`).
#[derive(Clone, Copy, Debug)]
struct Window {
    index: u64,
    used: u32,
}

// === impl Category ===

impl Category {
    /// The category `method path` spends: [`LABELS`] for the sim's routes; then
    /// `/v2/_echo/heavy*` Heavy and `/v2/_echo/resource*` Resource-intensive, so
    /// proxy tests can reach every category; then `GET`/`HEAD` Light and the
    /// rest Medium.
    pub(crate) fn of(method: &Method, path: &str) -> Self {
        if path.starts_with("/v2/_echo/heavy") {
            return Self::Heavy;
        }
        if path.starts_with("/v2/_echo/resource") {
            return Self::ResourceIntensive;
        }
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(2).collect();
        let labelled = LABELS
            .iter()
            .find(|(m, pattern, _)| m == method && matches(pattern, &segments));
        match labelled {
            Some(&(_, _, category)) => category,
            None if method == Method::GET || method == Method::HEAD => Self::Light,
            None => Self::Medium,
        }
    }

    /// Zoom's spelling, as in `X-RateLimit-Category`.
    fn name(self) -> &'static str {
        match self {
            Self::Light => "Light",
            Self::Medium => "Medium",
            Self::Heavy => "Heavy",
            Self::ResourceIntensive => "Resource-intensive",
        }
    }

    fn rate(self, limits: &RateLimits) -> Limit {
        let (max, window_ms) = match self {
            Self::Light => (limits.light_per_second, SECOND_MS),
            Self::Medium => (limits.medium_per_second, SECOND_MS),
            Self::Heavy => (limits.heavy_per_second, SECOND_MS),
            Self::ResourceIntensive => (limits.resource_intensive_per_minute, MINUTE_MS),
        };
        Limit { max, window_ms }
    }

    fn daily(self, limits: &RateLimits) -> Option<u32> {
        let daily = &limits.daily;
        match self {
            Self::Light => daily.light,
            Self::Medium => daily.medium,
            Self::Heavy => daily.heavy,
            Self::ResourceIntensive => daily.resource_intensive,
        }
    }
}

fn matches(pattern: &[&str], segments: &[&str]) -> bool {
    pattern.len() == segments.len()
        && pattern
            .iter()
            .zip(segments)
            .all(|(p, s)| *p == "*" || p == s)
}

// === impl Limiter ===

impl Limiter {
    /// Counts `ask` against every window it spends if it fits all of them, and
    /// against none if it does not.
    pub(crate) fn admit(&mut self, ask: &Ask<'_>, limits: &RateLimits, now_ms: u64) -> Verdict {
        let plan = Plan::new(ask, limits);
        let refused = plan
            .in_order()
            .find(|check| self.used(check, now_ms) >= check.limit.max);
        if let Some(check) = refused {
            return Verdict::refused(ask.category, check.kind, check.limit, now_ms);
        }
        let rate = self.spend(&plan.rate, now_ms);
        if let Some(user) = &plan.user {
            self.spend(user, now_ms);
        }
        // A configured daily limit is what the headers report, as Zoom's do
        // (ZOOM.md §5); the nearer one if there are two.
        let days = plan.days.iter().map(|check| self.spend(check, now_ms));
        let shown = days.min_by_key(|r| r.remaining).unwrap_or(rate);
        Verdict::admitted(ask.category, shown)
    }

    fn used(&self, check: &Check, now_ms: u64) -> u32 {
        let index = check.limit.index(now_ms);
        self.windows
            .get(&check.key)
            .filter(|w| w.index == index)
            .map_or(0, |w| w.used)
    }

    /// Counts one request in the check's window.
    fn spend(&mut self, check: &Check, now_ms: u64) -> Reading {
        let index = check.limit.index(now_ms);
        let window = self
            .windows
            .entry(check.key.clone())
            .or_insert(Window { index, used: 0 });
        if window.index != index {
            *window = Window { index, used: 0 };
        }
        window.used = window.used.saturating_add(1);
        Reading {
            kind: check.kind,
            limit: check.limit,
            remaining: check.limit.max.saturating_sub(window.used),
        }
    }
}

// === impl Plan ===

impl Plan {
    fn new(ask: &Ask<'_>, limits: &RateLimits) -> Self {
        let account = ask.account.to_owned();
        let category = ask.category;
        let mut days = Vec::new();
        if let Some(max) = category.daily(limits) {
            let key = Key::Daily(account.clone(), category);
            days.push(Check::daily(key, max, Kind::Daily));
        }
        let heavy = matches!(category, Category::Heavy | Category::ResourceIntensive);
        if let Some(max) = limits.daily.heavy_and_resource_intensive.filter(|_| heavy) {
            let key = Key::HeavyAndResource(account.clone());
            days.push(Check::daily(key, max, Kind::Daily));
        }
        let user = ask
            .meeting_writer
            .zip(limits.meeting_writes_per_user_per_day)
            .map(|(user, max)| Check::daily(Key::MeetingWrites(user.into()), max, Kind::User));
        let rate = Check {
            key: Key::Rate(account, category),
            limit: category.rate(limits),
            kind: Kind::Rate,
        };
        Self { days, user, rate }
    }

    fn in_order(&self) -> impl Iterator<Item = &Check> {
        self.days
            .iter()
            .chain(&self.user)
            .chain(std::iter::once(&self.rate))
    }
}

// === impl Check ===

impl Check {
    fn daily(key: Key, max: u32, kind: Kind) -> Self {
        let limit = Limit {
            max,
            window_ms: DAY_MS,
        };
        Self { key, limit, kind }
    }
}

// === impl Limit ===

impl Limit {
    fn index(self, now_ms: u64) -> u64 {
        now_ms / self.window_ms
    }

    /// When the window holding `now_ms` ends (for a day: the next 00:00 UTC).
    fn window_end_ms(self, now_ms: u64) -> u64 {
        (self.index(now_ms) + 1) * self.window_ms
    }
}

#[cfg(test)]
mod tests;
