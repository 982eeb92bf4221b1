//! What every grant shares: the token source, the store, the clock, the
//! settings, and the count of Zoom calls still in flight.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{watch, Notify};

use super::bindings::LegacyIndex;
use super::source::TokenSource;
use crate::clock::Clock;
use crate::config;
use crate::metrics::Metrics;
use crate::store::{Coordinator, GrantStore};

/// What every grant's refresher shares.
#[derive(Debug)]
pub struct RefreshCtx {
    /// The calls that change a grant (refresh, mint, exchange) and the identity lookup.
    pub source: Arc<dyn TokenSource>,
    pub store: Arc<dyn GrantStore>,
    /// The lock, marker and announcements replicas sharing `store` coordinate by.
    pub coord: Arc<dyn Coordinator>,
    pub clock: Clock,
    /// Replaced whole on a config reload; read where each decision is made.
    pub refresh: arc_swap::ArcSwap<config::Refresh>,
    pub metrics: Metrics,
    /// Flips to `true` on shutdown; background loops end.
    pub shutdown: watch::Receiver<bool>,
    /// Tasks that own a call to Zoom; shutdown waits for them.
    pub tasks: Tasks,
    /// Which grant adopted each legacy refresh token; kept by grants' install step.
    pub legacy: LegacyIndex,
    /// Adoptions whose tokens Zoom may have issued but no grant holds yet.
    pub adopting: Adopting,
    /// Told when a grant dies, is deauthorized, comes back or goes unpersisted.
    pub lifecycle: Arc<dyn super::Lifecycle>,
}

/// Counts adoptions in flight. Zoom revokes a user's earlier tokens the moment
/// it issues new ones, so until the adoption installs them, an `invalid_grant`
/// on some grant may be that revocation: not a reason to declare it dead.
#[derive(Debug, Default)]
pub struct Adopting {
    running: AtomicUsize,
    /// Wakes waiters when the last adoption in flight ends.
    idle: Notify,
}

/// One adoption in flight; uncounted when dropped, however it ended.
#[derive(Debug)]
pub(crate) struct AdoptingGuard<'a>(&'a Adopting);

/// Counts the grant-owned tasks in flight, so that shutdown can wait until
/// every answer Zoom sent has been taken in.
#[derive(Debug, Default)]
pub struct Tasks {
    running: AtomicUsize,
    idle: Notify,
}

/// One counted task; uncounts it when dropped, however the task ended.
#[derive(Debug)]
pub(crate) struct TaskGuard(Arc<RefreshCtx>);

// === impl Tasks ===

impl Tasks {
    /// Spawns `work` as a task the grant owns: a caller awaiting its handle
    /// that goes away cancels only its own wait, never the call to Zoom.
    pub(crate) fn spawn<T: Send + 'static>(
        ctx: &Arc<RefreshCtx>,
        work: impl std::future::Future<Output = T> + Send + 'static,
    ) -> tokio::task::JoinHandle<T> {
        ctx.tasks.running.fetch_add(1, Ordering::AcqRel);
        let guard = TaskGuard(ctx.clone());
        tokio::spawn(async move {
            let _counted = guard;
            work.await
        })
    }

    /// How many grant-owned tasks are running.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }

    /// Returns once no grant-owned task is running.
    pub async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.running() == 0 {
                return;
            }
            notified.await;
        }
    }
}

// === impl Adopting ===

impl Adopting {
    pub(crate) fn begin(&self) -> AdoptingGuard<'_> {
        self.running.fetch_add(1, Ordering::AcqRel);
        AdoptingGuard(self)
    }

    pub fn any(&self) -> bool {
        self.running.load(Ordering::Acquire) > 0
    }

    /// Returns once no adoption is in flight.
    pub(crate) async fn idle(&self) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if !self.any() {
                return;
            }
            idle.await;
        }
    }
}

impl Drop for AdoptingGuard<'_> {
    fn drop(&mut self) {
        if self.0.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if self.0.tasks.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.tasks.idle.notify_waiters();
        }
    }
}
