//! The token endpoint callers see (`/oauth/token`, `/oauth/revoke`,
//! `/oauth/authorize`), grantmux in front of the simulator over real sockets.
//! Time moves by advancing the clock the simulator and grantmux share.

mod account;
mod bad_input;
mod client;
mod client_auth;
#[path = "../common/receiver.rs"]
mod receiver;
mod revoke;
mod sharing;
mod support;
mod systems;
mod webhooks;
