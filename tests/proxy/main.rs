//! grantmux in front of the simulator, over real sockets.

mod admin;
#[path = "../common/mod.rs"]
mod common;
mod dns;
mod errors;
mod forwarding;
mod idle;
mod intercept;
mod limits;
mod metrics;
mod pool;
mod ratelimit;
mod readiness;
mod refresh;
mod replay;
mod support;
mod tls;
mod upload;
