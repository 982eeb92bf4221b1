//! grantmux in front of the simulator, over real sockets.

mod forwarding;
mod refresh;
mod support;
