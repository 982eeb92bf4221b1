//! # grantmux
//!
//! A sidecar reverse proxy that lets many systems share **one Zoom OAuth grant per
//! Zoom user or account**. Callers point their Zoom API base URL and OAuth token URL
//! at grantmux; it answers their OAuth calls from the one grant it holds, refreshes
//! that grant single-flight, stores the rotated refresh token durably, and injects
//! the current real token into every forwarded call.
//!
//! # Layout
//!
//! ```text
//! main.rs       thin CLI: parse, load config, init tracing, run, pick the exit code
//! config.rs     proxy.toml: raw serde shape -> validated Config, typed errors
//! serve.rs      the one hyper accept loop: limits, TLS, graceful drain
//! body.rs       the boxed body type shared by every path
//! clock.rs      wall-clock time that tests can advance
//! secret.rs     a string whose Debug prints "..."
//! grants/       grant model, registry, single-flight refresher, virtual tokens
//! store/        trait GrantStore and its backends
//! oauth/        the Zoom token client; the caller-facing token endpoint
//! proxy/        classification, header rules, forwarding, replay on 401
//! admin.rs      /healthz /readyz /metrics /grants
//! sim/          the Zoom simulator (`grantmux sim`, and the test suite's upstream)
//! demo.rs       `grantmux demo`: two systems, one Zoom user, without and with grantmux
//! ```
//!
//! A request flows: listener → classify (`/oauth/*` or API) → resolve the caller's
//! grant → take the current token (one atomic load) → forward → on 401 code 124,
//! refresh (single-flight) and replay once → respond. The refresher is the only
//! writer of a grant, and the store is written before a new token is published.

pub mod admin;
pub mod app;
pub mod body;
pub mod clock;
pub mod config;
pub mod demo;
pub mod error;
pub mod failpoint;
pub mod grants;
pub mod harness;
pub mod metrics;
pub mod oauth;
pub mod proxy;
pub mod secret;
pub mod serve;
pub mod signal;
pub mod sim;
pub mod store;
pub mod upstream;
