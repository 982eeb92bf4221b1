//! Callers hanging up while grantmux waits on Zoom's token endpoint (issue 12): a real
//! `grantmux serve` process in front of a simulator that acts at once and answers late.
//! And Zoom hanging up on its own `app_deauthorized` delivery mid-wipe, in process.

mod adoption;
#[path = "../common/mod.rs"]
mod common;
mod refresh;
mod support;
mod uninstall;
