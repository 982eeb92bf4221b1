use std::time::UNIX_EPOCH;

use http::HeaderMap;

use super::*;
use crate::sim::config::DailyLimits;

/// 2026-12-01T10:00:00Z: a day with hours on both sides.
fn morning_ms() -> u64 {
    let at = humantime::parse_rfc3339("2026-12-01T10:00:00Z").expect("datetime");
    at.duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64
}

fn limits() -> RateLimits {
    RateLimits {
        light_per_second: 2,
        medium_per_second: 1,
        heavy_per_second: 1,
        resource_intensive_per_minute: 2,
        ..RateLimits::default()
    }
}

fn ask(account: &str, category: Category) -> Ask<'_> {
    Ask {
        account,
        category,
        meeting_writer: None,
    }
}

fn write_by<'a>(user: &'a str) -> Ask<'a> {
    Ask {
        meeting_writer: Some(user),
        ..ask("a", Category::Medium)
    }
}

/// Category, type, limit, remaining, and Retry-After if refused.
fn headers(v: &Verdict) -> Vec<String> {
    let mut h = HeaderMap::new();
    v.stamp(&mut h);
    if let Some(resp) = v.too_many() {
        h.extend(resp.headers().clone());
    }
    let names = [
        "x-ratelimit-category",
        "x-ratelimit-type",
        "x-ratelimit-limit",
    ];
    let names = names
        .iter()
        .chain(&["x-ratelimit-remaining", "retry-after"]);
    names
        .filter_map(|n| h.get(*n))
        .map(|v| v.to_str().expect("ascii").to_owned())
        .collect()
}

#[test]
fn routes_spend_zoom_s_published_labels() {
    use Category::*;
    let cases = [
        ("GET", "/v2/users/me", Light),
        ("GET", "/v2/users/u1/meetings", Medium),
        ("POST", "/v2/users/me/meetings/", Medium),
        ("GET", "/v2/meetings/85000000001", Light),
        ("PATCH", "/v2/meetings/85000000001", Light),
        ("DELETE", "/v2/meetings/85000000001", Light),
        ("POST", "/v2/im/chat/messages", Medium),
        ("GET", "/v2/_echo/heavy/report", Heavy),
        ("POST", "/v2/_echo/resource", ResourceIntensive),
        ("GET", "/v2/_echo/headers", Light),
        ("HEAD", "/v2/unknown", Light),
        ("PUT", "/v2/_echo/x", Medium),
        ("DELETE", "/v2/users/u1", Medium),
    ];
    for (method, path, category) in cases {
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        assert_eq!(Category::of(&method, path), category, "{method} {path}");
    }
}

#[test]
fn fixed_second_windows_per_account_and_category() {
    let limits = limits();
    let mut l = Limiter::default();
    let mut admit = |account, category, now| l.admit(&ask(account, category), &limits, now);
    assert_eq!(admit("a", Category::Light, 1000).refused_by(), None);
    assert_eq!(admit("a", Category::Light, 1500).refused_by(), None);
    let refused = admit("a", Category::Light, 1999);
    assert_eq!(refused.refused_by(), Some(Kind::Rate));
    assert_eq!(headers(&refused), ["Light", "QPS", "2", "0", "1"]);
    assert_eq!(admit("b", Category::Light, 1999).refused_by(), None);
    assert_eq!(admit("a", Category::Medium, 1999).refused_by(), None);
    let next = admit("a", Category::Light, 2000);
    assert_eq!(headers(&next), ["Light", "QPS", "2", "1"]);
}

#[test]
fn resource_intensive_is_per_minute_and_retry_after_counts_the_seconds_left() {
    let limits = limits();
    let mut l = Limiter::default();
    let minute = 60_000 * 1000;
    let ri = ask("a", Category::ResourceIntensive);
    assert_eq!(
        headers(&l.admit(&ri, &limits, minute)),
        ["Resource-intensive", "QPS", "2", "1"]
    );
    assert_eq!(l.admit(&ri, &limits, minute + 30_000).refused_by(), None);
    let refused = l.admit(&ri, &limits, minute + 44_500);
    assert_eq!(
        headers(&refused),
        ["Resource-intensive", "QPS", "2", "0", "16"]
    );
    assert_eq!(l.admit(&ri, &limits, minute + 60_000).refused_by(), None);
}

#[test]
fn a_daily_limit_is_reported_and_closes_until_utc_midnight() {
    let limits = RateLimits {
        daily: DailyLimits {
            medium: Some(2),
            ..DailyLimits::default()
        },
        ..limits()
    };
    let mut l = Limiter::default();
    let now = morning_ms();
    let medium = ask("a", Category::Medium);
    assert_eq!(
        headers(&l.admit(&medium, &limits, now)),
        ["Medium", "Daily-limit", "2", "1"]
    );
    assert_eq!(l.admit(&medium, &limits, now + 1000).refused_by(), None);
    let closed = l.admit(&medium, &limits, now + 2000);
    assert_eq!(closed.refused_by(), Some(Kind::Daily));
    let midnight = "2026-12-02T00:00:00Z";
    assert_eq!(
        headers(&closed),
        ["Medium", "Daily-limit", "2", "0", midnight]
    );
    // Light has no daily limit: it reports its per-second window.
    let light = l.admit(&ask("a", Category::Light), &limits, now + 2000);
    assert_eq!(headers(&light), ["Light", "QPS", "2", "1"]);
    let just_before = now + 14 * 3600 * 1000 - 1;
    assert_eq!(
        l.admit(&medium, &limits, just_before).refused_by(),
        Some(Kind::Daily)
    );
    assert_eq!(
        l.admit(&medium, &limits, just_before + 1).refused_by(),
        None
    );
}

#[test]
fn a_refused_request_spends_nothing() {
    let limits = RateLimits {
        daily: DailyLimits {
            light: Some(3),
            ..DailyLimits::default()
        },
        ..limits()
    };
    let mut l = Limiter::default();
    let now = morning_ms();
    let light = ask("a", Category::Light);
    // Two per second: the third is refused by the second, not counted for the day.
    for _ in 0..2 {
        assert_eq!(l.admit(&light, &limits, now).refused_by(), None);
    }
    assert_eq!(l.admit(&light, &limits, now).refused_by(), Some(Kind::Rate));
    let third = l.admit(&light, &limits, now + 1000);
    assert_eq!(headers(&third), ["Light", "Daily-limit", "3", "0"]);
    // A closed day spends no per-second budget: with the day reopened (a higher
    // limit), the same second still has both its requests.
    for _ in 0..3 {
        let closed = l.admit(&light, &limits, now + 2000);
        assert_eq!(closed.refused_by(), Some(Kind::Daily));
    }
    let raised = RateLimits {
        daily: DailyLimits {
            light: Some(10),
            ..DailyLimits::default()
        },
        ..limits.clone()
    };
    for remaining in ["6", "5"] {
        let v = l.admit(&light, &raised, now + 2000);
        assert_eq!(headers(&v), ["Light", "Daily-limit", "10", remaining]);
    }
    let tomorrow = now + 24 * 3600 * 1000;
    assert_eq!(
        headers(&l.admit(&light, &limits, tomorrow)),
        ["Light", "Daily-limit", "3", "2"]
    );
}

#[test]
fn heavy_and_resource_intensive_share_the_combined_daily_cap() {
    let limits = RateLimits {
        heavy_per_second: 10,
        daily: DailyLimits {
            heavy: Some(5),
            heavy_and_resource_intensive: Some(2),
            ..DailyLimits::default()
        },
        ..limits()
    };
    let mut l = Limiter::default();
    let now = morning_ms();
    // The nearer of the two daily limits is the one reported.
    let heavy = l.admit(&ask("a", Category::Heavy), &limits, now);
    assert_eq!(headers(&heavy), ["Heavy", "Daily-limit", "2", "1"]);
    let ri = l.admit(&ask("a", Category::ResourceIntensive), &limits, now);
    assert_eq!(
        headers(&ri),
        ["Resource-intensive", "Daily-limit", "2", "0"]
    );
    let closed = l.admit(&ask("a", Category::Heavy), &limits, now + 1000);
    assert_eq!(closed.refused_by(), Some(Kind::Daily));
    assert_eq!(
        l.admit(&ask("b", Category::Heavy), &limits, now)
            .refused_by(),
        None
    );
}

#[test]
fn the_meeting_cap_is_per_user_per_day_and_checked_before_the_second() {
    let limits = RateLimits {
        medium_per_second: 1,
        meeting_writes_per_user_per_day: Some(2),
        ..limits()
    };
    let mut l = Limiter::default();
    let now = morning_ms();
    // Success reports the category's own window, not the user's cap.
    assert_eq!(
        headers(&l.admit(&write_by("u1"), &limits, now)),
        ["Medium", "QPS", "1", "0"]
    );
    assert_eq!(
        l.admit(&write_by("u1"), &limits, now + 1000).refused_by(),
        None
    );
    let capped = l.admit(&write_by("u1"), &limits, now + 2000);
    assert_eq!(capped.refused_by(), Some(Kind::User));
    assert_eq!(
        headers(&capped),
        ["Medium", "Daily-limit", "2", "0", "2026-12-02T00:00:00Z"]
    );
    // The cap spent nothing of this second: another user still gets it.
    assert_eq!(
        l.admit(&write_by("u2"), &limits, now + 2000).refused_by(),
        None
    );
    let tomorrow = now + 24 * 3600 * 1000;
    assert_eq!(
        l.admit(&write_by("u1"), &limits, tomorrow).refused_by(),
        None
    );
}

#[test]
fn no_meeting_cap_when_it_is_off() {
    let limits = RateLimits {
        meeting_writes_per_user_per_day: None,
        ..limits()
    };
    let mut l = Limiter::default();
    for second in 0..5 {
        let now = morning_ms() + second * 1000;
        assert_eq!(l.admit(&write_by("u1"), &limits, now).refused_by(), None);
    }
}
