//! `proxy.toml`: the raw serde shape, validated into [`Config`].
//!
//! Two stages (STYLE habit 3): `file.rs` is the TOML shape as written
//! (`deny_unknown_fields`, everything optional), `validate.rs` turns it into the
//! types below, applying the `DEFAULT_*` constants and naming the key path of
//! anything wrong in a [`ConfigError`]. [`Config::from_toml_str`] is pure: it sees
//! the environment and files only through an [`Env`] (habit 4).
//! [`Config::load`] reads a file and uses the real process environment.

mod env;
mod error;
mod file;
mod validate;
mod values;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use self::env::{Env, MapEnv, ProcessEnv};
pub use self::error::ConfigError;
use crate::grants::{GrantKey, Subject};
use crate::secret::Secret;

pub const DEFAULT_PROXY_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_ADMIN_ADDR: &str = "127.0.0.1:9090";
pub const DEFAULT_ZOOM_API_URL: &str = "https://api.zoom.us";
pub const DEFAULT_ZOOM_OAUTH_URL: &str = "https://zoom.us";
pub const DEFAULT_STORE_PATH: &str = "./grantmux-state";
/// How long a replica holds a grant's Redis refresh lock without renewing it.
/// Renewed every third of it while a refresh runs, so it only runs out when the
/// holder froze or died; then another replica waits at most this long.
pub const DEFAULT_LOCK_LEASE: Duration = Duration::from_secs(10);
/// How long a write waits for `store.min_replicas_acked` replicas.
pub const DEFAULT_REPLICA_ACK_TIMEOUT: Duration = Duration::from_secs(1);
pub const DEFAULT_REFRESH_AHEAD: Duration = Duration::from_secs(5 * 60);
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(30 * 24 * 3600);
pub const DEFAULT_BACKOFF_MIN: Duration = Duration::from_secs(1);
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(60);
pub const DEFAULT_REPLAY_BODY_LIMIT: usize = 1024 * 1024;
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Probes, scrapes and an operator's CLI: a handful. Its own limit, so that the
/// proxy's load can never take `/healthz` down, nor admin take the proxy's slots.
pub const DEFAULT_ADMIN_MAX_CONNECTIONS: usize = 64;
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
pub const DEFAULT_MAX_HEADERS: usize = 100;
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// The port of a `zoom.dns_servers` entry given as a bare IP address.
pub const DEFAULT_DNS_PORT: u16 = 53;
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// A streamed upload may pause this long without a byte moving.
pub const DEFAULT_UPLOAD_STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The names grantmux answers as when intercepting: Zoom's OAuth and API hosts.
pub const DEFAULT_INTERCEPT_HOSTS: &[&str] = &["zoom.us", "api.zoom.us"];
/// Interception leaf certificates live this long, and are renewed with a third left.
pub const DEFAULT_LEAF_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Caller-sent forwarding headers let through to Zoom: none.
pub const DEFAULT_KEEP_FORWARDING_HEADERS: &[&str] = &[];
/// How long a request may wait for its rate-limit budget before a local 429.
pub const DEFAULT_RATE_LIMIT_MAX_WAIT: Duration = Duration::from_secs(5);
/// The share of Zoom's per-second rate kept unused, against the jitter between
/// our pacing and Zoom's one-second windows.
pub const DEFAULT_RATE_LIMIT_HEADROOM: f64 = 0.05;
/// How far a webhook's timestamp may be from our clock.
pub const DEFAULT_WEBHOOK_TOLERANCE: Duration = Duration::from_secs(5 * 60);
/// Attempts per queued message before it is dead-lettered: with the backoff
/// below, about two days of trying.
pub const DEFAULT_DELIVERY_MAX_ATTEMPTS: u32 = 20;
pub const DEFAULT_DELIVERY_BACKOFF_MIN: Duration = Duration::from_secs(1);
pub const DEFAULT_DELIVERY_BACKOFF_MAX: Duration = Duration::from_secs(3 * 60 * 60);
/// Zoom itself waits 3 s for a webhook's answer; a system behind grantmux gets more.
pub const DEFAULT_DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Lifecycle events a `[[notify]]` entry may name.
pub const GRANT_EVENTS: &[&str] = &[
    "grant.dead",
    "grant.deauthorized",
    "grant.reauthorized",
    "grant.unpersisted",
];
/// A caller's (or an app's bindings') share of a budget.
pub const DEFAULT_WEIGHT: u32 = 1;

/// The validated configuration. Nothing past `config.rs` sees raw TOML.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: Listen,
    pub zoom: Zoom,
    pub apps: Vec<App>,
    pub store: Store,
    pub refresh: Refresh,
    pub proxy: Proxy,
    pub callers: Vec<Caller>,
    pub intercept: Intercept,
    pub rate_limit: RateLimit,
    pub log: Log,
    pub webhooks: Webhooks,
}

/// `[webhooks]`, `[[webhook_target]]` and `[[notify]]`: how Zoom's signed
/// events are taken in and fanned out, and who hears of grants' lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhooks {
    /// Events whose `x-zm-request-timestamp` is further than this from our
    /// clock are refused: a captured delivery cannot be replayed later.
    pub tolerance: Duration,
    /// A listener of its own for `POST /webhooks/zoom` (an Ingress's backend),
    /// beside the proxy listener, which always serves it too.
    pub listen: Option<SocketAddr>,
    pub delivery: Delivery,
    /// Systems that receive Zoom's events, each from a queue of its own.
    pub targets: Vec<WebhookTarget>,
    /// Systems told when a grant dies, is deauthorized, comes back, or holds
    /// a token the store did not take.
    pub notify: Vec<NotifyTarget>,
}

/// How queued events are delivered to targets and notify URLs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Attempts before a message goes to its queue's dead letters.
    pub max_attempts: u32,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// One attempt's limit: connect, send, and the answer's status.
    pub timeout: Duration,
}

/// `[[webhook_target]]`: one system that receives Zoom's events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookTarget {
    /// Names the queue, so that it outlives a change of `url`. Default: the URL.
    pub name: String,
    pub url: http::Uri,
    /// Event types it takes (`meeting.created`, or a prefix: `meeting.*`).
    /// Empty: every event.
    pub events: Vec<String>,
    /// Only this app's events (a `client_id`). `None`: every app's.
    pub app: Option<String>,
}

/// `[[notify]]`: one system told of grants' lifecycle events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifyTarget {
    pub name: String,
    pub url: http::Uri,
    /// `grant.dead`, `grant.deauthorized`, `grant.reauthorized`,
    /// `grant.unpersisted`. Empty: all of them.
    pub events: Vec<String>,
    /// Signs each POST (`x-grantmux-signature`).
    pub secret: Secret,
}

/// Does `event` match one of `filters` (exact, or a prefix ending in `*`)? No filter: all.
pub fn event_matches(filters: &[String], event: &str) -> bool {
    filters.is_empty()
        || filters.iter().any(|f| match f.strip_suffix('*') {
            Some(prefix) => event.starts_with(prefix),
            None => f == event,
        })
}

impl Default for Webhooks {
    fn default() -> Self {
        Self {
            tolerance: DEFAULT_WEBHOOK_TOLERANCE,
            listen: None,
            delivery: Delivery::default(),
            targets: Vec::new(),
            notify: Vec::new(),
        }
    }
}

impl Default for Delivery {
    fn default() -> Self {
        Self {
            max_attempts: DEFAULT_DELIVERY_MAX_ATTEMPTS,
            backoff_min: DEFAULT_DELIVERY_BACKOFF_MIN,
            backoff_max: DEFAULT_DELIVERY_BACKOFF_MAX,
            timeout: DEFAULT_DELIVERY_TIMEOUT,
        }
    }
}

/// `[log]`: what can be changed without a restart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Log {
    /// A tracing filter (`info`, `grantmux=debug,info`). `None`: the
    /// `GRANTMUX_LOG` environment variable's, else `info`. The variable, when
    /// set, wins over this key.
    pub level: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Listen {
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    /// What `api_url` in token answers becomes; no trailing slash.
    pub public_url: String,
    pub max_connections: usize,
    /// The admin listener's own connection limit.
    pub admin_max_connections: usize,
    /// Also bounds how long a connection may hold its slot idle: from accept to
    /// its first request, and between requests (HTTP/1.1 keep-alive and HTTP/2).
    pub header_read_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    /// An HTTPS forward proxy (`HTTPS_PROXY`) that answers `CONNECT` to Zoom's
    /// hosts by intercepting them (see [`Intercept`]).
    pub forward_proxy: Option<SocketAddr>,
    /// A TLS listener that answers as Zoom's hosts by SNI, for `/etc/hosts` or
    /// Kubernetes `hostAliases` redirection.
    pub tls: Option<SocketAddr>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Zoom {
    /// REST base, e.g. `https://api.zoom.us`. Always has a scheme and authority, no path.
    pub api_url: http::Uri,
    /// OAuth base, e.g. `https://zoom.us`. Always has a scheme and authority, no path.
    pub oauth_url: http::Uri,
    pub ca_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    /// Time allowed until Zoom's response headers arrive.
    pub response_timeout: Duration,
    /// Nameservers asked for Zoom's addresses directly, bypassing `/etc/hosts`.
    /// Empty: `/etc/resolv.conf`'s when `listen.tls` is set, else the system
    /// resolver (see `upstream::Resolver`).
    pub dns_servers: Vec<SocketAddr>,
}

#[derive(Clone, Debug)]
pub struct App {
    pub client_id: String,
    /// `None` for a public client (`public = true`): Zoom's public client IDs
    /// for PKCE, which send their `client_id` and no secret.
    pub client_secret: Option<Secret>,
    pub revoke_upstream: RevokePolicy,
    /// The share of a rate-limit budget each of this app's virtual-token
    /// callers (bindings) gets against others waiting for it.
    pub weight: u32,
    /// The app's webhook Secret Token (`webhook_secret_env` or
    /// `webhook_secret_file`): Zoom signs the events it sends with it.
    /// `None`: grantmux accepts no webhook for this app.
    pub webhook_secret: Option<Secret>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RevokePolicy {
    #[default]
    Never,
    LastBinding,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Store {
    pub backend: StoreBackend,
    pub key: KeySource,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreBackend {
    Memory,
    File { path: PathBuf },
    Redis(Box<RedisStore>),
}

/// `store.backend = "redis"`: where the primary is and what makes a write durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisStore {
    /// `store.url` / `store.url_env`. With Sentinel, its credentials, TLS
    /// (`rediss://`) and database apply to the primary Sentinel names; its
    /// host is not used.
    pub url: Secret,
    /// The refresh lock's lease (`store.lock_lease`).
    pub lock_lease: Duration,
    /// `store.sentinels` and `store.sentinel_master`: find the primary through
    /// Sentinel and follow its failovers. `None`: `url`'s host is the primary.
    pub sentinel: Option<Sentinel>,
    /// `store.min_replicas_acked`: replicas that must hold a write (`WAIT`)
    /// before it counts as durable. 0: the primary's answer is enough.
    pub min_replicas_acked: u32,
    /// `store.replica_ack_timeout`: how long a write waits for them.
    pub replica_ack_timeout: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sentinel {
    /// `host:port` of each Sentinel.
    pub addrs: Vec<String>,
    /// The name the Sentinels know the primary by.
    pub master: String,
}

/// Where the at-rest encryption key comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// Generated once into the state folder (file backend) or unused (memory).
    Generated,
    Env(String),
    File(PathBuf),
}

#[derive(Clone, Debug)]
pub struct Refresh {
    pub ahead: Duration,
    pub keepalive: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Proxy {
    pub replay_body_limit: usize,
    /// Forward unknown bearer tokens untouched (migration mode).
    pub passthrough: bool,
    pub shutdown_grace: Duration,
    /// How long a streamed request body may go without a byte moving; counts
    /// no time in which it does (`zoom.response_timeout` starts at its end).
    pub upload_stall_timeout: Duration,
    /// Forwarding headers (`X-Forwarded-*`, `Forwarded`, `X-Real-IP`, `Via`) a
    /// caller sent that still reach Zoom; every other one is dropped.
    pub keep_forwarding_headers: Vec<http::HeaderName>,
}

/// `[rate_limit]`: one budget per (Zoom account, category), paced and shared
/// fairly (DESIGN §3.11).
#[derive(Clone, Debug)]
pub struct RateLimit {
    /// `false`: every call passes through, as Zoom answers it.
    pub enabled: bool,
    pub plan: Plan,
    /// Zoom's per-second rates by category: the plan's, with overrides.
    pub rates: crate::ratelimit::Rates,
    pub max_wait: Duration,
    /// `0..1`: the share of each rate left unused.
    pub headroom: f64,
}

/// Zoom's account plans, which set its per-second rates (ZOOM.md §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    Free,
    Pro,
    /// Business, Education, Enterprise and Partners ("Business+").
    Business,
    /// Every rate given in the config.
    Custom,
}

// === impl RateLimit ===

impl RateLimit {
    /// Shaping off: what `for_upstream` (tests, demo) starts with.
    pub fn off() -> Self {
        Self {
            enabled: false,
            plan: Plan::Pro,
            rates: Plan::Pro
                .rates()
                .unwrap_or_else(|| crate::ratelimit::Rates::new(30.0, 20.0, 10.0, 10.0)),
            max_wait: DEFAULT_RATE_LIMIT_MAX_WAIT,
            headroom: DEFAULT_RATE_LIMIT_HEADROOM,
        }
    }
}

// === impl Plan ===

impl Plan {
    /// Light, Medium and Heavy per second and Resource-intensive per minute,
    /// from Zoom's table; `None` for `custom`.
    pub fn rates(self) -> Option<crate::ratelimit::Rates> {
        use crate::ratelimit::Rates;
        match self {
            Plan::Free => Some(Rates::new(4.0, 2.0, 1.0, 10.0)),
            Plan::Pro => Some(Rates::new(30.0, 20.0, 10.0, 10.0)),
            Plan::Business => Some(Rates::new(80.0, 60.0, 40.0, 20.0)),
            Plan::Custom => None,
        }
    }
}

/// Answering as Zoom's own hosts, for clients whose URLs are fixed in code.
/// Active when `listen.forward_proxy` or `listen.tls` is set.
#[derive(Clone, Debug, PartialEq)]
pub struct Intercept {
    /// The names grantmux's CA may sign (its name constraints) and answers as.
    pub hosts: Vec<String>,
    /// The CA's files: loaded if they exist, else generated once and written
    /// there (key 0600). `None` only with the memory store: a CA per start.
    pub ca: Option<CaFiles>,
    /// Where to write the platform's roots plus grantmux's CA, for variables
    /// like `SSL_CERT_FILE` that replace the system store.
    pub ca_bundle_export: Option<PathBuf>,
    /// `CONNECT` targets passed through untouched (no TLS termination).
    pub tunnel: Vec<TunnelRule>,
    pub leaf_lifetime: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `host:port` or `*.domain:port`: a `CONNECT` target tunnelled as is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelRule {
    /// Lowercase; for a wildcard, the suffix after `*.`.
    pub host: String,
    pub wildcard: bool,
    pub port: u16,
}

// === impl Intercept ===

impl Intercept {
    /// No interception listener: what tests and `for_upstream` start with.
    pub fn off() -> Self {
        Self {
            hosts: DEFAULT_INTERCEPT_HOSTS
                .iter()
                .map(|h| (*h).to_owned())
                .collect(),
            ca: None,
            ca_bundle_export: None,
            tunnel: Vec::new(),
            leaf_lifetime: DEFAULT_LEAF_LIFETIME,
        }
    }
}

// === impl TunnelRule ===

impl TunnelRule {
    /// Whether `host:port` (host already lowercase) is this rule's target.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        port == self.port
            && if self.wildcard {
                host.strip_suffix(self.host.as_str())
                    .is_some_and(|head| head.len() > 1 && head.ends_with('.'))
            } else {
                host == self.host
            }
    }
}

/// A caller with no OAuth code of its own: a static key bound to one grant.
#[derive(Clone, Debug)]
pub struct Caller {
    pub name: String,
    pub key: Secret,
    pub grant: GrantKey,
    /// Its share of a rate-limit budget against others waiting for it.
    pub weight: u32,
}

// === impl Config ===

impl Config {
    /// A minimal valid configuration pointing at one Zoom base for both hosts
    /// (the simulator serves both); used by tests and `demo`.
    pub fn for_upstream(zoom_base: http::Uri, apps: Vec<App>) -> Self {
        Self {
            listen: Listen {
                proxy: SocketAddr::from(([127, 0, 0, 1], 0)),
                admin: SocketAddr::from(([127, 0, 0, 1], 0)),
                public_url: "http://127.0.0.1:0".to_owned(),
                max_connections: DEFAULT_MAX_CONNECTIONS,
                admin_max_connections: DEFAULT_ADMIN_MAX_CONNECTIONS,
                header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
                max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
                max_headers: DEFAULT_MAX_HEADERS,
                forward_proxy: None,
                tls: None,
            },
            zoom: Zoom {
                api_url: zoom_base.clone(),
                oauth_url: zoom_base,
                ca_file: None,
                connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                response_timeout: DEFAULT_RESPONSE_TIMEOUT,
                dns_servers: Vec::new(),
            },
            apps,
            store: Store {
                backend: StoreBackend::Memory,
                key: KeySource::Generated,
            },
            refresh: Refresh {
                ahead: DEFAULT_REFRESH_AHEAD,
                keepalive: DEFAULT_KEEPALIVE,
                backoff_min: DEFAULT_BACKOFF_MIN,
                backoff_max: DEFAULT_BACKOFF_MAX,
            },
            proxy: Proxy {
                replay_body_limit: DEFAULT_REPLAY_BODY_LIMIT,
                passthrough: false,
                shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
                upload_stall_timeout: DEFAULT_UPLOAD_STALL_TIMEOUT,
                keep_forwarding_headers: Vec::new(),
            },
            callers: Vec::new(),
            intercept: Intercept::off(),
            rate_limit: RateLimit::off(),
            log: Log::default(),
            webhooks: Webhooks::default(),
        }
    }

    /// Whether a listener answers as Zoom's hosts.
    pub fn intercepts(&self) -> bool {
        self.listen.forward_proxy.is_some() || self.listen.tls.is_some()
    }

    pub fn app(&self, client_id: &str) -> Option<&App> {
        self.apps.iter().find(|a| a.client_id == client_id)
    }

    /// Parses and validates a config file's text. Pure: secrets, files and the
    /// base folder for relative paths come from `env`.
    pub fn from_toml_str(text: &str, env: &dyn Env) -> Result<Config, ConfigError> {
        let file: file::FileConfig =
            toml::from_str(text).map_err(|e| ConfigError::from_toml(text, &e))?;
        validate::config(file, env)
    }

    /// Reads and validates the config file at `path`, against the process
    /// environment, with relative paths resolved against the file's folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&text, &ProcessEnv::for_config_file(path))
    }
}
