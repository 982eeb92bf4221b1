//! Real-socket tests of the Zoom simulator (`grantmux::sim`), one binary for all of them.

mod api;
mod cli;
mod faults;
mod grants;
mod oauth;
mod ratelimit;
mod support;
mod tls;
