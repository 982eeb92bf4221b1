//! One grantmux, one account, two callers on its Medium budget: with shaping the
//! interactive caller never sees a 429 and Zoom almost never says no; without it,
//! the batch job's 429s land on the interactive caller too.

use grantmux::sim::{Sim, SimHandle};
use tempfile::TempDir;

use crate::common::process::{write_config, Grantmux, CLIENT};
use crate::figures::Figures;
use crate::load::{callers_toml, sim_config, Targets, CALLER_ENV, SHAPING_ON};

/// The figures are of one scenario alone on the machine: the two tests of this
/// binary take turns (the test harness would run them side by side).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `[rate_limit]` with shaping off: every call passes through as Zoom answers it.
const SHAPING_OFF: &str = "enabled = false\n";

/// A simulator enforcing Zoom's limits and one grantmux in front of it.
struct World {
    sim: SimHandle,
    gmx: Grantmux,
    _dir: TempDir,
}

impl World {
    async fn start(shaping: bool) -> Self {
        let sim = Sim::start(sim_config()).await.expect("sim starts");
        let dir = tempfile::tempdir().expect("tempdir");
        let rate_limit = if shaping { SHAPING_ON } else { SHAPING_OFF };
        let callers = callers_toml(CLIENT);
        let rest = format!("[store]\nbackend = \"memory\"\n[rate_limit]\n{rate_limit}{callers}");
        let config = write_config(dir.path(), &sim.base_url(), &rest);
        let gmx = Grantmux::start(&config, &CALLER_ENV);
        Self {
            sim,
            gmx,
            _dir: dir,
        }
    }

    async fn run(&self) -> Figures {
        let targets = Targets {
            greedy: vec![self.gmx.proxy],
            interactive: self.gmx.proxy,
            admins: vec![self.gmx.admin],
        };
        targets.run(&self.sim).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_greedy_caller_leaves_the_interactive_one_its_share_of_the_budget() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let world = World::start(true).await;
    let figures = world.run().await;
    figures.print("shaping on");
    let latency = figures.interactive_latency();
    assert_eq!(figures.interactive_429s(), 0, "interactive 429s");
    assert!(
        latency.p99.as_secs_f64() < 1.0,
        "interactive p99 {:?}",
        latency.p99
    );
    let failures = figures.greedy_failures();
    assert!(
        failures.is_empty(),
        "the greedy caller only waits: {} failures, the first: {:?}",
        failures.len(),
        failures.first()
    );
    assert!(
        figures.zoom_429_share() <= 0.01,
        "Zoom refused {} of {} calls",
        figures.zoom_429,
        figures.zoom_calls
    );
    assert!(
        figures.share_of_limit() >= 0.90,
        "Zoom served {} Medium calls in {:?}: {:.2}/s",
        figures.served_medium,
        figures.window,
        figures.served_per_second()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_shaping_the_batch_jobs_429s_land_on_the_interactive_caller() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let world = World::start(false).await;
    let figures = world.run().await;
    figures.print("shaping off");
    assert!(figures.interactive_429s() > 0, "interactive 429s");
}
