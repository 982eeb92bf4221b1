//! Grants by state, counted at scrape time: a handful of series however many
//! grants there are, and no grant, user or account id in any of them (100k
//! grants would be 100k series, and Zoom user ids have no place in a metrics
//! system).
//!
//! The states partition the grants, so they add up to the registry's size. A
//! grant counts once, in the first of these that applies:
//!
//! - `dead`: Zoom answered `invalid_grant`; the user must authorize again.
//! - `unpersisted`: a rotated token is held in memory only, because the store
//!   refused it (retried). A restart now would lose the grant.
//! - `fresh`: a valid token, not yet within `refresh.ahead` of its expiry.
//! - `stale`: a valid token within `refresh.ahead` of its expiry; the next use
//!   refreshes it in the background.
//! - `expired`: no valid token (past expiry, or never minted), and a caller
//!   asked for one after its refresh came due. grantmux has tried to refresh
//!   it for that caller and has not succeeded yet: callers get 503. An alarm.
//! - `idle`: no valid token, and nobody has asked for it since its refresh
//!   came due. Tokens are refreshed on use (and user grants by the keep-alive
//!   sweep), so an unused grant's token just lapses: not an alarm.
//!
//! "Since its refresh came due", not "within the last hour": a grant used once,
//! 50 minutes into its token's hour, and not since, has nothing wrong with it
//! when that token lapses ten minutes later.

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use crate::clock::{Clock, UnixMillis};
use crate::grants::{Current, Freshness, GrantHandle, Registry};

/// Counts the registry's grants by [`Standing`] on each scrape; see the module doc.
#[derive(Debug)]
pub struct GrantStates {
    registry: Arc<Registry>,
    /// Expiry and last use are read against it (tests advance it).
    clock: Clock,
}

/// A grant's state as `grantmux_grants{state}` counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    Fresh,
    Stale,
    Idle,
    Expired,
    Dead,
    Unpersisted,
}

/// The expiry histogram covers grants a caller asked for this recently: Zoom's
/// access-token lifetime. Older use says nothing about service now.
const IN_USE_MS: u64 = 3600 * 1000;

/// Upper bounds (seconds) of `grantmux_grant_expiry_seconds`, for 1-hour
/// tokens refreshed 5 minutes (`refresh.ahead`) before expiry. A token
/// already expired is observed as 0, so `le="0"` counts the grants in use
/// with no valid token, and a long-expired one cannot drag `_sum` below zero.
const EXPIRY_BUCKETS: [f64; 9] = [
    0.0, 60.0, 150.0, 300.0, 600.0, 1200.0, 1800.0, 2700.0, 3600.0,
];

/// One scrape's counts.
#[derive(Debug, Default)]
struct Tally {
    /// By `Standing as usize`.
    states: [u64; Standing::ALL.len()],
    refresh_failing: u64,
    /// Per bucket, not cumulative; the last is `+Inf`.
    expiry: [u64; EXPIRY_BUCKETS.len() + 1],
    expiry_sum: f64,
    expiry_count: u64,
}

// === impl GrantStates ===

impl GrantStates {
    pub fn new(registry: Arc<Registry>, clock: Clock) -> Self {
        Self { registry, clock }
    }
}

impl Collector for GrantStates {
    fn encode(&self, encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let now = self.clock.now_ms();
        let mut tally = Tally::default();
        for grant in self.registry.all() {
            tally.add(&grant, now);
        }
        tally.encode(encoder)
    }
}

// === impl Standing ===

impl Standing {
    pub const ALL: [Standing; 6] = [
        Standing::Fresh,
        Standing::Stale,
        Standing::Idle,
        Standing::Expired,
        Standing::Dead,
        Standing::Unpersisted,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Standing::Fresh => "fresh",
            Standing::Stale => "stale",
            Standing::Idle => "idle",
            Standing::Expired => "expired",
            Standing::Dead => "dead",
            Standing::Unpersisted => "unpersisted",
        }
    }

    /// Where `grant`, whose published snapshot is `cur`, stands at `now`.
    pub fn of(grant: &GrantHandle, cur: &Current, now: UnixMillis) -> Self {
        let ahead = grant.refresh_ahead_ms();
        match cur.freshness(now, ahead) {
            Freshness::Dead => Standing::Dead,
            _ if grant.is_unpersisted() => Standing::Unpersisted,
            Freshness::Fresh => Standing::Fresh,
            Freshness::Stale => Standing::Stale,
            Freshness::Expired => {
                // Asked for when this token was already due: a refresh began then
                // (or a background one is retrying) and has not landed.
                let used = grant.last_used_ms();
                if used != 0 && cur.freshness(used, ahead) != Freshness::Fresh {
                    Standing::Expired
                } else {
                    Standing::Idle
                }
            }
        }
    }
}

// === impl Tally ===

impl Tally {
    fn add(&mut self, grant: &GrantHandle, now: UnixMillis) {
        let cur = grant.current();
        let standing = Standing::of(grant, &cur, now);
        self.states[standing as usize] += 1;
        if grant.refresh_failing() {
            self.refresh_failing += 1;
        }
        let used = grant.last_used_ms();
        let in_use = used != 0 && now.saturating_sub(used) < IN_USE_MS;
        if in_use && !matches!(standing, Standing::Dead | Standing::Idle) {
            self.observe(cur.expires_at_ms.saturating_sub(now) as f64 / 1000.0);
        }
    }

    fn observe(&mut self, seconds: f64) {
        let bucket = EXPIRY_BUCKETS
            .iter()
            .position(|&upper| seconds <= upper)
            .unwrap_or(EXPIRY_BUCKETS.len());
        self.expiry[bucket] += 1;
        self.expiry_sum += seconds;
        self.expiry_count += 1;
    }

    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "grants",
            "Grants by state: fresh, stale, idle (expired but unused: not an alarm), \
             expired (wanted and without a valid token), dead, unpersisted",
            None,
            MetricType::Gauge,
        )?;
        for standing in Standing::ALL {
            let labels = [("state", standing.label())];
            ConstGauge::new(self.states[standing as usize] as i64)
                .encode(family.encode_family(&labels)?)?;
        }
        let buckets: Vec<(f64, u64)> = EXPIRY_BUCKETS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(self.expiry)
            .collect();
        encoder
            .encode_descriptor(
                "grant_expiry_seconds",
                "Seconds until expiry of the tokens of grants in use (asked for within the hour; \
                 neither idle nor dead); an expired token counts as 0",
                None,
                MetricType::Histogram,
            )?
            .encode_histogram::<NoLabelSet>(self.expiry_sum, self.expiry_count, &buckets, None)?;
        ConstGauge::new(self.refresh_failing as i64).encode(encoder.encode_descriptor(
            "grants_refresh_failing",
            "Grants whose last refresh attempt failed and is being retried with backoff",
            None,
            MetricType::Gauge,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expired_token_lands_in_the_zero_bucket_and_a_long_one_in_inf() {
        let mut tally = Tally::default();
        tally.observe(0.0);
        tally.observe(299.0);
        tally.observe(7200.0);
        assert_eq!(tally.expiry[0], 1);
        assert_eq!(tally.expiry[3], 1, "299 s is at most 300");
        assert_eq!(tally.expiry[EXPIRY_BUCKETS.len()], 1);
        assert_eq!(tally.expiry_count, 3);
    }
}
