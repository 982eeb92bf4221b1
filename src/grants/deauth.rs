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
use crate::store::StoreError;

/// How often a wipe re-reads and retries when another replica wrote first.
const CONFLICT_RETRIES: usize = 5;

// === impl GrantHandle ===

impl GrantHandle {
    /// Wipes the grant's tokens from the store and from memory, and revokes
    /// every binding. Returns once the wipe is durable. A grant already
    /// deauthorized is left as it is (Zoom retries its deliveries).
    pub async fn deauthorize(&self, at_ms: UnixMillis) -> Result<(), StoreError> {
        let mut flight = self.flight.lock().await;
        self.reread(&mut flight).await;
        let mut tries = 0;
        loop {
            if flight.record.deauthorized_at().is_some() {
                return Ok(());
            }
            let next = flight.record.deauthorized(at_ms);
            match self.ctx.store.save(&next).await {
                Ok(()) => {
                    // Nothing is held in memory only any more: there is nothing to hold.
                    self.unpersisted.store(false, Ordering::Release);
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
        Ok(())
    }
}
