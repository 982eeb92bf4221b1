//! The `[rate_limit]` section: the plan's rates, overrides, the wait allowed.

use super::*;
use crate::ratelimit::Category;

pub(super) fn rate_limit(raw: &FileRateLimit) -> Result<RateLimit, ConfigError> {
    let plan = match raw.plan.as_deref() {
        None | Some("pro") => Plan::Pro,
        Some("free") => Plan::Free,
        Some("business") => Plan::Business,
        Some("custom") => Plan::Custom,
        Some(other) => {
            return Err(ConfigError::UnknownValue {
                key: "rate_limit.plan".to_owned(),
                value: other.to_owned(),
                expected: "\"free\", \"pro\", \"business\" or \"custom\"",
            })
        }
    };
    let overrides = [
        ("light", Category::Light, raw.light, 1.0),
        ("medium", Category::Medium, raw.medium, 1.0),
        ("heavy", Category::Heavy, raw.heavy, 1.0),
        (
            "resource_intensive_per_minute",
            Category::ResourceIntensive,
            raw.resource_intensive_per_minute,
            60.0,
        ),
    ];
    let mut rates = match plan.rates() {
        Some(rates) => rates,
        None => {
            if let Some((name, ..)) = overrides.iter().find(|o| o.2.is_none()) {
                return Err(ConfigError::Missing {
                    key: format!("rate_limit.{name}"),
                    why: "plan = \"custom\" needs every rate: light, medium, heavy \
                          (per second) and resource_intensive_per_minute"
                        .to_owned(),
                });
            }
            Plan::Pro
                .rates()
                .unwrap_or_else(|| crate::ratelimit::Rates::new(1.0, 1.0, 1.0, 1.0))
        }
    };
    for (name, category, value, per) in overrides {
        if let Some(value) = value {
            if !(value.is_finite() && value > 0.0) {
                return Err(invalid(
                    &format!("rate_limit.{name}"),
                    "must be a number of requests above 0",
                ));
            }
            rates.set(category, value / per);
        }
    }
    let headroom = raw.headroom.unwrap_or(DEFAULT_RATE_LIMIT_HEADROOM);
    if !(0.0..0.9).contains(&headroom) {
        return Err(invalid(
            "rate_limit.headroom",
            "must be a fraction from 0 to below 0.9 (0.05 keeps 5% of each rate unused)",
        ));
    }
    Ok(RateLimit {
        enabled: raw.enabled.unwrap_or(true),
        plan,
        rates,
        max_wait: duration(
            "rate_limit.max_wait",
            raw.max_wait.as_deref(),
            DEFAULT_RATE_LIMIT_MAX_WAIT,
        )?,
        headroom,
    })
}
