//! Real-socket tests of the Zoom simulator (`grantmux::sim`), one binary for all of them.

mod api;
mod faults;
mod oauth;
mod support;
mod tls;
