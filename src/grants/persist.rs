//! Write-through: a grant record reaches the store before its token is
//! published, and a rotated token the store refuses is never dropped.
//!
//! A version conflict means another writer (a replica whose lease we outlived,
//! or a binding change) got there first. Zoom has just accepted our call, so
//! our tokens are the newest unless the stored ones were issued later: rebase
//! ours onto the stored version, or take theirs. Any other failure keeps the
//! record in memory, marked unpersisted (`/readyz` reports it), with a retry
//! owned by this process; shutdown makes a last attempt ([`GrantHandle::flush`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::bindings;
use super::handle::GrantHandle;
use super::lifecycle::GrantEventKind;
use super::model::Grant;
use super::refresher::backoff;
use crate::store::StoreError;

/// Rebases in a row before the record is held in memory and retried later:
/// each conflict is a write that landed, so many in a row is a store in flux.
const MAX_REBASES: u32 = 8;

/// What became of a record that had to be stored. The caller installs it
/// either way: a record held in memory is the only valid copy of its tokens.
#[must_use = "install the record: held in memory, it is the only valid copy"]
#[derive(Debug)]
pub(super) enum Persist {
    /// Durable. Possibly another writer's newer record, which supersedes ours.
    Persisted(Grant),
    /// The store refused it; a retry owned by this process keeps writing it.
    HeldInMemory(Grant),
}

// === impl Persist ===

impl Persist {
    pub(super) fn is_held(&self) -> bool {
        matches!(self, Persist::HeldInMemory(_))
    }

    pub(super) fn into_record(self) -> Grant {
        match self {
            Persist::Persisted(record) | Persist::HeldInMemory(record) => record,
        }
    }
}

// === impl GrantHandle ===

impl GrantHandle {
    /// Writes `record` durably, or holds it in memory with a retry running.
    pub(super) async fn persist(self: &Arc<Self>, record: Grant) -> Persist {
        let started = Instant::now();
        match self.write(record.clone()).await {
            Ok(stored) => {
                self.ctx
                    .metrics
                    .persist_seconds
                    .observe(started.elapsed().as_secs_f64());
                self.unpersisted.store(false, Ordering::Release);
                Persist::Persisted(stored)
            }
            Err(error) => {
                tracing::error!(grant = %self.key(), %error, "ROTATED REFRESH TOKEN NOT PERSISTED; keeping it in memory and retrying");
                if self.hold_in_memory() {
                    self.raise(GrantEventKind::Unpersisted, &record).await;
                }
                Persist::HeldInMemory(record)
            }
        }
    }

    /// One write, rebased over conflicts. Returns the record now stored: ours,
    /// or a newer one another writer stored.
    async fn write(&self, mut record: Grant) -> Result<Grant, StoreError> {
        let mut rebases = 0;
        loop {
            let stored = match self.ctx.store.save(&record).await {
                Ok(()) => return Ok(record),
                Err(StoreError::Conflict { stored, .. }) if rebases < MAX_REBASES => stored,
                Err(error) => return Err(error),
            };
            rebases += 1;
            match self.ctx.store.load(self.key()).await? {
                Some(theirs) if supersedes(&theirs, &record) => {
                    tracing::info!(grant = %self.key(), "a newer authorization was stored meanwhile; taking it");
                    return Ok(theirs);
                }
                Some(theirs) => {
                    tracing::warn!(grant = %self.key(), stored, "store moved on while we called Zoom; rebasing our newer tokens");
                    record.version = theirs.version.max(record.version) + 1;
                    record.bindings = bindings::merge(&theirs, &record);
                    // An account another writer learned meanwhile is kept.
                    record.account_id = record.account_id.take().or(theirs.account_id);
                }
                None => record.version = stored.max(record.version) + 1,
            }
        }
    }

    /// Marks the record unpersisted and starts the retry, once. Returns
    /// whether it was persisted until now.
    fn hold_in_memory(self: &Arc<Self>) -> bool {
        let newly = !self.unpersisted.swap(true, Ordering::AcqRel);
        if newly {
            let this = self.clone();
            tokio::spawn(async move { this.retry_persist().await });
        }
        newly
    }

    /// Writes the in-memory record until the store takes it, or shutdown
    /// (which makes the last attempt itself).
    async fn retry_persist(self: Arc<Self>) {
        let mut failures = 0;
        let mut shutdown = self.ctx.shutdown.clone();
        while self.is_unpersisted() {
            failures += 1;
            tokio::select! {
                _ = self.ctx.clock.sleep(backoff(&self.ctx.refresh.load(), failures)) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            if let Err(error) = self.flush().await {
                tracing::error!(grant = %self.key(), %error, "persist retry failed; the rotated token is still only in memory");
            }
        }
    }

    /// One attempt to write a record held in memory; `Ok` if nothing is held
    /// any more. Shutdown calls it for every unpersisted grant.
    pub async fn flush(self: &Arc<Self>) -> Result<(), StoreError> {
        let mut flight = self.flight.lock().await;
        if !self.is_unpersisted() {
            return Ok(());
        }
        let stored = self.write(flight.record.clone()).await?;
        self.install(&mut flight, stored);
        self.unpersisted.store(false, Ordering::Release);
        tracing::info!(grant = %self.key(), "rotated refresh token persisted after retry");
        self.announce().await;
        Ok(())
    }
}

/// Does the stored record hold tokens issued after ours? Then it wins: Zoom
/// revoked ours when it issued those. A dead record never wins over live tokens.
fn supersedes(theirs: &Grant, ours: &Grant) -> bool {
    theirs.refreshed_at_ms > ours.refreshed_at_ms && !theirs.is_dead()
}
