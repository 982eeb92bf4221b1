//! Crash points for the durability and multi-replica tests.
//!
//! `GRANTMUX_FAILPOINT=<step>` aborts the process (as `kill -9` would) when the
//! refresher reaches that step; `GRANTMUX_FAILPOINT=<step>:stop` instead
//! freezes it there once with SIGSTOP, for the test to resume with SIGCONT.
//! `GRANTMUX_FAILPOINT=store_save:fail` makes every file-store write fail, as
//! a full or broken disk would.
//!
//! Steps: `before_zoom`, `calling_zoom` (past the last check that the refresh
//! lock is still ours), `after_zoom` (Zoom answered, nothing written),
//! `after_write` (stored, not yet published), `after_publish`; and
//! `adoption_stored` (an adopted code's or legacy token's answer stored under
//! its pending key, its user not yet known); and, in the wipe on Zoom's
//! `app_deauthorized`, `wipe_decided` (the grant is to be wiped, nothing
//! written) and `wipe_stored` (the wiped record durable, on the file store
//! with the old file rewritten away, and saying its `grant.deauthorized` is
//! owed; memory still holds the tokens, no lifecycle event raised, Zoom not
//! answered). Unset in production, where the
//! check is one load of a cached value.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

static ARMED: OnceLock<Option<(String, Action)>> = OnceLock::new();
static STOPPED_ONCE: AtomicBool = AtomicBool::new(false);

#[derive(Debug, PartialEq, Eq)]
enum Action {
    Abort,
    Stop,
    /// The step reports failure every time (`<step>:fail`), e.g. `store_save`.
    Fail,
}

fn armed() -> &'static Option<(String, Action)> {
    ARMED.get_or_init(|| {
        let value = std::env::var("GRANTMUX_FAILPOINT")
            .ok()
            .filter(|v| !v.is_empty())?;
        Some(match value.split_once(':') {
            Some((step, "stop")) => (step.to_owned(), Action::Stop),
            Some((step, "fail")) => (step.to_owned(), Action::Fail),
            _ => (value, Action::Abort),
        })
    })
}

/// Whether step `name` is armed to fail (`GRANTMUX_FAILPOINT=<name>:fail`).
pub fn failing(name: &str) -> bool {
    matches!(armed(), Some((step, Action::Fail)) if step == name)
}

/// Acts if the failpoint `name` is armed.
pub fn hit(name: &str) {
    match armed() {
        Some((step, Action::Abort)) if step == name => {
            eprintln!("grantmux: failpoint {name} reached; aborting");
            std::process::abort();
        }
        Some((step, Action::Stop))
            if step == name && !STOPPED_ONCE.swap(true, Ordering::SeqCst) =>
        {
            eprintln!("grantmux: failpoint {name} reached; stopping");
            // No unsafe here: ask kill(1) to stop us.
            let _ = std::process::Command::new("kill")
                .args(["-STOP", &std::process::id().to_string()])
                .status();
            wait_until_stopped();
        }
        _ => {}
    }
}

/// kill(1) signals the process, and the kernel has one of its threads start
/// the group stop, maybe not this one: until that thread runs, this one could
/// carry on past the step (seen under load: a write landed "after_zoom").
/// So sleep in small steps until another thread shows stopped, or a sleep
/// overran because this thread was stopped too. The next sleep stops it.
fn wait_until_stopped() {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let before = Instant::now();
        std::thread::sleep(Duration::from_millis(1));
        if before.elapsed() > Duration::from_millis(200) || another_thread_stopped() {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(1));
}

fn another_thread_stopped() -> bool {
    let me = std::fs::read_link("/proc/thread-self").ok();
    let Ok(threads) = std::fs::read_dir("/proc/self/task") else {
        return false;
    };
    threads.flatten().any(|t| {
        let other = me.as_ref().is_none_or(|me| !me.ends_with(t.file_name()));
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        // "TID (comm) STATE ...": comm may hold spaces and parentheses.
        let state = stat.rsplit(')').next().map(str::trim_start);
        other && state.is_some_and(|s| s.starts_with('T') || s.starts_with('t'))
    })
}
