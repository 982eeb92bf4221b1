//! What a simulator instance is told at start: apps, account, lifetimes, switches,
//! rate limits and faults.
//!
//! Defaults follow ZOOM.md §8: the strictest behaviour Zoom staff describe is on by
//! default, and every behaviour ZOOM.md marks UNCONFIRMED is a switch here.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::clock::Clock;

pub const DEFAULT_CLIENT_ID: &str = "sim-client";
pub const DEFAULT_CLIENT_SECRET: &str = "sim-secret";
pub const DEFAULT_ACCOUNT_ID: &str = "sim-account";
pub const DEFAULT_USER: &str = "sim-user";
/// Zoom reports 3599 for user tokens (ZOOM.md §1.3).
pub const DEFAULT_USER_TOKEN_TTL: Duration = Duration::from_secs(3599);
pub const DEFAULT_S2S_TOKEN_TTL: Duration = Duration::from_secs(3600);
/// "~90 days is common" (ZOOM.md §2); the real value is UNCONFIRMED.
pub const DEFAULT_REFRESH_TOKEN_TTL: Duration = Duration::from_secs(90 * 24 * 3600);
pub const DEFAULT_CODE_TTL: Duration = Duration::from_secs(5 * 60);
/// Zoom's per-user daily cap on meeting creates and updates, on every plan (ZOOM.md §5).
pub const DEFAULT_MEETING_WRITES_PER_USER: u32 = 100;

/// Everything a simulator needs to start. See the field docs for the defaults.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Default `127.0.0.1:0` (an ephemeral port, for tests).
    pub listen: SocketAddr,
    pub apps: Vec<SimApp>,
    /// The one account every user belongs to, and the S2S account.
    pub account_id: String,
    /// The account owner: `/oauth/authorize` approves as this user without `login_hint`,
    /// and S2S tokens act as this user.
    pub default_user: String,
    pub user_token_ttl: Duration,
    pub s2s_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub code_ttl: Duration,
    /// A refresh kills the previous access token at once (UNCONFIRMED for Zoom; on by default).
    pub invalidate_previous_access: bool,
    /// Pre-June-2023 S2S: a new token kills the previous one for that (client, account).
    pub legacy_s2s: bool,
    /// Token-endpoint params may come in the query string (recent Zoom refuses this sometimes).
    pub allow_query_params: bool,
    /// Zoom's rate limits, enforced on `/v2/*`; `None` (the default) enforces none
    /// and sends no `X-RateLimit-*` headers.
    pub rate_limits: Option<RateLimits>,
    /// Applied to `/oauth/token` and `/oauth/revoke`.
    pub token_faults: Faults,
    /// Applied to `/v2/*`.
    pub api_faults: Faults,
    /// `Some(path)`: serve HTTPS with a freshly generated CA, whose PEM is written to `path`.
    pub tls: Option<PathBuf>,
    /// With `tls`: offer only `http/1.1` by ALPN, as an origin without HTTP/2 would.
    pub tls_http1_only: bool,
    /// `api_url` in token answers; `None` means the sim's own base URL.
    pub api_url: Option<String>,
    /// `false` skips token checks on API routes (benchmark mode): every call acts as
    /// the default user.
    pub check_tokens: bool,
    /// Access tokens are opaque random strings instead of JWTs, so a client cannot
    /// read `uid` from them (refresh tokens stay JWTs). The sim still knows them.
    pub opaque_tokens: bool,
    /// Every expiry decision reads this clock, so tests advance it instead of sleeping.
    pub clock: Clock,
}

/// An OAuth app registered with the simulator.
#[derive(Clone, PartialEq, Eq)]
pub struct SimApp {
    pub client_id: String,
    /// Empty for a public client.
    pub client_secret: String,
    /// A public client (Zoom's public client IDs for PKCE, ZOOM.md §1.2): it
    /// sends its `client_id` in the form with no secret and no `Authorization`,
    /// and its code exchanges must carry a PKCE verifier.
    pub public: bool,
}

/// Failure injection for one side of the simulator.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Slept (in real time) before handling: the request has not reached Zoom yet.
    pub latency: Duration,
    /// Slept (in real time) after handling, before the answer leaves: Zoom has already
    /// acted (a token rotated, a code redeemed) when a client that gives up sooner
    /// hangs up. Not applied to injected resets.
    pub answer_delay: Duration,
    /// Fraction of requests answered 503 with a Zoom-ish JSON body, `0..=1`.
    pub error_rate: f64,
    /// Fraction of requests whose connection is dropped with no answer, `0..=1`.
    pub reset_rate: f64,
}

/// Zoom's rate limits for every account of the simulator (ZOOM.md §5).
///
/// [`Default`] is the Pro plan: Light 30/s, Medium 20/s, Heavy 10/s,
/// Resource-intensive 10/min, no daily limits per category, and 100 meeting
/// creates and updates per user per day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimits {
    pub light_per_second: u32,
    pub medium_per_second: u32,
    pub heavy_per_second: u32,
    /// Per minute, not per second: Zoom's unit for this category.
    pub resource_intensive_per_minute: u32,
    /// Per account and UTC day (reset at 00:00 UTC by the sim's clock).
    pub daily: DailyLimits,
    /// Meeting creates (`POST /v2/users/{id}/meetings`) and updates (`PATCH
    /// /v2/meetings/{id}`) per user per UTC day; an update counts against the
    /// meeting's host. `None`: no cap.
    pub meeting_writes_per_user_per_day: Option<u32>,
}

/// Daily limits per account, each off (`None`) unless set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DailyLimits {
    pub light: Option<u32>,
    pub medium: Option<u32>,
    pub heavy: Option<u32>,
    pub resource_intensive: Option<u32>,
    /// Heavy and Resource-intensive calls together (Pro 30,000, Business+ 60,000).
    pub heavy_and_resource_intensive: Option<u32>,
}

// === impl SimConfig ===

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            apps: vec![SimApp::default()],
            account_id: DEFAULT_ACCOUNT_ID.to_owned(),
            default_user: DEFAULT_USER.to_owned(),
            user_token_ttl: DEFAULT_USER_TOKEN_TTL,
            s2s_token_ttl: DEFAULT_S2S_TOKEN_TTL,
            refresh_token_ttl: DEFAULT_REFRESH_TOKEN_TTL,
            code_ttl: DEFAULT_CODE_TTL,
            invalidate_previous_access: true,
            legacy_s2s: false,
            allow_query_params: true,
            rate_limits: None,
            token_faults: Faults::default(),
            api_faults: Faults::default(),
            tls: None,
            tls_http1_only: false,
            api_url: None,
            check_tokens: true,
            opaque_tokens: false,
            clock: Clock::new(),
        }
    }
}

// === impl RateLimits ===

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            light_per_second: 30,
            medium_per_second: 20,
            heavy_per_second: 10,
            resource_intensive_per_minute: 10,
            daily: DailyLimits::default(),
            meeting_writes_per_user_per_day: Some(DEFAULT_MEETING_WRITES_PER_USER),
        }
    }
}

impl RateLimits {
    /// Zoom's Free plan: small per-second limits and a daily limit on every category.
    pub fn free() -> Self {
        Self {
            light_per_second: 4,
            medium_per_second: 2,
            heavy_per_second: 1,
            resource_intensive_per_minute: 10,
            daily: DailyLimits {
                light: Some(6000),
                medium: Some(2000),
                heavy: Some(1000),
                resource_intensive: Some(30_000),
                heavy_and_resource_intensive: None,
            },
            ..Self::default()
        }
    }
}

// === impl SimApp ===

impl Default for SimApp {
    fn default() -> Self {
        Self {
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            client_secret: DEFAULT_CLIENT_SECRET.to_owned(),
            public: false,
        }
    }
}

impl std::fmt::Debug for SimApp {
    // The secret is a sim value, but keep the habit: secrets never reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimApp")
            .field("client_id", &self.client_id)
            .field("client_secret", &"...")
            .field("public", &self.public)
            .finish()
    }
}

// === impl Faults ===

impl Faults {
    /// True for a request picked by `rate`; only fractions strictly inside (0, 1) use
    /// randomness, so 0 and 1 stay deterministic for tests.
    pub(crate) fn roll(rate: f64) -> bool {
        if rate <= 0.0 {
            false
        } else if rate >= 1.0 {
            true
        } else {
            rand::random::<f64>() < rate
        }
    }
}
