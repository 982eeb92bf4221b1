//! The binding indexes: which bindings of a grant are live (read on every
//! virtual-token request), and which grant adopted each legacy refresh token.
//!
//! Both are derived from the grant record and rebuilt by the grant's install
//! step, whoever made the record (a refresh here, an adoption, another
//! replica's write read back): one index per fact, one place that keeps it.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use std::sync::atomic::Ordering;

use dashmap::DashMap;

use super::handle::GrantHandle;
use super::model::{Binding, Grant};
use super::refresher::Flight;
use super::GrantKey;
use crate::store::StoreError;

/// Ids of a grant's unrevoked bindings. Most grants have none (static callers)
/// or a few, so the empty set is shared.
pub(super) fn live_set(record: &Grant) -> Arc<HashSet<String>> {
    static NONE: LazyLock<Arc<HashSet<String>>> = LazyLock::new(Arc::default);
    let set: HashSet<String> = record.live_bindings().map(|b| b.id.clone()).collect();
    if set.is_empty() {
        NONE.clone()
    } else {
        Arc::new(set)
    }
}

/// Hex SHA-256 of a legacy caller's real refresh token → the grant and binding
/// that adopted it. `DashMap`: grants install concurrently, lookups are one shard.
#[derive(Debug, Default)]
pub struct LegacyIndex {
    by_hash: DashMap<String, (GrantKey, String)>,
}

// === impl LegacyIndex ===

impl LegacyIndex {
    /// Indexes the live adopted bindings of `record`, and forgets its revoked ones.
    /// A pending grant's binding is not a caller's until the user's grant has it.
    pub(super) fn install(&self, record: &Grant) {
        if matches!(record.key.subject, super::Subject::Pending(_)) {
            return;
        }
        for binding in &record.bindings {
            let Some(hash) = &binding.adopted_from else {
                continue;
            };
            if binding.revoked {
                self.by_hash
                    .remove_if(hash, |_, (key, id)| key == &record.key && id == &binding.id);
            } else {
                self.by_hash
                    .insert(hash.clone(), (record.key.clone(), binding.id.clone()));
            }
        }
    }

    /// The grant and binding that adopted the legacy token hashed `hash`.
    pub fn find(&self, hash: &str) -> Option<(GrantKey, String)> {
        self.by_hash.get(hash).map(|entry| entry.value().clone())
    }
}

/// Bindings of both records: those another replica added while we were busy
/// survive, and a revocation on either side stands.
pub(super) fn merge(theirs: &Grant, ours: &Grant) -> Vec<Binding> {
    let mut merged = theirs.bindings.clone();
    for b in &ours.bindings {
        match merged.iter_mut().find(|m| m.id == b.id) {
            Some(m) => m.revoked |= b.revoked,
            None => merged.push(b.clone()),
        }
    }
    merged
}

// === impl GrantHandle ===

impl GrantHandle {
    /// Adds a caller binding and persists it before returning.
    pub async fn add_binding(self: &Arc<Self>, binding: Binding) -> Result<(), StoreError> {
        let mut flight = self.flight.lock().await;
        self.update(&mut flight, |g| {
            (!g.live_bindings().any(|b| b.id == binding.id))
                .then(|| g.with_binding(binding.clone()))
        })
        .await
    }

    /// Revokes a binding; returns how many live bindings remain.
    pub async fn revoke_binding(self: &Arc<Self>, id: &str) -> Result<usize, StoreError> {
        let mut flight = self.flight.lock().await;
        self.update(&mut flight, |g| Some(g.with_revoked(id)))
            .await?;
        Ok(flight.record.live_bindings().count())
    }

    /// Writes `change` of the record (bindings only; tokens stay as they are).
    /// On a version conflict another replica wrote first: re-read and re-apply.
    async fn update(
        &self,
        flight: &mut Flight,
        change: impl Fn(&Grant) -> Option<Grant>,
    ) -> Result<(), StoreError> {
        let mut tries = 0;
        loop {
            let Some(next) = change(&flight.record) else {
                return Ok(());
            };
            match self.ctx.store.save(&next).await {
                Ok(()) => {
                    self.replace_record(flight, next);
                    // The write carried the tokens too: nothing is held in memory now.
                    self.unpersisted.store(false, Ordering::Release);
                    self.announce().await;
                    return Ok(());
                }
                Err(StoreError::Conflict { .. }) if tries < 3 => {
                    tries += 1;
                    self.reread(flight).await;
                }
                Err(error) => return Err(error),
            }
        }
    }
}
