//! Zoom's rate limits shared fairly (issue 16, "Done when"): a real `grantmux
//! serve` in front of an in-process simulator that enforces Zoom's limits, a
//! greedy caller and an interactive one on the same account's Medium budget, for
//! 20 s of real time (the two processes cannot share a paused clock).
//!
//! Each test prints its figures, one line each, for BENCHMARKS.md:
//! `cargo test --test ratelimit -- --nocapture`.

#[path = "../common/mod.rs"]
mod common;
mod figures;
mod load;
mod sharing;
