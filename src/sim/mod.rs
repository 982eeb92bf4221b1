//! The Zoom simulator: a local imitation of Zoom's OAuth and REST API (ZOOM.md §8).
//!
//! One listener serves both hosts' paths:
//!
//! ```text
//! GET  /oauth/authorize        approve at once, 302 to redirect_uri?code=…&state=…
//! POST /oauth/token            authorization_code | refresh_token | account_credentials
//!                              | client_credentials; Basic or form credentials,
//!                              or a public client's client_id with PKCE
//! POST /oauth/revoke           revoke a grant by one of its tokens
//! GET  /v2/users/{me|id}       GET|POST /v2/users/{id}/meetings
//! GET|PATCH|DELETE /v2/meetings/{id}
//! POST /v2/im/chat/messages   a chatbot message: app (client_credentials) tokens only
//! ANY  /v2/_echo/…             answer with what arrived (proxy tests); rate-limited
//!                              as Heavy under _echo/heavy, Resource-intensive under
//!                              _echo/resource
//! GET  /_sim/stats             counters, no auth
//! POST /_sim/webhooks          {url, secret_token}: where signed events go
//! POST /_sim/webhooks/validate run Zoom's URL validation against that URL
//! POST /_sim/uninstall         {client_id, user_id | account_id}: revoke, then
//!                              send app_deauthorized
//! ```
//!
//! # Layout
//!
//! ```text
//! config.rs     SimConfig and its defaults, Faults, RateLimits, DailyLimits
//! handle.rs     Sim::start, SimHandle (steering, stats, shutdown)
//! state.rs      what connections share; runtime-changeable Settings
//! router.rs     the service: path → endpoint
//! oauth.rs      parameters and client auth shared by the OAuth endpoints
//! authorize.rs  /oauth/authorize and /oauth/revoke
//! token.rs      /oauth/token
//! codes.rs      authorization codes and PKCE
//! grants.rs     the token store: rotation, re-authorization, revocation, expiry
//! jwt.rs        HS512 tokens shaped like Zoom's
//! api.rs        /v2/*: faults, recording, bearer check, rate limits
//! rest.rs       users and meetings routes; directory.rs holds their data
//! echo.rs       RecordedRequest and the echo route
//! ratelimit.rs  Zoom's rate limits: each route's category; per-second, per-minute
//!               and daily windows per account; the per-user meeting cap
//!   verdict.rs  the X-RateLimit-* headers and Zoom's three 429s
//! faults.rs     latency, 503 and connection-drop injection
//! stats.rs      counters: requests, errors, 429s by kind, calls served by category
//! tls.rs        generated CA + leaf for HTTPS mode
//! webhooks.rs   signed event delivery, URL validation, the uninstall route
//! cli.rs        `grantmux sim`
//! ```
//!
//! Every expiry decision reads [`SimConfig::clock`], so tests advance time instead
//! of sleeping. Tokens and secrets are never logged above debug level, and not even
//! there.

pub mod cli;

mod api;
mod authorize;
mod codes;
mod config;
mod directory;
mod echo;
mod faults;
mod grants;
mod handle;
mod jwt;
mod oauth;
mod ratelimit;
mod reply;
mod rest;
mod router;
mod state;
mod stats;
mod tls;
mod token;
mod webhooks;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use config::{
    DailyLimits, Faults, RateLimits, SimApp, SimConfig, DEFAULT_ACCOUNT_ID, DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET, DEFAULT_CODE_TTL, DEFAULT_MEETING_WRITES_PER_USER,
    DEFAULT_REFRESH_TOKEN_TTL, DEFAULT_S2S_TOKEN_TTL, DEFAULT_USER, DEFAULT_USER_TOKEN_TTL,
};
pub use echo::RecordedRequest;
pub use handle::{Sim, SimHandle};
pub use stats::{CategoryCounts, SimStats, TokenRequests};
pub use tls::TestCertificates;
pub use token::OfflineTokenEndpoint;

/// Why a simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("the simulator needs at least one app")]
    NoApps,
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot generate the TLS certificates: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("cannot build the TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("cannot write the CA certificate to {}: {source}", path.display())]
    WriteCa {
        path: PathBuf,
        source: std::io::Error,
    },
}
