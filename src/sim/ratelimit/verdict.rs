//! An admission's outcome as Zoom reports it: the `X-RateLimit-*` headers on
//! every answer, and the three kinds of 429 (ZOOM.md §5).

use std::time::{Duration, UNIX_EPOCH};

use http::header::RETRY_AFTER;
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use super::{Category, Limit, Reading};
use crate::body::Body;
use crate::sim::reply;

const PER_SECOND_MESSAGE: &str =
    "You have reached the maximum per-second rate limit for this API. Try again later.";
const DAILY_MESSAGE: &str = "You have reached the maximum daily rate limit for this API. \
     Refer to the response header for details on when you can make another request.";

/// Which kind of limit a check is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Per second, or per minute for Resource-intensive: `X-RateLimit-Type: QPS`.
    Rate,
    /// An account's daily limit: `X-RateLimit-Type: Daily-limit`.
    Daily,
    /// A user's daily meeting create/update cap, also `Daily-limit`.
    User,
}

/// The outcome of one admission, carried into the answer's headers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Verdict {
    category: Category,
    /// The limit the headers report: the one that refused, or else the daily one
    /// if configured, or else the rate window.
    shown: Reading,
    /// `Some` if refused: when the refusing window opens again.
    refused: Option<RefusedUntil>,
}

#[derive(Clone, Copy, Debug)]
struct RefusedUntil {
    now_ms: u64,
    opens_ms: u64,
}

// === impl Kind ===

impl Kind {
    /// `X-RateLimit-Type`. `QPS` is ZoomNet's value; UNCONFIRMED on the wire.
    fn header(self) -> &'static str {
        match self {
            Self::Rate => "QPS",
            Self::Daily | Self::User => "Daily-limit",
        }
    }
}

// === impl Verdict ===

impl Verdict {
    pub(super) fn admitted(category: Category, shown: Reading) -> Self {
        Self {
            category,
            shown,
            refused: None,
        }
    }

    pub(super) fn refused(category: Category, kind: Kind, limit: Limit, now_ms: u64) -> Self {
        let opens_ms = limit.window_end_ms(now_ms);
        Self {
            category,
            shown: Reading {
                kind,
                limit,
                remaining: 0,
            },
            refused: Some(RefusedUntil { now_ms, opens_ms }),
        }
    }

    /// The kind of limit that refused the request; `None` if it was allowed.
    pub(crate) fn refused_by(&self) -> Option<Kind> {
        self.refused.map(|_| self.shown.kind)
    }

    /// Adds the `X-RateLimit-*` headers Zoom sends on every answer.
    pub(crate) fn stamp(&self, headers: &mut HeaderMap) {
        headers.insert(
            "x-ratelimit-category",
            HeaderValue::from_static(self.category.name()),
        );
        headers.insert(
            "x-ratelimit-type",
            HeaderValue::from_static(self.shown.kind.header()),
        );
        headers.insert("x-ratelimit-limit", HeaderValue::from(self.shown.limit.max));
        headers.insert(
            "x-ratelimit-remaining",
            HeaderValue::from(self.shown.remaining),
        );
    }

    /// Zoom's 429 if the request was refused, with `Retry-After`: whole seconds
    /// until the rate window opens, or the ISO datetime of the next 00:00 UTC for
    /// a daily limit. The `X-RateLimit-*` headers come from [`Verdict::stamp`].
    pub(crate) fn too_many(&self) -> Option<Response<Body>> {
        let until = self.refused?;
        let (message, retry_after) = match self.shown.kind {
            Kind::Rate => (PER_SECOND_MESSAGE.to_owned(), seconds_until(until)),
            Kind::Daily => (DAILY_MESSAGE.to_owned(), iso_datetime(until.opens_ms)),
            Kind::User => (
                user_cap_message(self.shown.limit.max),
                iso_datetime(until.opens_ms),
            ),
        };
        let mut resp = reply::api_error(StatusCode::TOO_MANY_REQUESTS, 429, &message);
        if let Ok(value) = HeaderValue::try_from(retry_after) {
            resp.headers_mut().insert(RETRY_AFTER, value);
        }
        Some(resp)
    }
}

/// Zoom's message for the per-user meeting cap, observed with 100 (ZOOM.md §5).
fn user_cap_message(cap: u32) -> String {
    format!(
        "You have exceeded the daily rate limit ({cap}) of Meeting Create/Update API \
         requests permitted for this particular user. You may resume these requests \
         at GMT 00:00:00."
    )
}

/// Whole seconds until the window opens, rounded up and at least 1.
fn seconds_until(until: RefusedUntil) -> String {
    let ms = until.opens_ms.saturating_sub(until.now_ms);
    ms.div_ceil(1000).max(1).to_string()
}

/// `2026-12-02T00:00:00Z`, the form of Zoom's daily `Retry-After`.
fn iso_datetime(unix_ms: u64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(unix_ms);
    humantime::format_rfc3339_seconds(at).to_string()
}
