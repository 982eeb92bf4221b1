//! The published view of a grant: what the request path reads with one atomic load.

use std::sync::Arc;

use http::HeaderValue;

use crate::clock::UnixMillis;

/// One immutable snapshot of a grant's usable token, replaced wholesale on
/// every rotation (`ArcSwap<Current>`), so a reader never sees a token paired
/// with another token's expiry.
#[derive(Clone)]
pub struct Current {
    pub version: u64,
    /// `Bearer <real access token>`, marked sensitive; `None` before the first mint.
    pub bearer: Option<HeaderValue>,
    pub expires_at_ms: UnixMillis,
    pub issued_at_ms: UnixMillis,
    /// Zoom's `scope` for this token, returned in callers' token answers.
    pub scope: Arc<str>,
    /// `Some(reason)` once Zoom has refused the refresh token.
    pub dead: Option<String>,
    /// The Zoom account whose rate-limit budgets this grant's calls draw on
    /// ([`super::Grant::rate_account`]); `None`: budget per user instead. In
    /// the snapshot so that the request path reads it from the token it has
    /// already loaded, and a newly learned account is published with the
    /// record that learned it.
    pub rate_account: Option<Arc<str>>,
}

/// Where a snapshot stands relative to now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    /// Usable, but within `refresh.ahead` of expiry: refresh in the background.
    Stale,
    /// Unusable: past expiry, or never minted.
    Expired,
    Dead,
}

// === impl Current ===

impl Current {
    pub fn freshness(&self, now_ms: UnixMillis, ahead_ms: u64) -> Freshness {
        if self.dead.is_some() {
            Freshness::Dead
        } else if self.bearer.is_none() || now_ms >= self.expires_at_ms {
            Freshness::Expired
        } else if now_ms + self.ahead_ms(ahead_ms) >= self.expires_at_ms {
            Freshness::Stale
        } else {
            Freshness::Fresh
        }
    }
}

impl Current {
    /// Do both snapshots carry the same token? Versions also move when bindings
    /// change, so "has the token rotated" compares the token itself.
    pub fn same_token(&self, other: &Current) -> bool {
        self.bearer == other.bearer && self.expires_at_ms == other.expires_at_ms
    }

    /// How long before expiry to refresh: `refresh.ahead`, but never more than 30%
    /// of the token's lifetime (linkerd refreshes certificates at 70%), so a short
    /// lifetime does not make every fresh token look stale.
    fn ahead_ms(&self, configured_ms: u64) -> u64 {
        let lifetime = self.expires_at_ms.saturating_sub(self.issued_at_ms);
        configured_ms.min(lifetime * 3 / 10)
    }
}

impl std::fmt::Debug for Current {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Current")
            .field("version", &self.version)
            .field("bearer", &self.bearer.as_ref().map(|_| "..."))
            .field("expires_at_ms", &self.expires_at_ms)
            .field("dead", &self.dead)
            .field("rate_account", &self.rate_account)
            .finish()
    }
}
