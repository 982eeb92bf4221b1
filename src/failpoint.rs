//! Crash points for the durability and multi-replica tests.
//!
//! `GRANTMUX_FAILPOINT=<step>` aborts the process (as `kill -9` would) when the
//! refresher reaches that step; `GRANTMUX_FAILPOINT=<step>:stop` instead
//! freezes it there once with SIGSTOP, for the test to resume with SIGCONT.
//!
//! Steps: `before_zoom`, `after_zoom` (Zoom answered, nothing written),
//! `after_write` (stored, not yet published), `after_publish`. Unset in
//! production, where the check is one load of a cached value.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

static ARMED: OnceLock<Option<(String, Action)>> = OnceLock::new();
static STOPPED_ONCE: AtomicBool = AtomicBool::new(false);

#[derive(Debug, PartialEq, Eq)]
enum Action {
    Abort,
    Stop,
}

/// Acts if the failpoint `name` is armed.
pub fn hit(name: &str) {
    let armed = ARMED.get_or_init(|| {
        let value = std::env::var("GRANTMUX_FAILPOINT")
            .ok()
            .filter(|v| !v.is_empty())?;
        Some(match value.split_once(':') {
            Some((step, "stop")) => (step.to_owned(), Action::Stop),
            _ => (value, Action::Abort),
        })
    });
    match armed {
        Some((step, Action::Abort)) if step == name => {
            eprintln!("grantmux: failpoint {name} reached; aborting");
            std::process::abort();
        }
        Some((step, Action::Stop))
            if step == name && !STOPPED_ONCE.swap(true, Ordering::SeqCst) =>
        {
            eprintln!("grantmux: failpoint {name} reached; stopping");
            // No unsafe here: ask kill(1) to stop us. It returns once we are resumed.
            let _ = std::process::Command::new("kill")
                .args(["-STOP", &std::process::id().to_string()])
                .status();
        }
        _ => {}
    }
}
