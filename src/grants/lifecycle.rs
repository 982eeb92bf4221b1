//! Grant lifecycle events: a grant died, was deauthorized, came back, or holds
//! a token the store did not take. `webhooks::Notifier` tells `[[notify]]`
//! URLs; grants only say what happened.
//!
//! Events are raised where the change is written, by the process that wrote
//! it, never where a record is merely installed: every replica installs
//! another's write when it re-reads, and one death must make one event.

use std::future::Future;
use std::pin::Pin;

use super::handle::GrantHandle;
use super::model::{Grant, GrantState};
use super::subject::GrantKey;
use crate::clock::UnixMillis;

/// What happened to a grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantEventKind {
    /// Zoom refused its refresh token: the user must authorize again.
    Dead,
    /// Zoom's `app_deauthorized`: the user or an admin uninstalled the app.
    Deauthorized,
    /// Authorized again after it died or was deauthorized.
    Reauthorized,
    /// A rotated token is held in memory: the store did not take it.
    Unpersisted,
}

/// One lifecycle event, as `[[notify]]` URLs receive it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantEvent {
    pub kind: GrantEventKind,
    pub key: GrantKey,
    pub account_id: Option<String>,
    /// Why, for `Dead`: Zoom's refusal in words. Never a token.
    pub reason: Option<String>,
    pub at_ms: UnixMillis,
}

/// Where lifecycle events go. Object-safe, held in `RefreshCtx`.
pub trait Lifecycle: Send + Sync + std::fmt::Debug + 'static {
    /// Takes the event in; returns once it is queued durably (or has been
    /// given up on, and logged). Never fails the grant's own work.
    fn raise(&self, event: GrantEvent) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// Tells nobody: the default without `[[notify]]`, and in unit tests.
#[derive(Debug, Default)]
pub struct Silent;

impl Lifecycle for Silent {
    fn raise(&self, _event: GrantEvent) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async {})
    }
}

// === impl GrantEventKind ===

impl GrantEventKind {
    /// The event's name in notifications and `[[notify]] events`.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantEventKind::Dead => "grant.dead",
            GrantEventKind::Deauthorized => "grant.deauthorized",
            GrantEventKind::Reauthorized => "grant.reauthorized",
            GrantEventKind::Unpersisted => "grant.unpersisted",
        }
    }

    /// The event a written change from `before` to `after` makes, if any.
    pub fn of_change(before: &GrantState, after: &Grant) -> Option<Self> {
        let was_dead = matches!(
            before,
            GrantState::Dead { .. } | GrantState::Deauthorized { .. }
        );
        match &after.state {
            GrantState::Dead { .. } if !was_dead => Some(GrantEventKind::Dead),
            GrantState::Deauthorized { .. }
                if !matches!(before, GrantState::Deauthorized { .. }) =>
            {
                Some(GrantEventKind::Deauthorized)
            }
            GrantState::Live if was_dead => Some(GrantEventKind::Reauthorized),
            _ => None,
        }
    }
}

// === impl GrantHandle ===

impl GrantHandle {
    /// Raises the event that the change this process just wrote, from
    /// `before` to `after`, makes (if any).
    pub(super) async fn raise_change(&self, before: &GrantState, after: &Grant) {
        if let Some(kind) = GrantEventKind::of_change(before, after) {
            self.raise(kind, after).await;
        }
    }

    /// Raises `kind` for `record`.
    pub(super) async fn raise(&self, kind: GrantEventKind, record: &Grant) {
        let reason = match &record.state {
            GrantState::Dead { reason } => Some(reason.clone()),
            _ => None,
        };
        // An uninstall is dated by the wipe's own time: raised twice for one
        // wipe (a crash between the event and the write that records it,
        // `grants::deauth`), both carry the same `event_ts`.
        let at_ms = match (kind, record.deauthorized_at()) {
            (GrantEventKind::Deauthorized, Some(at_ms)) => at_ms,
            _ => self.ctx.clock.now_ms(),
        };
        let event = GrantEvent {
            kind,
            key: self.key().clone(),
            account_id: record.account_id.clone(),
            reason,
            at_ms,
        };
        self.ctx.lifecycle.raise(event).await;
    }
}
