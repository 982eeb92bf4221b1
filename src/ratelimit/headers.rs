//! Reading Zoom's rate-limit headers, and writing them on a local 429.
//!
//! Zoom documents no headers today; what it has been seen to send (ZOOM.md §5):
//! `X-RateLimit-Category` (Light…), `X-RateLimit-Type` (`QPS` or `Daily-limit`),
//! `X-RateLimit-Limit`, `X-RateLimit-Remaining`, and on a 429 `Retry-After` as
//! seconds, an HTTP date, or an ISO datetime (`2020-05-31T00:00:00Z`).

use std::time::{Duration, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};

use super::Category;
use crate::clock::UnixMillis;

pub const CATEGORY: HeaderName = HeaderName::from_static("x-ratelimit-category");
pub const TYPE: HeaderName = HeaderName::from_static("x-ratelimit-type");
pub const LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
pub const REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");

/// What `X-RateLimit-Type` says is enforced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitType {
    /// Per second (or per minute for Resource-intensive): `QPS`.
    PerSecond,
    /// Per day, until 00:00 UTC: `Daily-limit`.
    Daily,
}

/// Zoom's rate-limit headers on one answer; each may be absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ZoomLimits {
    pub category: Option<Category>,
    pub kind: Option<LimitType>,
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
    /// `Retry-After`, made absolute.
    pub retry_at_ms: Option<UnixMillis>,
}

// === impl LimitType ===

impl LimitType {
    pub fn parse(value: &str) -> Option<Self> {
        let v = value.trim().to_ascii_lowercase();
        if v.contains("daily") || v.contains("day") {
            Some(Self::Daily)
        } else if v == "qps" || v.contains("second") || v.contains("minute") {
            Some(Self::PerSecond)
        } else {
            None
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::PerSecond => "per_second",
            Self::Daily => "daily",
        }
    }
}

// === impl ZoomLimits ===

impl ZoomLimits {
    pub fn parse(headers: &HeaderMap, now_ms: UnixMillis) -> Self {
        let text = |name: &HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        let number = |name: &HeaderName| text(name).and_then(|v| v.trim().parse::<u64>().ok());
        Self {
            category: text(&CATEGORY).and_then(Category::parse),
            kind: text(&TYPE).and_then(LimitType::parse),
            limit: number(&LIMIT),
            remaining: number(&REMAINING),
            retry_at_ms: text(&http::header::RETRY_AFTER)
                .and_then(|v| parse_retry_after(v, now_ms)),
        }
    }

    /// Whether any rate-limit header was there: the cheap test on the hot path.
    pub fn present(headers: &HeaderMap) -> bool {
        headers.contains_key(CATEGORY) || headers.contains_key(http::header::RETRY_AFTER)
    }
}

/// `Retry-After` in any of its three forms, as an absolute time.
pub fn parse_retry_after(value: &str, now_ms: UnixMillis) -> Option<UnixMillis> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(now_ms.saturating_add(secs.saturating_mul(1000)));
    }
    if let Ok(at) = httpdate::parse_http_date(value) {
        let ms = at.duration_since(UNIX_EPOCH).ok()?.as_millis();
        return u64::try_from(ms).ok();
    }
    parse_iso_datetime(value)
}

/// `YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)`, or a space for the `T`.
fn parse_iso_datetime(value: &str) -> Option<UnixMillis> {
    let b = value.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = value.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())
            .flatten()
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let mut rest = &value[19..];
    let mut millis = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let padded = format!("{:0<3}", &frac[..digits.min(3)]);
        millis = padded.parse().ok()?;
        rest = &frac[digits..];
    }
    let offset_secs = match rest {
        "Z" | "z" | "" => 0,
        tz if tz.len() == 6 && (tz.starts_with('+') || tz.starts_with('-')) => {
            let sign = if tz.starts_with('-') { -1 } else { 1 };
            let h: i64 = tz.get(1..3)?.parse().ok()?;
            let m: i64 = tz.get(4..6)?.parse().ok()?;
            if tz.as_bytes()[3] != b':' {
                return None;
            }
            sign * (h * 3600 + m * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    u64::try_from(secs * 1000 + millis).ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The next 00:00 UTC after `now_ms`: when Zoom's daily limits reset, and the
/// reopening time when a daily 429 gave no usable `Retry-After`.
pub fn next_utc_midnight(now_ms: UnixMillis) -> UnixMillis {
    const DAY_MS: u64 = 86_400_000;
    (now_ms / DAY_MS + 1) * DAY_MS
}

/// Whole seconds from `now_ms` until `at_ms`, at least 1: a `Retry-After` value.
pub fn retry_after_secs(now_ms: UnixMillis, at_ms: UnixMillis) -> u64 {
    Duration::from_millis(at_ms.saturating_sub(now_ms))
        .as_secs_f64()
        .ceil()
        .max(1.0) as u64
}

/// Writes the rate-limit headers Zoom would have sent with its 429.
pub fn stamp(
    headers: &mut HeaderMap,
    category: Category,
    kind: LimitType,
    limit: Option<u64>,
    retry_after: HeaderValue,
) {
    headers.insert(CATEGORY, HeaderValue::from_static(category.as_str()));
    let kind = match kind {
        LimitType::PerSecond => "QPS",
        LimitType::Daily => "Daily-limit",
    };
    headers.insert(TYPE, HeaderValue::from_static(kind));
    if let Some(limit) = limit {
        headers.insert(LIMIT, HeaderValue::from(limit));
    }
    headers.insert(REMAINING, HeaderValue::from_static("0"));
    headers.insert(http::header::RETRY_AFTER, retry_after);
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixMillis = 1_764_547_200_000; // 2025-12-01T00:00:00Z

    #[test]
    fn retry_after_as_seconds() {
        assert_eq!(parse_retry_after("1", NOW), Some(NOW + 1000));
        assert_eq!(parse_retry_after(" 120 ", NOW), Some(NOW + 120_000));
        assert_eq!(parse_retry_after("0", NOW), Some(NOW));
        assert_eq!(parse_retry_after("-1", NOW), None);
    }

    #[test]
    fn retry_after_as_http_date() {
        assert_eq!(
            parse_retry_after("Mon, 01 Dec 2025 00:00:30 GMT", NOW),
            Some(NOW + 30_000)
        );
        assert_eq!(
            parse_retry_after("Sun, 31 May 2020 00:00:00 GMT", NOW),
            Some(1_590_883_200_000)
        );
    }

    #[test]
    fn retry_after_as_iso_datetime() {
        // The example in Zoom's old documentation (ZOOM.md §5).
        assert_eq!(
            parse_retry_after("2020-05-31T00:00:00Z", NOW),
            Some(1_590_883_200_000)
        );
        assert_eq!(
            parse_retry_after("2025-12-02T00:00:00Z", NOW),
            Some(NOW + 86_400_000)
        );
        assert_eq!(
            parse_retry_after("2025-12-01T01:00:00+01:00", NOW),
            Some(NOW)
        );
        assert_eq!(
            parse_retry_after("2025-12-01T00:00:01.250Z", NOW),
            Some(NOW + 1250)
        );
        assert_eq!(
            parse_retry_after("2025-12-01 00:00:02", NOW),
            Some(NOW + 2000)
        );
        assert_eq!(parse_retry_after("2025-13-01T00:00:00Z", NOW), None);
        assert_eq!(parse_retry_after("tomorrow", NOW), None);
        assert_eq!(parse_retry_after("2025-12-01T00:00:00Q", NOW), None);
    }

    #[test]
    fn limit_types() {
        assert_eq!(LimitType::parse("QPS"), Some(LimitType::PerSecond));
        assert_eq!(LimitType::parse("Daily-limit"), Some(LimitType::Daily));
        assert_eq!(LimitType::parse("other"), None);
    }

    #[test]
    fn all_headers() {
        let mut h = HeaderMap::new();
        h.insert(CATEGORY, HeaderValue::from_static("Heavy"));
        h.insert(TYPE, HeaderValue::from_static("Daily-limit"));
        h.insert(LIMIT, HeaderValue::from_static("30000"));
        h.insert(REMAINING, HeaderValue::from_static("0"));
        h.insert(
            http::header::RETRY_AFTER,
            HeaderValue::from_static("2025-12-02T00:00:00Z"),
        );
        assert_eq!(
            ZoomLimits::parse(&h, NOW),
            ZoomLimits {
                category: Some(Category::Heavy),
                kind: Some(LimitType::Daily),
                limit: Some(30000),
                remaining: Some(0),
                retry_at_ms: Some(NOW + 86_400_000),
            }
        );
        assert_eq!(next_utc_midnight(NOW), NOW + 86_400_000);
        assert_eq!(next_utc_midnight(NOW + 1), NOW + 86_400_000);
        assert_eq!(retry_after_secs(NOW, NOW + 1001), 2);
        assert_eq!(retry_after_secs(NOW, NOW), 1);
    }
}
