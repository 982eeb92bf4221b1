//! Crash points for the durability tests: `GRANTMUX_FAILPOINT=<name>` makes the
//! process abort (as `kill -9` would) when the refresher reaches that step.
//!
//! Steps: `before_zoom`, `after_zoom` (Zoom answered, nothing written),
//! `after_write` (stored, not yet published), `after_publish`. Unset in
//! production, where the check is one relaxed load of a cached value.

use std::sync::OnceLock;

static ARMED: OnceLock<Option<String>> = OnceLock::new();

/// Aborts the process if the failpoint `name` is armed.
pub fn hit(name: &str) {
    let armed = ARMED.get_or_init(|| {
        std::env::var("GRANTMUX_FAILPOINT")
            .ok()
            .filter(|v| !v.is_empty())
    });
    if armed.as_deref() == Some(name) {
        eprintln!("grantmux: failpoint {name} reached; aborting");
        std::process::abort();
    }
}
