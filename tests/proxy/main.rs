//! grantmux in front of the simulator, over real sockets.

mod admin;
#[path = "../common/mod.rs"]
mod common;
mod forwarding;
mod limits;
mod pool;
mod refresh;
mod replay;
mod support;
mod tls;
