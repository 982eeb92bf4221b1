//! Durability with real processes: restarts, `kill -9`, crashes at each step of a refresh.

#[path = "../common/mod.rs"]
mod common;
mod crash;
mod delivery;
mod kills;
mod process;
mod support;
mod wipe;
