//! An attempt's hold on a grant across replicas: the refresh lease and the
//! "refresh begun" marker, ended by the guard that took them.

use std::sync::Arc;

use super::handle::GrantHandle;
use crate::store::{Lease, StoreError};

/// One attempt at changing a grant at Zoom, holding the grant's lease.
///
/// A begun marker that was neither ended nor deliberately kept is cleared
/// before the lease is released (the store only clears a marker for the
/// lease's owner), in a task of its own because `Drop` cannot wait.
pub(super) struct Attempt {
    grant: Arc<GrantHandle>,
    lease: Option<Lease>,
    marker: Marker,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Marker {
    None,
    Begun,
    /// Left on record on purpose: the token Zoom rotated is not stored yet.
    Kept,
}

// === impl Attempt ===

impl Attempt {
    /// Takes the grant's lease, waiting while another replica holds it.
    pub(super) async fn take(grant: &Arc<GrantHandle>) -> Result<Self, StoreError> {
        let lease = grant.ctx.coord.lock(grant.key()).await?;
        Ok(Self {
            grant: grant.clone(),
            lease: Some(lease),
            marker: Marker::None,
        })
    }

    /// Marks the refresh begun just before Zoom is called. Returns whether an
    /// earlier holder began one it never finished.
    pub(super) async fn begin(&mut self) -> Result<bool, StoreError> {
        let interrupted = self.grant.ctx.coord.begin_refresh(self.grant.key()).await?;
        self.marker = Marker::Begun;
        Ok(interrupted)
    }

    /// Whether the lease is still ours by our own clock.
    pub(super) fn lease_held(&self) -> bool {
        self.lease.as_ref().is_none_or(Lease::still_held)
    }

    /// Leaves the begun marker on record, so the next holder knows that a
    /// rotated token may still be on its way to the store.
    pub(super) fn keep_marker(mut self) {
        if self.marker == Marker::Begun {
            self.marker = Marker::Kept;
        }
    }

    /// Clears the begun marker (if set), then releases the lease.
    pub(super) async fn end(mut self) {
        if self.marker == Marker::Begun {
            self.marker = Marker::None;
            end_marker(&self.grant).await;
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if self.marker != Marker::Begun {
            return;
        }
        // Only reached if the attempt's task ended abnormally (a panic).
        let (grant, lease) = (self.grant.clone(), self.lease.take());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                end_marker(&grant).await;
                drop(lease);
            });
        }
    }
}

/// A marker that cannot be cleared expires on its own (the store's intent
/// TTL); until then other replicas wait a little longer before calling the
/// grant dead, which is the safe side. So the error is logged, not returned.
async fn end_marker(grant: &GrantHandle) {
    if let Err(error) = grant.ctx.coord.end_refresh(grant.key()).await {
        tracing::warn!(grant = %grant.key(), %error, "cannot clear the refresh marker; it expires by itself");
    }
}
