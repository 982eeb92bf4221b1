//! The state one simulator instance shares between its connections and its handle.
//!
//! Each part sits behind its own std `Mutex`: every critical section is a few map
//! operations with no `.await` inside, so a blocking lock is cheaper than a tokio one
//! (the mini-redis `db.rs` argument), and separate locks keep the REST routes from
//! queueing behind the token endpoint.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use subtle::ConstantTimeEq;

use super::codes::{Challenge, CodeGrant, Codes};
use super::config::{Faults, RateLimits, SimApp, SimConfig};
use super::directory::Directory;
use super::echo::RecordedRequest;
use super::grants::Grants;
use super::ratelimit::Limiter;
use super::stats::Counters;
use super::webhooks::Target;
use crate::clock::Clock;

/// Fixed at start.
pub(crate) struct Shared {
    pub clock: Clock,
    pub apps: Vec<SimApp>,
    pub account_id: String,
    pub default_user: String,
    pub refresh_token_ttl: Duration,
    pub code_ttl: Duration,
    pub allow_query_params: bool,
    pub check_tokens: bool,
    /// `api_url` in token answers, resolved once the listener is bound.
    pub api_url: String,
    pub grants: Mutex<Grants>,
    pub codes: Mutex<Codes>,
    pub directory: Mutex<Directory>,
    pub limiter: Mutex<Limiter>,
    pub settings: Mutex<Settings>,
    pub counters: Counters,
    pub last_request: Mutex<Option<RecordedRequest>>,
}

/// What the handle may change while the sim runs; copied out once per request.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub token_faults: Faults,
    pub api_faults: Faults,
    pub invalidate_previous_access: bool,
    pub legacy_s2s: bool,
    pub rate_limits: Option<RateLimits>,
    pub user_token_ttl: Duration,
    pub s2s_token_ttl: Duration,
    /// Where events go, set by `POST /_sim/webhooks`; none until then.
    pub webhook: Option<Target>,
}

/// Locks `m`, ignoring poison: a panicking test thread must not wedge the sim.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// === impl Shared ===

impl Shared {
    pub(crate) fn new(cfg: SimConfig, api_url: String) -> Self {
        let now = cfg.clock.now_secs();
        let settings = Settings {
            token_faults: cfg.token_faults,
            api_faults: cfg.api_faults,
            invalidate_previous_access: cfg.invalidate_previous_access,
            legacy_s2s: cfg.legacy_s2s,
            rate_limits: cfg.rate_limits,
            user_token_ttl: cfg.user_token_ttl,
            s2s_token_ttl: cfg.s2s_token_ttl,
            webhook: None,
        };
        let mut grants = Grants::new(&cfg.account_id, &cfg.default_user);
        grants.set_opaque_access(cfg.opaque_tokens);
        Self {
            grants: Mutex::new(grants),
            codes: Mutex::new(Codes::default()),
            directory: Mutex::new(Directory::new(&cfg.account_id, &cfg.default_user, now)),
            limiter: Mutex::new(Limiter::default()),
            settings: Mutex::new(settings),
            counters: Counters::default(),
            last_request: Mutex::new(None),
            clock: cfg.clock,
            apps: cfg.apps,
            account_id: cfg.account_id,
            default_user: cfg.default_user,
            refresh_token_ttl: cfg.refresh_token_ttl,
            code_ttl: cfg.code_ttl,
            allow_query_params: cfg.allow_query_params,
            check_tokens: cfg.check_tokens,
            api_url,
        }
    }

    pub(crate) fn settings(&self) -> Settings {
        lock(&self.settings).clone()
    }

    pub(crate) fn is_client(&self, client_id: &str) -> bool {
        self.apps.iter().any(|a| a.client_id == client_id)
    }

    /// The app whose credentials these are. Every app is compared in constant time,
    /// so timing tells nothing about which part was wrong.
    pub(crate) fn authenticate(&self, client_id: &str, secret: &str) -> Option<&SimApp> {
        let mut found = None;
        for app in self.apps.iter().filter(|a| !a.public) {
            let id_ok = app.client_id.as_bytes().ct_eq(client_id.as_bytes());
            let secret_ok = app.client_secret.as_bytes().ct_eq(secret.as_bytes());
            if bool::from(id_ok & secret_ok) {
                found = Some(app);
            }
        }
        found
    }

    /// Approves an authorization at once, as `/oauth/authorize` does: creates the user
    /// on first use and returns a fresh code. Callers count the request.
    pub(crate) fn issue_code(
        &self,
        client_id: &str,
        user: &str,
        redirect_uri: &str,
        challenge: Option<Challenge>,
    ) -> String {
        let now_ms = self.clock.now_ms();
        lock(&self.directory).ensure_user(user, now_ms / 1000);
        let grant = CodeGrant {
            client_id: client_id.to_owned(),
            user: user.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            challenge,
            expires_ms: now_ms.saturating_add(millis(self.code_ttl)),
        };
        lock(&self.codes).issue(grant, now_ms)
    }

    pub(crate) fn record(&self, request: RecordedRequest) {
        *lock(&self.last_request) = Some(request);
    }
}

/// A `Duration` in whole milliseconds, saturating.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
