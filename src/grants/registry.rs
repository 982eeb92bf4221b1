//! Every grant this process knows, by key.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;

use super::handle::{GrantHandle, RefreshCtx};
use super::model::{Binding, Grant};
use super::GrantKey;
use crate::oauth::TokenResponse;
use crate::store::StoreError;

/// Grants by key. `DashMap` because adoption (new grants) and lookups happen
/// concurrently per key; the hot path is a read of one shard.
#[derive(Debug)]
pub struct Registry {
    grants: DashMap<GrantKey, Arc<GrantHandle>>,
    /// Hash of a legacy caller's real refresh token → the grant that adopted it.
    adopted: DashMap<String, GrantKey>,
    ctx: Arc<RefreshCtx>,
}

// === impl Registry ===

impl Registry {
    /// Loads every stored grant.
    pub async fn load(ctx: Arc<RefreshCtx>) -> Result<Arc<Self>, StoreError> {
        let grants = DashMap::new();
        let adopted = DashMap::new();
        for grant in ctx.store.load_all().await? {
            for hash in grant.live_bindings().filter_map(|b| b.adopted_from.clone()) {
                adopted.insert(hash, grant.key.clone());
            }
            grants.insert(grant.key.clone(), GrantHandle::new(grant, ctx.clone()));
        }
        tracing::info!(grants = grants.len(), "grants loaded");
        Ok(Arc::new(Self {
            grants,
            adopted,
            ctx,
        }))
    }

    pub fn ctx(&self) -> &Arc<RefreshCtx> {
        &self.ctx
    }

    pub fn get(&self, key: &GrantKey) -> Option<Arc<GrantHandle>> {
        self.grants.get(key).map(|g| g.clone())
    }

    /// The grant with this id (`GrantKey::id`), as virtual tokens name it.
    pub fn get_by_id(&self, id: &str) -> Option<Arc<GrantHandle>> {
        let (client_id, subject) = id.split_once('/')?;
        let key = GrantKey::new(client_id, subject.parse().ok()?);
        self.get(&key)
    }

    /// The grant and binding that adopted the legacy refresh token hashed `hash`.
    pub fn find_adopted(&self, hash: &str) -> Option<(Arc<GrantHandle>, String)> {
        let key = self.adopted.get(hash)?.clone();
        let grant = self.get(&key)?;
        let binding = grant.binding_adopted_from(hash)?;
        Some((grant, binding))
    }

    /// Adds a binding to `grant`, indexing it if it was adopted from a legacy token.
    pub async fn bind(&self, grant: &Arc<GrantHandle>, binding: Binding) -> Result<(), StoreError> {
        let hash = binding.adopted_from.clone();
        grant.add_binding(binding).await?;
        if let Some(hash) = hash {
            self.adopted.insert(hash, grant.key().clone());
        }
        Ok(())
    }

    /// The grant for `key`, created empty if absent (an S2S grant minted on first use).
    pub fn ensure(&self, key: &GrantKey) -> Arc<GrantHandle> {
        if let Some(found) = self.get(key) {
            return found;
        }
        self.grants
            .entry(key.clone())
            .or_insert_with(|| GrantHandle::new(Grant::empty(key.clone()), self.ctx.clone()))
            .clone()
    }

    /// Installs tokens a caller just obtained from Zoom for `key`, replacing any
    /// earlier ones (Zoom revoked those when it issued these).
    pub async fn adopt(&self, key: &GrantKey, tokens: &TokenResponse) -> Arc<GrantHandle> {
        let handle = self.ensure(key);
        handle.adopt(tokens).await;
        handle
    }

    pub fn all(&self) -> Vec<Arc<GrantHandle>> {
        self.grants.iter().map(|g| g.value().clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.grants.len()
    }

    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }

    /// Refreshes user grants nobody has used for `refresh.keepalive`, so that
    /// their refresh tokens never lapse at Zoom. Runs until shutdown.
    pub async fn keepalive_loop(self: Arc<Self>) {
        let mut shutdown = self.ctx.shutdown.clone();
        // Ten sweeps per keep-alive period, at most hourly, at least each minute.
        let every = (self.ctx.refresh.keepalive / 10)
            .clamp(Duration::from_secs(60), Duration::from_secs(3600));
        loop {
            tokio::select! {
                _ = self.ctx.clock.sleep(every) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            let now = self.ctx.clock.now_ms();
            for grant in self.all() {
                if grant.keepalive_due(now) {
                    tracing::info!(grant = %grant.id(), "keep-alive refresh");
                    let _ = grant.force_refresh().await;
                }
            }
        }
    }
}
