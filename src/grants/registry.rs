//! Every grant this process knows, by key.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;

use super::ctx::{RefreshCtx, Tasks};
use super::handle::{GrantHandle, TokenError};
use super::model::{Grant, Issued};
use super::{GrantKey, Subject};
use crate::clock::UnixMillis;
use crate::store::StoreError;

/// Grants by key. `DashMap` because adoption (new grants) and lookups happen
/// concurrently per key; the hot path is a read of one shard.
#[derive(Debug)]
pub struct Registry {
    /// Keyed by the handle's own `Arc<GrantKey>`: one copy of each key.
    grants: DashMap<Arc<GrantKey>, Arc<GrantHandle>>,
    ctx: Arc<RefreshCtx>,
}

// === impl Registry ===

impl Registry {
    /// Loads every stored grant. Pending records whose tokens were adopted
    /// stay in the store only: they are read under their lock when needed.
    pub async fn load(ctx: Arc<RefreshCtx>) -> Result<Arc<Self>, StoreError> {
        let grants = DashMap::new();
        for grant in ctx.store.load_all().await? {
            if grant.adopted_into().is_none() {
                let handle = GrantHandle::new(grant, ctx.clone());
                grants.insert(handle.shared_key(), handle);
            }
        }
        tracing::info!(grants = grants.len(), "grants loaded");
        Ok(Arc::new(Self { grants, ctx }))
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
            if grant.is_unpersisted() {
                // The store came back, or is another one now (a failover):
                // the token only we hold goes there at once, not after the
                // retry's backoff, before another replica acts on the older one.
                tokio::spawn(async move {
                    if let Err(error) = grant.flush().await {
                        tracing::debug!(grant = %grant.key(), %error, "write after the store changed failed; the retry goes on");
                    }
                });
            }
            return;
        }
        match self.ctx.store.load(key).await {
            Ok(Some(stored)) if stored.adopted_into().is_none() => {
                let handle = GrantHandle::new(stored, self.ctx.clone());
                self.grants.entry(handle.shared_key()).or_insert(handle);
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(grant = %key, %error, "cannot load the grant"),
        }
    }

    /// Follows other replicas' announcements until shutdown.
    pub async fn follow_changes(self: Arc<Self>) {
        let Some(mut changes) = self.ctx.coord.changes() else {
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
        let (key, binding) = self.ctx.legacy.find(hash)?;
        let grant = self.get(&key)?;
        grant.binding_is_live(&binding).then_some((grant, binding))
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

    /// A minted grant (Server-to-Server, or an app's `client_credentials`)
    /// with a token, minted under the grant's lock (the Redis lease where the
    /// store is Redis) if nobody has yet. A mint Zoom refuses leaves no grant
    /// behind, whose refresher would otherwise retry the mint forever.
    pub async fn minted_grant(&self, key: &GrantKey) -> Result<Arc<GrantHandle>, TokenError> {
        if self.get(key).is_none() {
            // Another replica may have minted it already.
            self.reload(key).await;
        }
        let grant = self.ensure(key);
        match grant.token().await {
            Ok(_) => Ok(grant),
            Err(error @ TokenError::Refused { .. }) => {
                self.forget_empty(&grant);
                Err(error)
            }
            Err(error) => Err(error),
        }
    }

    /// Drops `grant` from memory if it holds no token and nothing unsaved: a
    /// pending grant whose tokens moved (the store keeps its record of where),
    /// or an account Zoom refused to mint for.
    pub(super) fn forget_empty(&self, grant: &Arc<GrantHandle>) {
        self.grants.remove_if(grant.key(), |_, g| {
            Arc::ptr_eq(g, grant) && g.current().bearer.is_none() && !g.is_unpersisted()
        });
    }

    /// Installs tokens obtained from Zoom for `key` (tests, tools), with no binding.
    pub async fn install(
        &self,
        key: &GrantKey,
        issued: &Issued,
    ) -> Result<Arc<GrantHandle>, StoreError> {
        let grant = self.ensure(key);
        let now = self.ctx.clock.now_ms();
        grant.adopt(issued, now, None, None).await?;
        Ok(grant)
    }

    /// Zoom's `app_deauthorized` for `client_id`: wipes the grant of `user`
    /// (a user-level install) and of `account` (an account-level one), as far
    /// as either exists here or in the store. Returns the ids wiped.
    ///
    /// The wipe runs in a task the registry owns: Zoom gives up on a webhook
    /// after a few seconds, and a delivery it hangs up on (a slow store, a
    /// Redis failover) must not leave the wipe half done, the store wiped and
    /// this replica still serving the tokens.
    pub async fn deauthorize(
        self: &Arc<Self>,
        client_id: &str,
        (user, account): (Option<&str>, Option<&str>),
        event_ms: Option<UnixMillis>,
    ) -> Result<Vec<String>, StoreError> {
        let this = self.clone();
        let client_id = client_id.to_owned();
        let subjects: Vec<Subject> = user
            .map(|u| Subject::User(u.to_owned()))
            .into_iter()
            .chain(account.map(|a| Subject::Account(a.to_owned())))
            .collect();
        Tasks::spawn(&self.ctx, async move {
            this.deauthorize_owned(&client_id, subjects, event_ms).await
        })
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable(
                "the wipe task ended abnormally".into(),
            ))
        })
    }

    async fn deauthorize_owned(
        &self,
        client_id: &str,
        subjects: Vec<Subject>,
        event_ms: Option<UnixMillis>,
    ) -> Result<Vec<String>, StoreError> {
        let now = self.ctx.clock.now_ms();
        let mut wiped = Vec::new();
        for subject in subjects {
            let key = GrantKey::new(client_id, subject);
            // Another replica may hold a grant this one never loaded.
            self.reload(&key).await;
            if let Some(grant) = self.get(&key) {
                if grant.deauthorize(now, event_ms).await? {
                    wiped.push(grant.id());
                }
            }
        }
        Ok(wiped)
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

    /// Waits for every grant-owned Zoom call to be taken in, then makes a last
    /// write of every record held in memory. Returns the grants still unsaved.
    pub async fn flush(&self) -> Vec<String> {
        self.ctx.tasks.idle().await;
        let mut unsaved = Vec::new();
        for grant in self.all().into_iter().filter(|g| g.is_unpersisted()) {
            if let Err(error) = grant.flush().await {
                tracing::error!(grant = %grant.id(), %error, "ROTATED REFRESH TOKEN STILL NOT PERSISTED at shutdown; the grant is lost unless the store took an earlier write");
                unsaved.push(grant.id());
            }
        }
        unsaved
    }

    /// Refreshes user grants nobody has used for `refresh.keepalive`, so that
    /// their refresh tokens never lapse at Zoom. Runs until shutdown.
    pub async fn keepalive_loop(self: Arc<Self>) {
        let mut shutdown = self.ctx.shutdown.clone();
        // Ten sweeps per keep-alive period, at most hourly, at least each minute.
        let every = (self.ctx.refresh.load().keepalive / 10)
            .clamp(Duration::from_secs(60), Duration::from_secs(3600));
        // The first sweep runs at start-up: grants loaded from the store may be due.
        loop {
            let now = self.ctx.clock.now_ms();
            for grant in self.all() {
                if grant.keepalive_due(now) {
                    tracing::info!(grant = %grant.id(), "keep-alive refresh");
                    // Failures are the refresher's to log and retry; the sweep moves on.
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
