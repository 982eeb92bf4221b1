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
//! app.rs        wiring: store, registry, upstream clients, listeners; ordered shutdown
//! config/       proxy.toml: raw serde shape -> validated Config, typed errors naming the key
//! serve.rs      the one accept loop: limits, TLS, graceful drain; serve/park.rs
//!               gives hyper's 16 KiB per HTTP/1 connection back while it idles, and
//!               serve/inline.rs serves a bodiless HTTP/1.1 request in the connection's
//!               own task (hyper serves the rest); handlers take serve::Incoming
//! body.rs       the boxed body type shared by every path
//! error.rs      ProxyError and OAuthError, and the one place each becomes an HTTP answer
//! upstream/     rustls clients to Zoom (webpki + system roots + zoom.ca_file): the API
//!               origin's own HTTP/1.1 + HTTP/2 pool (the hot path), where a bodiless call
//!               is exchanged in its own task (h1.rs) and others by hyper; hyper-util's for tokens;
//!               the resolver both use: the system's, or a DNS stub bypassing /etc/hosts
//!               (with listen.tls or zoom.dns_servers)
//! clock.rs      wall-clock time that tests can advance
//! secret.rs     a string whose Debug prints "..."
//! grants/       grant model (a leaf), published token, single-flight refresher with its
//!               attempt guard and write-through, adoption, bindings, registry, virtual tokens
//! store/        trait GrantStore (storage) and trait Coordinator (lock, refresh marker,
//!               announcements; `Local` for one process); trait Outbox (durable delivery
//!               queues); memory, file (redb), redis (its primary found by URL or through
//!               Sentinel and followed across failovers; WAIT for replicas); AES-256-GCM
//! oauth/        the Zoom token client; the caller-facing token endpoint
//! proxy/        classification, caller keys, header rules, forwarding, replay on 401
//!               and on Zoom's per-second 429
//! ratelimit/    Zoom's rate limits shared fairly: one paced budget per (account,
//!               category) with a weighted fair queue, shared through Redis when the
//!               store is; categories seeded and learned; daily 429s close a budget
//! intercept/    answering as zoom.us / api.zoom.us for clients whose URLs are in their
//!               code: a CA name-constrained to those hosts, leaves by SNI, the HTTPS
//!               forward proxy (CONNECT) and the TLS listener, both serving as proxy/ does
//! webhooks/     POST /webhooks/zoom: Zoom's signature verified per app, the URL
//!               validation answered, app_deauthorized wipes the grant before the 200;
//!               events queued per [[webhook_target]] before the 200, couriers deliver
//!               them in order (retries, dead letters); [[notify]] hears grants' lives
//! admin.rs      /healthz /readyz /metrics /grants /ratelimits /deliveries; refresh and
//!               revoke a grant
//! admin_cli.rs  `grantmux admin`: the admin API as tables (or its JSON) for operators
//! metrics.rs    every metric, registered once
//! moved.rs      when something last moved: the idle-connection and upload watchdogs' clock
//! failpoint.rs  crash and freeze points for the durability tests
//! signal.rs     SIGTERM / Ctrl-C, and SIGHUP
//! reload.rs     config reload without restart (SIGHUP, --watch-config): swaps callers,
//!               apps, refresh and rate-limit settings, log level; names what needs a restart
//! sim/          the Zoom simulator (`grantmux sim`, and the test suite's upstream)
//! harness.rs    simulator + grantmux on loopback: what demo, tests and benches run
//! demo.rs       `grantmux demo`: two systems, one Zoom user, without and with grantmux
//! ```
//!
//! A request flows: listener → classify (`/oauth/*` or API) → resolve the caller's
//! grant → take the current token (one atomic load) → forward → on 401 code 124,
//! refresh (single-flight) and replay once → respond. The refresher is the only
//! writer of a grant, and the store is written before a new token is published.
//!
//! A call to Zoom that changes a grant (refresh, mint, code exchange, legacy
//! adoption) runs in a task the grant or the registry owns, never in a caller's
//! request future: Zoom acts on it the moment it arrives, so its answer is always
//! taken in (stored, held in memory and retried, or recorded as a refusal), even
//! if every caller waiting on it has gone. Shutdown waits for those tasks, then
//! makes a last write of anything the store has not taken.

pub mod admin;
pub mod admin_cli;
pub mod app;
pub mod body;
pub mod clock;
pub mod config;
pub mod demo;
pub mod error;
pub mod failpoint;
pub mod grants;
pub mod harness;
pub mod intercept;
pub mod metrics;
mod moved;
pub mod oauth;
pub mod proxy;
pub mod ratelimit;
pub mod reload;
pub mod secret;
pub mod serve;
pub mod signal;
pub mod sim;
pub mod store;
pub mod upstream;
pub mod webhooks;
