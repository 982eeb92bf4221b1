//! The grant record: what is persisted for one real Zoom credential.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{AccessToken, GrantKey, Subject};
use crate::clock::UnixMillis;
use crate::secret::Secret;

/// The real Zoom credential for one `(client_id, subject)`.
///
/// `Debug` is safe: every token is a [`Secret`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Grant {
    pub key: GrantKey,
    /// Empty until the first token arrives (an S2S grant before its first mint).
    pub access_token: AccessToken,
    pub expires_at_ms: UnixMillis,
    /// User grants only; Server-to-Server grants are minted again instead.
    pub refresh_token: Option<Secret>,
    /// Shared with the published snapshot (token answers quote it).
    pub scope: Arc<str>,
    /// Zoom's `api_url` for this grant, kept for `/grants`; requests always go to `zoom.api_url`.
    pub api_url: String,
    pub refreshed_at_ms: UnixMillis,
    /// Bumped on every change; the store fences writes on it.
    pub version: u64,
    pub state: GrantState,
    /// Callers' handles on this grant. Kept in the grant's record so that one
    /// versioned write covers tokens and bindings alike.
    #[serde(default)]
    pub bindings: Vec<Binding>,
    /// The Zoom account of a user grant's user, learned by the identity lookup
    /// that adopts tokens into it (`account_id` of `GET /v2/users/me`, or the
    /// `aid` claim of Zoom's JWT). Zoom applies rate limits per account, so this
    /// picks the budget the grant's calls draw on. `None` until learned, and for
    /// other subjects: a Server-to-Server grant's account is its subject (see
    /// [`Grant::rate_account`]). Defaulted so records stored before it load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
}

/// One caller's handle on a grant: the virtual tokens it holds name this id.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Binding {
    pub id: String,
    pub label: String,
    pub created_at_ms: UnixMillis,
    pub revoked: bool,
    /// Hex SHA-256 of the real refresh token a legacy caller presented, so that
    /// presenting it again finds this binding instead of failing at Zoom.
    #[serde(default)]
    pub adopted_from: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum GrantState {
    Live,
    /// Zoom refused the refresh token (`invalid_grant`): only a new authorization revives it.
    Dead {
        reason: String,
    },
    /// The user or admin uninstalled the app (Zoom's `app_deauthorized`): the
    /// tokens are wiped from the record and every binding is revoked. Like
    /// `Dead`, only a new authorization revives it.
    Deauthorized {
        at_ms: UnixMillis,
        /// Its `grant.deauthorized` event is not queued yet: written `true`
        /// with the wipe and cleared by the write after the event is queued,
        /// so that Zoom's retry raises an event a crash in between lost (see
        /// `grants::deauth`). Absent, so `false`, in a record written before
        /// it existed: nothing says its event was lost, and each duplicate
        /// delivery of its uninstall would raise it again.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        event_owed: bool,
    },
    /// A pending grant (`Subject::Pending`) whose tokens now belong to `into`:
    /// the durable record that this code or legacy token has been adopted, which
    /// every replica reads under the pending key's lock.
    Adopted {
        into: GrantKey,
    },
}

/// Tokens Zoom just issued, in the grant's own terms (no wire format).
/// `Debug` is safe: every token is a [`Secret`].
#[derive(Clone, Debug, PartialEq)]
pub struct Issued {
    pub access_token: Secret,
    /// `None` for Server-to-Server tokens.
    pub refresh_token: Option<Secret>,
    pub expires_in_secs: u64,
    pub scope: Option<String>,
    pub api_url: Option<String>,
}

// === impl Grant ===

impl Grant {
    /// A grant that has never held a token: an S2S grant waiting for its first mint.
    pub fn empty(key: GrantKey) -> Self {
        Self {
            key,
            access_token: AccessToken::default(),
            expires_at_ms: 0,
            refresh_token: None,
            scope: Arc::from(""),
            api_url: String::new(),
            refreshed_at_ms: 0,
            version: 0,
            state: GrantState::Live,
            bindings: Vec::new(),
            account_id: None,
        }
    }

    /// The next version of this grant, holding the tokens Zoom just issued.
    pub fn rotated(&self, tokens: &Issued, now_ms: UnixMillis) -> Self {
        Self {
            key: self.key.clone(),
            access_token: AccessToken::new(tokens.access_token.expose()),
            expires_at_ms: now_ms + tokens.expires_in_secs.saturating_mul(1000),
            // S2S answers carry no refresh token; a user answer always does.
            refresh_token: tokens
                .refresh_token
                .clone()
                .or_else(|| self.refresh_token.clone()),
            scope: tokens
                .scope
                .as_deref()
                .map_or_else(|| self.scope.clone(), Arc::from),
            api_url: tokens
                .api_url
                .clone()
                .unwrap_or_else(|| self.api_url.clone()),
            refreshed_at_ms: now_ms,
            version: self.version + 1,
            state: GrantState::Live,
            bindings: self.bindings.clone(),
            // Tokens rotate; whose they are does not.
            account_id: self.account_id.clone(),
        }
    }

    /// The next version of this grant, marked dead.
    pub fn killed(&self, reason: impl Into<String>) -> Self {
        Self {
            state: GrantState::Dead {
                reason: reason.into(),
            },
            version: self.version + 1,
            ..self.clone()
        }
    }

    /// The next version of this grant after Zoom's `app_deauthorized`: no
    /// token kept, every binding revoked. Who it was (key, account) stays, so
    /// `/grants` can say when, and a new authorization finds the record.
    pub fn deauthorized(&self, at_ms: UnixMillis) -> Self {
        let mut next = Self {
            access_token: AccessToken::default(),
            expires_at_ms: 0,
            refresh_token: None,
            scope: Arc::from(""),
            state: GrantState::Deauthorized {
                at_ms,
                event_owed: true,
            },
            version: self.version + 1,
            ..self.clone()
        };
        for binding in &mut next.bindings {
            binding.revoked = true;
        }
        next
    }

    /// The next version of this deauthorized grant, its `grant.deauthorized`
    /// event queued.
    pub fn event_raised(&self) -> Self {
        let mut next = self.bumped();
        if let GrantState::Deauthorized { event_owed, .. } = &mut next.state {
            *event_owed = false;
        }
        next
    }

    /// The next version of this pending grant: its tokens moved to `into`, so
    /// none is kept here.
    pub fn moved_into(&self, into: GrantKey) -> Self {
        Self {
            access_token: AccessToken::default(),
            refresh_token: None,
            state: GrantState::Adopted { into },
            version: self.version + 1,
            ..self.clone()
        }
    }

    /// The tokens this record holds as Zoom issued them, and when (a pending
    /// grant's, whose adoption is finished from them). `None` if it holds none.
    pub fn issued(&self) -> Option<(Issued, UnixMillis)> {
        if self.access_token.is_empty() || self.state != GrantState::Live {
            return None;
        }
        let issued = Issued {
            access_token: Secret::new(self.access_token.expose()),
            refresh_token: self.refresh_token.clone(),
            expires_in_secs: self.expires_at_ms.saturating_sub(self.refreshed_at_ms) / 1000,
            scope: Some(self.scope.to_string()),
            api_url: Some(self.api_url.clone()).filter(|u| !u.is_empty()),
        };
        Some((issued, self.refreshed_at_ms))
    }

    /// The next version of this grant, otherwise unchanged.
    pub fn bumped(&self) -> Self {
        Self {
            version: self.version + 1,
            ..self.clone()
        }
    }

    /// The next version of this grant, with `binding` added.
    pub fn with_binding(&self, binding: Binding) -> Self {
        let mut next = self.clone();
        next.version += 1;
        next.bindings.push(binding);
        next
    }

    /// The next version of this grant, with binding `id` revoked.
    pub fn with_revoked(&self, id: &str) -> Self {
        let mut next = self.clone();
        next.version += 1;
        for b in next.bindings.iter_mut().filter(|b| b.id == id) {
            b.revoked = true;
        }
        next
    }

    pub fn live_bindings(&self) -> impl Iterator<Item = &Binding> {
        self.bindings.iter().filter(|b| !b.revoked)
    }

    /// Dead or deauthorized: no token until a new authorization.
    pub fn is_dead(&self) -> bool {
        matches!(
            self.state,
            GrantState::Dead { .. } | GrantState::Deauthorized { .. }
        )
    }

    /// When Zoom told us the app was uninstalled for this grant, if it did.
    pub fn deauthorized_at(&self) -> Option<UnixMillis> {
        match self.state {
            GrantState::Deauthorized { at_ms, .. } => Some(at_ms),
            _ => None,
        }
    }

    /// Whether this wiped grant's `grant.deauthorized` event is still to be
    /// raised: the process that wiped it died before queueing it.
    pub fn owes_event(&self) -> bool {
        matches!(
            self.state,
            GrantState::Deauthorized {
                event_owed: true,
                ..
            }
        )
    }

    /// The Zoom account whose rate-limit budgets this grant's calls draw on:
    /// a Server-to-Server grant's own account, a user grant's account once
    /// learned. `None` otherwise (the app's own token, a pending grant, a user
    /// whose account is not known yet): the limiter then budgets per user.
    pub fn rate_account(&self) -> Option<&str> {
        match &self.key.subject {
            Subject::Account(id) => Some(id),
            Subject::User(_) => self.account_id.as_deref(),
            Subject::Pending(_) | Subject::App => None,
        }
    }

    /// The grant a pending grant's tokens were adopted into, if they were.
    pub fn adopted_into(&self) -> Option<&GrantKey> {
        match &self.state {
            GrantState::Adopted { into } => Some(into),
            _ => None,
        }
    }
}
