//! The load shape of issue 16's "Done when"; `figures.rs` holds what it measures.
//!
//! Two `[[caller]]`s on one Server-to-Server grant call the same Medium endpoint
//! (List meetings): `batch`, 64 loops each sending its next call as soon as the
//! last one is answered, and `ui`, 2 calls a second whatever happens to them. The
//! simulator is the oracle: its counters say how many calls reached Zoom, how many
//! it refused, and how many it served.
//!
//! Shared, with `figures.rs`, with `tests/redis/fairness.rs` (`#[path]`), which
//! runs the same load over three replicas.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use grantmux::sim::{RateLimits, SimConfig, SimHandle};
use http::{Method, StatusCode};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::figures::{Call, Counters, Figures};
use crate::common::client::{http, read, request, send, Http};

/// The simulator's Medium limit: Zoom's Pro plan, per account.
pub(crate) const MEDIUM_PER_SECOND: u32 = 20;
/// The measured window.
pub(crate) const RUN: Duration = Duration::from_secs(20);
pub(crate) const GREEDY_LOOPS: usize = 64;
/// One call of the interactive caller every this long: 2 a second.
const INTERACTIVE_EVERY: Duration = Duration::from_millis(500);
/// List meetings, labelled Medium by Zoom (grantmux's seeds and the sim agree).
pub(crate) const MEDIUM_PATH: &str = "/v2/users/sim-user/meetings";
pub(crate) const ACCOUNT: &str = "sim-account";
pub(crate) const BATCH_KEY: &str = "ratelimit-test-batch-key";
pub(crate) const UI_KEY: &str = "ratelimit-test-ui-key";
/// The environment of a grantmux given [`callers_toml`].
pub(crate) const CALLER_ENV: [(&str, &str); 2] = [("BATCH_KEY", BATCH_KEY), ("UI_KEY", UI_KEY)];
/// A call that is not answered in this long is a failure, not a hang.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A simulator enforcing Zoom's limits, Medium at [`MEDIUM_PER_SECOND`].
pub(crate) fn sim_config() -> SimConfig {
    SimConfig {
        rate_limits: Some(RateLimits {
            medium_per_second: MEDIUM_PER_SECOND,
            ..RateLimits::default()
        }),
        ..SimConfig::default()
    }
}

/// The keys of `[rate_limit]` with shaping on: the Pro plan, whose Medium
/// rate is [`MEDIUM_PER_SECOND`] (said again, so the figure is in the file),
/// and the default `max_wait`.
pub(crate) const SHAPING_ON: &str = r#"enabled = true
plan = "pro"
medium = 20
max_wait = "5s"
"#;

/// The two callers, for after `[[app]]` in a `proxy.toml`.
pub(crate) fn callers_toml(client_id: &str) -> String {
    format!(
        r#"
[[caller]]
name = "batch"
key_env = "BATCH_KEY"
grant = {{ client_id = "{client_id}", account_id = "{ACCOUNT}" }}
[[caller]]
name = "ui"
key_env = "UI_KEY"
grant = {{ client_id = "{client_id}", account_id = "{ACCOUNT}" }}
"#
    )
}

/// Where the callers send their calls.
#[derive(Debug)]
pub(crate) struct Targets {
    /// The greedy loops take these in turn (loop `i` uses `greedy[i % len]`).
    pub(crate) greedy: Vec<SocketAddr>,
    pub(crate) interactive: SocketAddr,
    /// The admin listener of every grantmux, for its `/metrics`.
    pub(crate) admins: Vec<SocketAddr>,
}
// === impl Targets ===

impl Targets {
    /// Runs the load for [`RUN`] and measures it against `sim`.
    pub(crate) async fn run(&self, sim: &SimHandle) -> Figures {
        self.warm_up().await;
        let counted = grantmux_counters(&self.admins).await;
        let before = sim.stats();
        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let greedy = self.start_greedy(&stop);
        let interactive = tokio::spawn(interactive(self.interactive, started));
        // The run's length is the load's shape, not a wait for some event.
        tokio::time::sleep_until(started + RUN).await;
        let at_end = sim.stats();
        let window = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        let mut greedy_calls = Vec::new();
        for task in greedy {
            greedy_calls.extend(task.await.expect("a greedy loop"));
        }
        let interactive = interactive.await.expect("the interactive caller");
        let after = sim.stats();
        let counters = grantmux_counters(&self.admins).await;
        Figures {
            window,
            served_medium: at_end.api_served.medium - before.api_served.medium,
            zoom_calls: after.api_requests - before.api_requests,
            zoom_429: after.api_429 - before.api_429,
            zoom_429_qps: after.api_429_qps - before.api_429_qps,
            zoom_429_daily: after.api_429_daily - before.api_429_daily,
            grantmux: counters.since(&counted),
            greedy_targets: self.greedy.clone(),
            greedy: greedy_calls,
            interactive,
        }
    }

    /// One call of each caller through each address it will use: the grant's
    /// first token is minted and the connections opened before the window starts.
    async fn warm_up(&self) {
        let http = http();
        let mut firsts = vec![(self.interactive, UI_KEY)];
        firsts.extend(self.greedy.iter().map(|addr| (*addr, BATCH_KEY)));
        for (addr, key) in firsts {
            let call = call(&http, addr, key).await;
            assert_eq!(call.status, 200, "warm-up via {addr}: {:?}", call.failure);
        }
    }

    fn start_greedy(&self, stop: &Arc<AtomicBool>) -> Vec<JoinHandle<Vec<Call>>> {
        // One client per loop: 64 connections, as 64 workers of a batch job hold.
        (0..GREEDY_LOOPS)
            .map(|i| {
                let addr = self.greedy[i % self.greedy.len()];
                let stop = stop.clone();
                tokio::spawn(async move {
                    let http = http();
                    let mut calls = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        calls.push(call(&http, addr, BATCH_KEY).await);
                    }
                    calls
                })
            })
            .collect()
    }
}

/// 2 calls a second from `started` for [`RUN`], each on its own task so that a
/// slow answer does not delay the next call.
async fn interactive(addr: SocketAddr, started: Instant) -> Vec<Call> {
    let http = http();
    let mut ticks = tokio::time::interval_at(started, INTERACTIVE_EVERY);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let count = (RUN.as_millis() / INTERACTIVE_EVERY.as_millis()) as usize;
    let mut tasks = Vec::with_capacity(count);
    for _ in 0..count {
        ticks.tick().await;
        let http = http.clone();
        tasks.push(tokio::spawn(async move { call(&http, addr, UI_KEY).await }));
    }
    let mut calls = Vec::with_capacity(count);
    for task in tasks {
        calls.push(task.await.expect("an interactive call"));
    }
    calls
}

/// `GET` List meetings through grantmux at `addr` as the caller with `key`.
async fn call(http: &Http, addr: SocketAddr, key: &str) -> Call {
    let started = Instant::now();
    let answer = tokio::time::timeout(CALL_TIMEOUT, answer(http, addr, key)).await;
    let took = started.elapsed();
    let (status, local, failure) = match answer {
        Ok(Ok((status, local, body))) => {
            let failure = (!status.is_success())
                .then(|| format!("{status} {}", String::from_utf8_lossy(&body)));
            (status.as_u16(), local, failure)
        }
        Ok(Err(e)) => (0, false, Some(e)),
        Err(_) => (0, false, Some(format!("no answer in {CALL_TIMEOUT:?}"))),
    };
    Call {
        via: addr,
        status,
        local,
        took,
        failure,
    }
}

/// The answer's status, whether grantmux gave it itself, and its body.
async fn answer(
    http: &Http,
    addr: SocketAddr,
    key: &str,
) -> Result<(StatusCode, bool, Bytes), String> {
    let url = format!("http://{addr}{MEDIUM_PATH}");
    let auth = format!("Bearer {key}");
    let req = request(Method::GET, &url, &[("authorization", &auth)], "")?;
    let resp = http.request(req).await.map_err(|e| format!("{e:?}"))?;
    let local = resp.headers().get("x-grantmux-ratelimit").is_some();
    let (status, body) = read(resp).await?;
    Ok((status, local, body))
}
/// grantmux's own rate-limit counters, summed over every process's `/metrics`.
async fn grantmux_counters(admins: &[SocketAddr]) -> Counters {
    let http = http();
    let mut counters = Counters::default();
    for admin in admins {
        let url = format!("http://{admin}/metrics");
        let (status, body) = send(&http, Method::GET, &url, &[], "")
            .await
            .expect("admin answers");
        assert_eq!(status, 200, "/metrics of {admin}");
        counters.add(&String::from_utf8_lossy(&body));
    }
    counters
}
