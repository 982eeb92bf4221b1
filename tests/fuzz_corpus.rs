//! The fuzz targets' corpus and every failing input they found, replayed
//! through the same checks (`fuzz/checks.rs`) under `cargo test`: each input
//! that once reached new code or broke a property stays a regression test.
//! `fuzz/run.sh` does the fuzzing itself.

use std::path::Path;

#[allow(dead_code, unreachable_pub)]
mod checks {
    include!("../fuzz/checks.rs");
}

/// Runs `check` on every file under `fuzz/corpus/<target>` and
/// `fuzz/regressions/<target>`; returns how many it ran.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut ran = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("corpus entry").path();
            let data = std::fs::read(&path).expect("corpus file");
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{} fails its check", path.display());
            ran += 1;
        }
    }
    ran
}

#[test]
fn token_request() {
    assert!(replay("token_request", checks::token_request) > 0);
}

#[test]
fn vtoken() {
    assert!(replay("vtoken", checks::vtoken) > 0);
}

#[test]
fn config() {
    assert!(replay("config", checks::config) > 0);
}

#[test]
fn header_rules() {
    assert!(replay("header_rules", checks::header_rules) > 0);
}

#[test]
fn sim_token() {
    assert!(replay("sim_token", checks::sim_token) > 0);
}
