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
    /// Keyed by the handle's own `Arc<GrantKey>`: one copy of each key.
    grants: DashMap<Arc<GrantKey>, Arc<GrantHandle>>,
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
            let handle = GrantHandle::new(grant, ctx.clone());
            grants.insert(handle.shared_key(), handle);
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

    /// Like [`Registry::get_by_id`], but asks the store when this process does
    /// not know the grant or binding yet: another replica may have just made it.
    pub async fn find_binding(&self, id: &str, binding: &str) -> Option<Arc<GrantHandle>> {
        if let Some(grant) = self.get_by_id(id).filter(|g| g.binding_is_live(binding)) {
            return Some(grant);
        }
        let (client_id, subject) = id.split_once('/')?;
        let key = GrantKey::new(client_id, subject.parse().ok()?);
        self.reload(&key).await;
        self.get(&key).filter(|g| g.binding_is_live(binding))
    }

    /// Brings `key` up to date with the store: loads a grant this process has
    /// not seen, or syncs one it has.
    pub async fn reload(&self, key: &GrantKey) {
        if let Some(grant) = self.get(key) {
            grant.sync_from_store().await;
            return;
        }
        if let Ok(Some(stored)) = self.ctx.store.load(key).await {
            for hash in stored
                .live_bindings()
                .filter_map(|b| b.adopted_from.clone())
            {
                self.adopted.insert(hash, key.clone());
            }
            let handle = GrantHandle::new(stored, self.ctx.clone());
            self.grants.entry(handle.shared_key()).or_insert(handle);
        }
    }

    /// Follows other replicas' announcements until shutdown.
    pub async fn follow_changes(self: Arc<Self>) {
        let Some(mut changes) = self.ctx.store.changes() else {
            return;
        };
        let mut shutdown = self.ctx.shutdown.clone();
        loop {
            let changed = tokio::select! {
                changed = changes.recv() => changed,
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            match changed {
                Ok(key) => self.reload(&key).await,
                // Missed some: everything may have moved.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    for grant in self.all() {
                        grant.sync_from_store().await;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
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
        // Built before the entry is taken, so the index shares the handle's key.
        let handle = GrantHandle::new(Grant::empty(key.clone()), self.ctx.clone());
        self.grants
            .entry(handle.shared_key())
            .or_insert(handle)
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
        // The first sweep runs at start-up: grants loaded from the store may be due.
        loop {
            let now = self.ctx.clock.now_ms();
            for grant in self.all() {
                if grant.keepalive_due(now) {
                    tracing::info!(grant = %grant.id(), "keep-alive refresh");
                    let _ = grant.force_refresh().await;
                }
            }
            tokio::select! {
                _ = self.ctx.clock.sleep(every) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    }
}
