//! The simulator's token store: which tokens are live, for which grant, until when.
//!
//! A token is live only while this store holds it; rotation, re-authorization and
//! revocation remove tokens, which is how the sim imitates Zoom invalidating them.
//! Expired tokens are purged now and then; the signature still marks them as ours,
//! so they keep answering "expired" rather than "invalid".

use std::collections::HashMap;

use super::jwt::{self, Claims, Signer};

/// Whose tokens these are. Re-authorization and legacy S2S act on one key at a time.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum GrantKey {
    User {
        client_id: String,
        user: String,
    },
    S2s {
        client_id: String,
    },
    /// The app's own tokens (`client_credentials`): no user behind them.
    App {
        client_id: String,
    },
}

impl GrantKey {
    fn client_id(&self) -> &str {
        match self {
            Self::User { client_id, .. } | Self::S2s { client_id } | Self::App { client_id } => {
                client_id
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Access,
    Refresh,
}

/// Why an access token was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AccessError {
    /// Unknown, superseded or revoked.
    Invalid,
    Expired,
}

/// A freshly issued user token pair.
pub(crate) struct Pair {
    pub access: String,
    pub refresh: String,
}

/// Lifetimes of what one issue call creates, in milliseconds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ttls {
    pub access_ms: u64,
    pub refresh_ms: u64,
}

pub(crate) struct Grants {
    signer: Signer,
    account_id: String,
    /// The account owner: S2S tokens carry this `uid`.
    owner: String,
    tokens: HashMap<String, Entry>,
    grants: HashMap<GrantKey, Grant>,
    /// Purge expired tokens when the map grows past this.
    purge_at: usize,
    /// New access tokens are random strings, not JWTs ([`super::SimConfig::opaque_tokens`]).
    /// Kept here rather than in `Settings` because minting is its only reader.
    opaque_access: bool,
}

struct Entry {
    key: GrantKey,
    kind: Kind,
    expires_ms: u64,
}

/// Identity claims shared by every token of one authorization.
struct Grant {
    auid: String,
    code: String,
    tokens: Vec<String>,
}

const MIN_PURGE_AT: usize = 1024;

// === impl Grants ===

impl Grants {
    pub(crate) fn new(account_id: &str, owner: &str) -> Self {
        Self {
            signer: Signer::new(),
            account_id: account_id.to_owned(),
            owner: owner.to_owned(),
            tokens: HashMap::new(),
            grants: HashMap::new(),
            purge_at: MIN_PURGE_AT,
            opaque_access: false,
        }
    }

    /// From now on, access tokens are opaque (`true`) or JWTs (`false`). An opaque
    /// token is known only while this store holds it: once purged it reads as
    /// invalid, not expired, since nothing in it says it was ours.
    pub(crate) fn set_opaque_access(&mut self, on: bool) {
        self.opaque_access = on;
    }

    /// A new authorization for `key`: every earlier token of that key dies first.
    pub(crate) fn authorize(&mut self, key: &GrantKey, now_ms: u64, ttl: Ttls) -> Pair {
        self.revoke_key(key);
        let access = self.mint(key, Kind::Access, now_ms, ttl.access_ms);
        let refresh = self.mint(key, Kind::Refresh, now_ms, ttl.refresh_ms);
        Pair { access, refresh }
    }

    /// Rotates a grant by its current refresh token. `None` for anything that is not
    /// the live refresh token of `client_id`'s grant.
    pub(crate) fn refresh(
        &mut self,
        client_id: &str,
        token: &str,
        now_ms: u64,
        ttl: Ttls,
        kill_access: bool,
    ) -> Option<Pair> {
        let entry = self.tokens.get(token)?;
        let key = entry.key.clone();
        let owned = matches!(&key, GrantKey::User { client_id: c, .. } if c == client_id);
        if entry.kind != Kind::Refresh || !owned {
            return None;
        }
        if now_ms >= entry.expires_ms {
            self.remove_token(token);
            return None;
        }
        self.remove_token(token);
        if kill_access {
            let access: Vec<String> = self.tokens_of(&key, Kind::Access);
            access.iter().for_each(|t| self.remove_token(t));
        }
        let access = self.mint(&key, Kind::Access, now_ms, ttl.access_ms);
        let refresh = self.mint(&key, Kind::Refresh, now_ms, ttl.refresh_ms);
        Some(Pair { access, refresh })
    }

    /// A Server-to-Server token; `exclusive` (legacy mode) kills the client's earlier ones.
    pub(crate) fn issue_s2s(
        &mut self,
        client_id: &str,
        now_ms: u64,
        ttl_ms: u64,
        exclusive: bool,
    ) -> String {
        let key = GrantKey::S2s {
            client_id: client_id.to_owned(),
        };
        if exclusive {
            self.revoke_key(&key);
        }
        self.mint(&key, Kind::Access, now_ms, ttl_ms)
    }

    /// An app-level token (`client_credentials`); earlier ones stay valid.
    pub(crate) fn issue_app(&mut self, client_id: &str, now_ms: u64, ttl_ms: u64) -> String {
        let key = GrantKey::App {
            client_id: client_id.to_owned(),
        };
        self.mint(&key, Kind::Access, now_ms, ttl_ms)
    }

    /// Revokes the grant holding `token` if it belongs to `client_id`. A user grant dies
    /// whole; an S2S token dies alone, since each one is its own authorization.
    pub(crate) fn revoke(&mut self, client_id: &str, token: &str) -> bool {
        let Some(key) = self.tokens.get(token).map(|e| e.key.clone()) else {
            return false;
        };
        match &key {
            GrantKey::User { client_id: c, .. } if c == client_id => {
                self.revoke_key(&key);
                true
            }
            GrantKey::S2s { client_id: c } | GrantKey::App { client_id: c } if c == client_id => {
                self.remove_token(token);
                true
            }
            _ => false,
        }
    }

    /// An uninstall by one user: that user's grant for `client_id` dies whole, as
    /// when one of its tokens is revoked. `false` if the pair held no tokens.
    pub(crate) fn revoke_user(&mut self, client_id: &str, user: &str) -> bool {
        let key = GrantKey::User {
            client_id: client_id.to_owned(),
            user: user.to_owned(),
        };
        self.revoke_key(&key)
    }

    /// An account-level uninstall: every grant of `client_id` dies, whoever holds
    /// it, since the sim has one account. Returns how many grants died.
    pub(crate) fn revoke_client(&mut self, client_id: &str) -> usize {
        let keys: Vec<GrantKey> = self
            .grants
            .keys()
            .filter(|k| k.client_id() == client_id)
            .cloned()
            .collect();
        keys.iter().filter(|k| self.revoke_key(k)).count()
    }

    /// The grant an access token stands for, if it is live at `now_ms`.
    pub(crate) fn check_access(&self, token: &str, now_ms: u64) -> Result<&GrantKey, AccessError> {
        match self.tokens.get(token) {
            Some(e) if e.kind == Kind::Access && now_ms < e.expires_ms => Ok(&e.key),
            Some(e) if e.kind == Kind::Access => Err(AccessError::Expired),
            Some(_) => Err(AccessError::Invalid),
            None => match self.signer.verify(token) {
                Some(c) if c.kind == jwt::TYPE_ACCESS && now_ms / 1000 >= c.exp => {
                    Err(AccessError::Expired)
                }
                _ => Err(AccessError::Invalid),
            },
        }
    }

    /// The newest live access token of a user grant.
    pub(crate) fn current_access(&self, key: &GrantKey) -> Option<String> {
        self.tokens_of(key, Kind::Access).pop()
    }

    fn tokens_of(&self, key: &GrantKey, kind: Kind) -> Vec<String> {
        let Some(grant) = self.grants.get(key) else {
            return Vec::new();
        };
        let is_kind = |t: &&String| self.tokens.get(*t).is_some_and(|e| e.kind == kind);
        grant.tokens.iter().filter(is_kind).cloned().collect()
    }

    /// Kills every token of `key`; `false` if it held none.
    fn revoke_key(&mut self, key: &GrantKey) -> bool {
        let Some(grant) = self.grants.remove(key) else {
            return false;
        };
        for token in &grant.tokens {
            self.tokens.remove(token);
        }
        !grant.tokens.is_empty()
    }

    fn remove_token(&mut self, token: &str) {
        if let Some(entry) = self.tokens.remove(token) {
            if let Some(grant) = self.grants.get_mut(&entry.key) {
                grant.tokens.retain(|t| t != token);
            }
        }
    }

    fn mint(&mut self, key: &GrantKey, kind: Kind, now_ms: u64, ttl_ms: u64) -> String {
        if self.tokens.len() >= self.purge_at {
            self.purge(now_ms);
        }
        let grant = self.grants.entry(key.clone()).or_insert_with(|| Grant {
            auid: jwt::random_id(24),
            code: jwt::random_id(24),
            tokens: Vec::new(),
        });
        let (client_id, uid) = match key {
            GrantKey::User { client_id, user } => (client_id, user),
            GrantKey::S2s { client_id } | GrantKey::App { client_id } => (client_id, &self.owner),
        };
        let expires_ms = now_ms.saturating_add(ttl_ms);
        let token = if kind == Kind::Access && self.opaque_access {
            jwt::random_id(32)
        } else {
            self.signer.sign(&Claims {
                aud: "https://oauth.zoom.us".to_owned(),
                uid: uid.clone(),
                ver: 10,
                auid: grant.auid.clone(),
                nbf: now_ms / 1000,
                code: grant.code.clone(),
                iss: format!("zm:cid:{client_id}"),
                gno: 0,
                exp: expires_ms / 1000,
                kind: match kind {
                    Kind::Access => jwt::TYPE_ACCESS,
                    Kind::Refresh => jwt::TYPE_REFRESH,
                },
                iat: now_ms / 1000,
                aid: self.account_id.clone(),
                jti: jwt::random_id(16),
            })
        };
        grant.tokens.push(token.clone());
        let entry = Entry {
            key: key.clone(),
            kind,
            expires_ms,
        };
        self.tokens.insert(token.clone(), entry);
        token
    }

    /// Drops expired tokens in one pass over each map (no per-token `retain`, which
    /// would be quadratic for a client holding many S2S tokens). Runs when the map has
    /// doubled since the last purge, so its cost is amortised.
    fn purge(&mut self, now_ms: u64) {
        self.tokens.retain(|_, e| now_ms < e.expires_ms);
        let live = &self.tokens;
        self.grants.retain(|_, g| {
            g.tokens.retain(|t| live.contains_key(t));
            !g.tokens.is_empty()
        });
        self.purge_at = (self.tokens.len() * 2).max(MIN_PURGE_AT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Ttls = Ttls {
        access_ms: 1_000,
        refresh_ms: 10_000,
    };

    fn user() -> GrantKey {
        GrantKey::User {
            client_id: "c".into(),
            user: "u".into(),
        }
    }

    #[test]
    fn purged_tokens_still_read_as_expired() {
        let mut g = Grants::new("acc", "owner");
        let pair = g.authorize(&user(), 0, TTL);
        assert_eq!(g.check_access(&pair.access, 999), Ok(&user()));
        g.purge(1_000);
        assert_eq!(
            g.check_access(&pair.access, 1_000),
            Err(AccessError::Expired)
        );
        assert_eq!(g.check_access("x.y.z", 1_000), Err(AccessError::Invalid));
        // The refresh token outlived the purge and still rotates.
        assert!(g.refresh("c", &pair.refresh, 1_000, TTL, true).is_some());
    }

    #[test]
    fn opaque_access_tokens_work_until_purged() {
        let mut g = Grants::new("acc", "owner");
        g.set_opaque_access(true);
        let pair = g.authorize(&user(), 0, TTL);
        assert!(!pair.access.contains('.'), "not a JWT: {}", pair.access);
        assert!(pair.refresh.contains('.'), "refresh tokens stay JWTs");
        assert_eq!(g.check_access(&pair.access, 999), Ok(&user()));
        assert_eq!(
            g.check_access(&pair.access, 1_000),
            Err(AccessError::Expired)
        );
        g.purge(1_000);
        assert_eq!(
            g.check_access(&pair.access, 1_000),
            Err(AccessError::Invalid)
        );
    }

    #[test]
    fn purge_keeps_live_s2s_tokens() {
        let mut g = Grants::new("acc", "owner");
        let old = g.issue_s2s("c", 0, 1_000, false);
        let live = g.issue_s2s("c", 1_000, 1_000, false);
        g.purge(1_200);
        assert_eq!(g.check_access(&old, 1_200), Err(AccessError::Expired));
        assert!(g.check_access(&live, 1_200).is_ok());
        assert!(g.revoke("c", &live));
        assert_eq!(g.check_access(&live, 1_200), Err(AccessError::Invalid));
    }

    #[test]
    fn uninstall_revokes_by_user_or_by_client() {
        let mut g = Grants::new("acc", "owner");
        let pair = g.authorize(&user(), 0, TTL);
        let s2s = g.issue_s2s("c", 0, 1_000, false);
        assert!(g.revoke_user("c", "u"));
        assert_eq!(g.check_access(&pair.access, 1), Err(AccessError::Invalid));
        assert!(g.refresh("c", &pair.refresh, 1, TTL, true).is_none());
        assert!(!g.revoke_user("c", "u"), "nothing left to revoke");
        assert!(g.check_access(&s2s, 1).is_ok());
        g.authorize(&user(), 0, TTL);
        assert_eq!(g.revoke_client("c"), 2);
        assert_eq!(g.check_access(&s2s, 1), Err(AccessError::Invalid));
    }
}
