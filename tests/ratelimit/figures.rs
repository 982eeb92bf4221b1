//! What one run of [`super::load`] measured, and its printed lines.

use std::net::SocketAddr;
use std::time::Duration;

use super::load::{GREEDY_LOOPS, MEDIUM_PER_SECOND};

/// One call's outcome: its status (0: no answer) and how long it took.
#[derive(Clone, Debug)]
pub(crate) struct Call {
    /// The grantmux it went through.
    pub(crate) via: SocketAddr,
    pub(crate) status: u16,
    /// grantmux answered it itself (`X-Grantmux-Ratelimit: local`), not Zoom.
    pub(crate) local: bool,
    pub(crate) took: Duration,
    /// The answer's status and body, kept for failures only.
    pub(crate) failure: Option<String>,
}

/// What one run measured.
#[derive(Debug)]
pub(crate) struct Figures {
    /// Between the two snapshots that bound [`Self::served_medium`].
    pub(crate) window: Duration,
    /// Medium calls the simulator served within the window.
    pub(crate) served_medium: u64,
    /// The simulator's counters over the whole run (every call sent, to the last answer).
    pub(crate) zoom_calls: u64,
    pub(crate) zoom_429: u64,
    pub(crate) zoom_429_qps: u64,
    pub(crate) zoom_429_daily: u64,
    /// grantmux's counters over the whole run (all its processes).
    pub(crate) grantmux: Counters,
    /// Where the greedy loops sent their calls, in order.
    pub(crate) greedy_targets: Vec<SocketAddr>,
    pub(crate) greedy: Vec<Call>,
    pub(crate) interactive: Vec<Call>,
}

/// grantmux's rate-limit counters (`/metrics`), summed over its processes.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Calls that waited in a fair queue.
    pub(crate) held: u64,
    pub(crate) retries: u64,
    pub(crate) local_429: u64,
    pub(crate) zoom_429: u64,
    /// Takes of the shared budget that fell back to local pacing (Redis slow or gone).
    pub(crate) fallbacks: u64,
}

/// Latency percentiles of one caller's calls.
#[derive(Debug)]
pub(crate) struct Latency {
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    pub(crate) max: Duration,
}

// === impl Figures ===

impl Figures {
    /// The calls Zoom served in the window per second of it.
    pub(crate) fn served_per_second(&self) -> f64 {
        self.served_medium as f64 / self.window.as_secs_f64()
    }

    /// The share of the Medium limit used, `0..=1`.
    pub(crate) fn share_of_limit(&self) -> f64 {
        self.served_per_second() / f64::from(MEDIUM_PER_SECOND)
    }

    /// The share of the simulator's calls it refused, `0..=1`.
    pub(crate) fn zoom_429_share(&self) -> f64 {
        self.zoom_429 as f64 / self.zoom_calls.max(1) as f64
    }

    pub(crate) fn interactive_429s(&self) -> usize {
        count(&self.interactive, |c| c.status == 429)
    }

    pub(crate) fn interactive_latency(&self) -> Latency {
        Latency::of(&self.interactive)
    }

    /// The greedy caller's calls answered with anything but a 2xx, or not at all.
    pub(crate) fn greedy_failures(&self) -> Vec<String> {
        self.greedy
            .iter()
            .filter_map(|c| c.failure.clone())
            .collect()
    }

    /// One line per figure, prefixed with the scenario, for BENCHMARKS.md.
    pub(crate) fn print(&self, scenario: &str) {
        println!(
            "[{scenario}] window {:.2} s: Zoom served {} Medium calls, {:.2}/s = {:.1}% of the {MEDIUM_PER_SECOND}/s limit",
            self.window.as_secs_f64(),
            self.served_medium,
            self.served_per_second(),
            100.0 * self.share_of_limit(),
        );
        println!(
            "[{scenario}] Zoom's 429s: {} of {} calls = {:.2}% (per-second {}, daily {})",
            self.zoom_429,
            self.zoom_calls,
            100.0 * self.zoom_429_share(),
            self.zoom_429_qps,
            self.zoom_429_daily,
        );
        println!(
            "[{scenario}] {}",
            caller_line(
                "interactive (ui, 2/s)",
                &self.interactive,
                &self.interactive_latency()
            )
        );
        let greedy = format!("greedy (batch, {GREEDY_LOOPS} loops)");
        println!(
            "[{scenario}] {}",
            caller_line(&greedy, &self.greedy, &Latency::of(&self.greedy))
        );
        if self.greedy_targets.len() > 1 {
            for (i, target) in self.greedy_targets.iter().enumerate() {
                let calls: Vec<Call> = self
                    .greedy
                    .iter()
                    .filter(|c| c.via == *target)
                    .cloned()
                    .collect();
                let who = format!("greedy via grantmux {i}");
                println!(
                    "[{scenario}]   {}",
                    caller_line(&who, &calls, &Latency::of(&calls))
                );
            }
        }
        let c = &self.grantmux;
        println!(
            "[{scenario}] grantmux: {} calls held in a queue, {} transparent retries, {} local 429s, {} Zoom 429s seen, {} Redis fallbacks",
            c.held, c.retries, c.local_429, c.zoom_429, c.fallbacks,
        );
    }
}

/// One caller's calls: outcomes and latency.
fn caller_line(who: &str, calls: &[Call], l: &Latency) -> String {
    format!(
        "{who}: {} calls, {} 2xx, {} 429s ({} from grantmux, {} from Zoom), {} other failures; latency p50 {} ms, p99 {} ms, max {} ms",
        calls.len(),
        count(calls, |c| (200..300).contains(&c.status)),
        count(calls, |c| c.status == 429),
        count(calls, |c| c.status == 429 && c.local),
        count(calls, |c| c.status == 429 && !c.local),
        count(calls, |c| c.status != 429 && c.failure.is_some()),
        l.p50.as_millis(),
        l.p99.as_millis(),
        l.max.as_millis(),
    )
}

fn count(calls: &[Call], pick: impl Fn(&Call) -> bool) -> usize {
    calls.iter().filter(|c| pick(c)).count()
}

// === impl Counters ===

impl Counters {
    /// Adds the counters of one process's `/metrics` text.
    pub(crate) fn add(&mut self, metrics: &str) {
        self.retries += sum(metrics, "grantmux_ratelimit_retries_total");
        self.local_429 += sum(metrics, "grantmux_ratelimit_local_429_total");
        self.zoom_429 += sum(metrics, "grantmux_zoom_429_total");
        self.held += sum(metrics, "grantmux_ratelimit_held_total");
        self.fallbacks += sum(metrics, "grantmux_ratelimit_shared_fallbacks_total");
    }

    /// What was counted since `earlier`.
    pub(crate) fn since(&self, earlier: &Self) -> Self {
        Self {
            held: self.held - earlier.held,
            retries: self.retries - earlier.retries,
            local_429: self.local_429 - earlier.local_429,
            zoom_429: self.zoom_429 - earlier.zoom_429,
            fallbacks: self.fallbacks - earlier.fallbacks,
        }
    }
}

// === impl Latency ===

impl Latency {
    /// Nearest-rank percentiles (with 40 calls, p99 is the slowest).
    pub(crate) fn of(calls: &[Call]) -> Self {
        let mut took: Vec<Duration> = calls.iter().map(|c| c.took).collect();
        took.sort();
        let rank = |p: f64| {
            let n = took.len();
            let i = ((p * n as f64).ceil() as usize).clamp(1, n.max(1)) - 1;
            took.get(i).copied().unwrap_or_default()
        };
        Self {
            p50: rank(0.50),
            p99: rank(0.99),
            max: took.last().copied().unwrap_or_default(),
        }
    }
}

/// The sum of the samples of metric `name` (every label set) in a Prometheus text.
fn sum(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with([' ', '{']))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}
