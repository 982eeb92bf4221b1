//! Zoom's `app_deauthorized`: the user or an admin uninstalled the app, so the
//! grant's tokens are wiped and every caller's binding revoked.
//!
//! Zoom has already revoked the tokens on its side, so nothing here calls it.
//! The wipe is one versioned write like any other: a replica refreshing the
//! grant at the same moment loses the fence (and Zoom refuses its refresh token
//! anyway), and a later authorization of the same user rotates the record back
//! to life with new bindings only.

use std::sync::atomic::Ordering;

use super::handle::GrantHandle;
use crate::clock::UnixMillis;
use crate::failpoint;
use crate::store::StoreError;

/// How often a wipe re-reads and retries when another replica wrote first.
const CONFLICT_RETRIES: usize = 5;
/// Tokens issued this long after an uninstall prove a new install: Zoom
/// revoked the old ones, so no refresh succeeds after it. The margin covers
/// clock skew between Zoom and us, and a refresh that crossed the uninstall;
/// Zoom's own retries come minutes apart, far beyond it.
const REINSTALL_MARGIN_MS: u64 = 60_000;

// === impl GrantHandle ===

impl GrantHandle {
    /// Wipes the grant's tokens from the store and from memory, and revokes
    /// every binding. Returns once the wipe is durable, whether this call
    /// wiped. A grant already deauthorized is left as it is (Zoom retries
    /// its deliveries), and so is one whose tokens Zoom issued after the
    /// uninstall (`event_ms`): the user installed the app again, and Zoom's
    /// late retry of the old event must not wipe the new grant.
    pub async fn deauthorize(
        &self,
        at_ms: UnixMillis,
        event_ms: Option<UnixMillis>,
    ) -> Result<bool, StoreError> {
        let mut flight = self.flight.lock().await;
        self.reread(&mut flight).await;
        let mut tries = 0;
        loop {
            let record = &flight.record;
            if record.deauthorized_at().is_some() {
                // Zoom's retry after a wipe whose rewrite failed: finish it.
                self.ctx.store.finish_wipe().await?;
                return Ok(false);
            }
            let reinstalled = |ev: UnixMillis| record.refreshed_at_ms > ev + REINSTALL_MARGIN_MS;
            if !record.is_dead() && event_ms.is_some_and(reinstalled) {
                tracing::info!(grant = %self.key(), "app_deauthorized predates this grant's tokens: the app was installed again; nothing wiped");
                return Ok(false);
            }
            let next = flight.record.deauthorized(at_ms);
            failpoint::hit("wipe_decided");
            match self.ctx.store.save_wiped(&next).await {
                Ok(()) => {
                    failpoint::hit("wipe_stored");
                    // Nothing is held in memory only any more: there is nothing to hold.
                    self.unpersisted.store(false, Ordering::Release);
                    self.raise_change(&flight.record.state, &next).await;
                    self.install(&mut flight, next);
                    break;
                }
                Err(StoreError::Conflict { .. }) if tries < CONFLICT_RETRIES => {
                    tries += 1;
                    self.reread(&mut flight).await;
                }
                Err(error) => return Err(error),
            }
        }
        drop(flight);
        self.announce().await;
        Ok(true)
    }
}
