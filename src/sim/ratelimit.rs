//! Zoom's per-account, per-category, per-second limits (ZOOM.md §5), as fixed
//! one-second windows on the sim's clock.
//!
//! Category mapping (Zoom labels each endpoint; this is the sim's simplification):
//! `GET`/`HEAD` → Light; `POST`/`PATCH`/`PUT`/`DELETE` → Medium; anything under
//! `/v2/_echo/heavy` → Heavy, so tests can exercise the third bucket.

use std::collections::HashMap;

use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};

use super::config::RateLimits;
use super::reply;
use crate::body::Body;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Category {
    Light,
    Medium,
    Heavy,
}

/// The outcome of one admission, carried into the answer's headers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Verdict {
    category: Category,
    limit: u32,
    remaining: u32,
    pub allowed: bool,
}

/// Request counts per (account, category) in the current one-second window.
#[derive(Debug, Default)]
pub(crate) struct Limiter {
    windows: HashMap<(String, Category), Window>,
}

#[derive(Debug)]
struct Window {
    second: u64,
    used: u32,
}

// === impl Category ===

impl Category {
    pub(crate) fn of(method: &Method, path: &str) -> Self {
        if path.starts_with("/v2/_echo/heavy") {
            Self::Heavy
        } else if method == Method::GET || method == Method::HEAD {
            Self::Light
        } else {
            Self::Medium
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Light => "Light",
            Self::Medium => "Medium",
            Self::Heavy => "Heavy",
        }
    }

    fn limit(self, limits: &RateLimits) -> u32 {
        match self {
            Self::Light => limits.light_per_second,
            Self::Medium => limits.medium_per_second,
            Self::Heavy => limits.heavy_per_second,
        }
    }
}

// === impl Limiter ===

impl Limiter {
    /// Counts one request against `account`'s `category` bucket if it fits.
    pub(crate) fn admit(
        &mut self,
        account: &str,
        category: Category,
        limits: &RateLimits,
        now_ms: u64,
    ) -> Verdict {
        let second = now_ms / 1000;
        let limit = category.limit(limits);
        let window = self
            .windows
            .entry((account.to_owned(), category))
            .or_insert(Window { second, used: 0 });
        if window.second != second {
            *window = Window { second, used: 0 };
        }
        let allowed = window.used < limit;
        if allowed {
            window.used += 1;
        }
        Verdict {
            category,
            limit,
            remaining: limit - window.used.min(limit),
            allowed,
        }
    }
}

// === impl Verdict ===

impl Verdict {
    /// Adds the `X-RateLimit-*` headers Zoom sends on every answer.
    pub(crate) fn stamp(&self, headers: &mut HeaderMap) {
        headers.insert(
            "x-ratelimit-category",
            HeaderValue::from_static(self.category.name()),
        );
        // `QPS` is ZoomNet's value for per-second limits; UNCONFIRMED on the wire.
        headers.insert("x-ratelimit-type", HeaderValue::from_static("QPS"));
        headers.insert("x-ratelimit-limit", HeaderValue::from(self.limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(self.remaining));
    }

    /// The 429 for a refused request: the next window opens within a second.
    pub(crate) fn too_many(&self) -> Response<Body> {
        let message =
            "You have reached the maximum per-second rate limit for this API. Try again later.";
        let mut resp = reply::api_error(StatusCode::TOO_MANY_REQUESTS, 429, message);
        resp.headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_window_per_account_and_category() {
        let limits = RateLimits {
            light_per_second: 2,
            medium_per_second: 1,
            heavy_per_second: 1,
        };
        let mut l = Limiter::default();
        assert!(l.admit("a", Category::Light, &limits, 1000).allowed);
        assert!(l.admit("a", Category::Light, &limits, 1500).allowed);
        assert!(!l.admit("a", Category::Light, &limits, 1999).allowed);
        assert!(l.admit("b", Category::Light, &limits, 1999).allowed);
        assert!(l.admit("a", Category::Medium, &limits, 1999).allowed);
        assert!(l.admit("a", Category::Light, &limits, 2000).allowed);
    }
}
