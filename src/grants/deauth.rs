//! Zoom's `app_deauthorized`: the user or an admin uninstalled the app, so the
//! grant's tokens are wiped and every caller's binding revoked.
//!
//! Zoom has already revoked the tokens on its side, so nothing here calls it.
//! The wipe is one versioned write like any other: a replica refreshing the
//! grant at the same moment loses the fence (and Zoom refuses its refresh token
//! anyway), and a later authorization of the same user rotates the record back
//! to life with new bindings only.
//!
//! The `grant.deauthorized` event cannot go in the wipe's write: it is queued
//! in the outbox by the notifier, a write of its own, and one write for both
//! would take a new store operation in every backend (a Lua script in Redis).
//! So the wiped record says that its event is owed, and a second write says
//! that it is queued. A process that dies in between leaves a record that
//! still owes it; Zoom, unanswered, delivers again, and the retry raises the
//! event, and counts and logs the wipe, as the first delivery would have. A
//! retry that finds nothing owed is a duplicate of a finished uninstall and
//! raises nothing. A crash after the event is queued but before the second
//! write raises it twice: at least once, as every notification is, both with
//! the wipe's time as `event_ts`.

use std::sync::atomic::Ordering;

use super::handle::GrantHandle;
use super::lifecycle::GrantEventKind;
use super::refresher::Flight;
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
    /// Wipes the grant's tokens from the store and from memory, revokes
    /// every binding, and raises `grant.deauthorized`. Returns once the wipe
    /// is durable, whether this call completed a wipe: wrote it, or finished
    /// one a crash interrupted before its event. A grant already
    /// deauthorized is otherwise left as it is (Zoom retries its
    /// deliveries), and so is one whose tokens Zoom issued after the
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
                // Zoom's retry after a wipe whose rewrite failed, or whose
                // process died before its event was queued: finish it.
                self.ctx.store.finish_wipe().await?;
                if !record.owes_event() {
                    return Ok(false);
                }
                break;
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
        self.raise_owed(&mut flight).await;
        drop(flight);
        self.announce().await;
        Ok(true)
    }

    /// Raises the `grant.deauthorized` event the wiped record in `flight`
    /// owes, then writes that it is raised. A failed write is left for
    /// Zoom's next delivery, which raises the event again.
    async fn raise_owed(&self, flight: &mut Flight) {
        self.raise(GrantEventKind::Deauthorized, &flight.record)
            .await;
        let raised = flight.record.event_raised();
        match self.ctx.store.save(&raised).await {
            Ok(()) => self.install(flight, raised),
            Err(error) => {
                tracing::warn!(grant = %self.key(), %error, "grant.deauthorized is queued but the store still says it is owed; another delivery of the uninstall raises it again");
            }
        }
    }
}
