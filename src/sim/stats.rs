//! Request counters, served at `GET /_sim/stats` and by [`super::SimHandle::stats`].

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::ratelimit::{Category, Kind};

/// A snapshot of the counters. Injected faults are counted like any other request.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SimStats {
    /// Every `/oauth/token` request by `grant_type`, successful or not.
    pub token_requests: TokenRequests,
    /// Non-200 answers from `/oauth/token` (a dropped connection is no answer).
    pub token_errors: u64,
    /// `/oauth/token` answers with `"error": "invalid_grant"` (a refresh token Zoom no
    /// longer takes, or a wrong PKCE verifier); also counted in `token_errors`.
    #[serde(default)]
    pub invalid_grant: u64,
    /// Every `/v2/*` request.
    pub api_requests: u64,
    pub api_401: u64,
    /// Every 429 the rate limits answered: the sum of the three below.
    pub api_429: u64,
    /// 429s of a per-second (or, for Resource-intensive, per-minute) limit.
    #[serde(default)]
    pub api_429_qps: u64,
    /// 429s of an account's daily limit.
    #[serde(default)]
    pub api_429_daily: u64,
    /// 429s of a user's daily meeting create/update cap.
    #[serde(default)]
    pub api_429_user: u64,
    /// `/v2/*` requests that passed the token check and the rate limits (if on)
    /// and reached their route, whatever it answered, by the route's rate-limit
    /// category: the calls Zoom served. Refused and faulted requests are not here.
    #[serde(default)]
    pub api_served: CategoryCounts,
    pub revoke_requests: u64,
    /// `GET /oauth/authorize` requests plus [`super::SimHandle::issue_code`] calls.
    pub authorize_requests: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct TokenRequests {
    pub authorization_code: u64,
    pub refresh_token: u64,
    pub account_credentials: u64,
    #[serde(default)]
    pub client_credentials: u64,
}

/// A count per rate-limit category.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct CategoryCounts {
    pub light: u64,
    pub medium: u64,
    pub heavy: u64,
    pub resource_intensive: u64,
}

/// The live counters. Atomics, because every request bumps one and none reads them
/// together with anything else.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub authorization_code: AtomicU64,
    pub refresh_token: AtomicU64,
    pub account_credentials: AtomicU64,
    pub client_credentials: AtomicU64,
    pub token_errors: AtomicU64,
    pub invalid_grant: AtomicU64,
    pub api_requests: AtomicU64,
    pub api_401: AtomicU64,
    pub api_429: AtomicU64,
    pub api_429_qps: AtomicU64,
    pub api_429_daily: AtomicU64,
    pub api_429_user: AtomicU64,
    pub served_light: AtomicU64,
    pub served_medium: AtomicU64,
    pub served_heavy: AtomicU64,
    pub served_resource_intensive: AtomicU64,
    pub revoke_requests: AtomicU64,
    pub authorize_requests: AtomicU64,
}

// === impl Counters ===

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request the rate limits refused, in the total and by kind.
    pub(crate) fn refused(&self, kind: Kind) {
        Self::bump(&self.api_429);
        Self::bump(match kind {
            Kind::Rate => &self.api_429_qps,
            Kind::Daily => &self.api_429_daily,
            Kind::User => &self.api_429_user,
        });
    }

    /// Counts a request that reached its route.
    pub(crate) fn served(&self, category: Category) {
        Self::bump(match category {
            Category::Light => &self.served_light,
            Category::Medium => &self.served_medium,
            Category::Heavy => &self.served_heavy,
            Category::ResourceIntensive => &self.served_resource_intensive,
        });
    }

    pub(crate) fn snapshot(&self) -> SimStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SimStats {
            token_requests: TokenRequests {
                authorization_code: get(&self.authorization_code),
                refresh_token: get(&self.refresh_token),
                account_credentials: get(&self.account_credentials),
                client_credentials: get(&self.client_credentials),
            },
            token_errors: get(&self.token_errors),
            invalid_grant: get(&self.invalid_grant),
            api_requests: get(&self.api_requests),
            api_401: get(&self.api_401),
            api_429: get(&self.api_429),
            api_429_qps: get(&self.api_429_qps),
            api_429_daily: get(&self.api_429_daily),
            api_429_user: get(&self.api_429_user),
            api_served: CategoryCounts {
                light: get(&self.served_light),
                medium: get(&self.served_medium),
                heavy: get(&self.served_heavy),
                resource_intensive: get(&self.served_resource_intensive),
            },
            revoke_requests: get(&self.revoke_requests),
            authorize_requests: get(&self.authorize_requests),
        }
    }
}
