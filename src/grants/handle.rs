//! One grant: its published token, its entry points, and the tasks it owns.
//!
//! Readers take the current token with one atomic load ([`ArcSwap`]). Every
//! change (refresh, mint, adoption, death) happens under the grant's
//! `tokio::sync::Mutex`, held across the whole re-read → Zoom → persist →
//! publish sequence; that mutex is what makes a refresh single-flight.
//! Waiters that queued behind a refresh do not start another one: they see
//! that an attempt completed while they waited (`attempts`) and take its
//! outcome, so many callers of an expired grant cause exactly one Zoom call.
//!
//! A caller only ever waits. Once a refresh is due, the attempt moves into a
//! task the grant owns, together with the mutex guard: a caller that hangs up
//! cancels its own wait, never the call to Zoom or the write of its answer.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use tokio::sync::Mutex;

use super::bindings;
use super::ctx::{RefreshCtx, Tasks};
use super::current::{Current, Freshness};
use super::model::{Grant, GrantState};
use super::refresher::{last_error, usable, Flight, Need};
use super::{GrantKey, Subject};
use crate::clock::UnixMillis;

/// How long a caller whose token Zoom refused waits for an adoption in flight
/// (a code exchange's Zoom call, identity lookup and write) to land.
const ADOPTION_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The dead reason of a deauthorized grant, as `/grants` shows it.
pub const DEAUTHORIZED: &str = "deauthorized: the app was uninstalled (app_deauthorized)";

/// Why no token can be had. The text is safe to show callers: no secrets.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the grant is dead: Zoom refused its refresh token, so the user must authorize again")]
    Dead,
    #[error("no valid Zoom access token: {0}")]
    Unavailable(String),
    /// Zoom refused the token call (not `invalid_grant`): e.g. a first
    /// Server-to-Server mint for an account the app may not use. `body` is
    /// Zoom's answer, relayed to an OAuth caller, never displayed.
    #[error("Zoom refused the token request with HTTP {status}")]
    Refused { status: u16, body: Bytes },
}

/// A grant: its published token and its refresher.
#[derive(Debug)]
pub struct GrantHandle {
    /// Shared with the registry's index, which is keyed by it.
    key: Arc<GrantKey>,
    current: ArcSwap<Current>,
    /// The single-flight lock; it also guards the full record and the backoff
    /// state. In an `Arc` so that an attempt's task can own the guard.
    pub(super) flight: Arc<Mutex<Flight>>,
    /// Completed attempts; waiters compare it to see that one ran meanwhile.
    pub(super) attempts: AtomicU64,
    /// A background task (refresh, or finishing an adoption) is running.
    pub(super) background: AtomicBool,
    /// A rotated token is held in memory only: the store refused it.
    pub(super) unpersisted: AtomicBool,
    /// The last attempt failed and is being retried (`Flight::failures > 0`),
    /// mirrored outside the lock so that a metrics scrape reads it without one.
    pub(super) refresh_failing: AtomicBool,
    /// When a caller last asked for the token: one relaxed store per request.
    last_used_ms: AtomicU64,
    /// Ids of unrevoked bindings, read on every virtual-token request.
    live_bindings: ArcSwap<HashSet<String>>,
    pub(super) ctx: Arc<RefreshCtx>,
}

// === impl GrantHandle ===

impl GrantHandle {
    pub fn new(record: Grant, ctx: Arc<RefreshCtx>) -> Arc<Self> {
        ctx.legacy.install(&record);
        Arc::new(Self {
            key: Arc::new(record.key.clone()),
            current: ArcSwap::from_pointee(snapshot(&record)),
            live_bindings: ArcSwap::new(bindings::live_set(&record)),
            flight: Arc::new(Mutex::new(Flight {
                record,
                failures: 0,
                retry_at_ms: 0,
                last_error: None,
                limbo_since_ms: None,
            })),
            attempts: AtomicU64::new(0),
            background: AtomicBool::new(false),
            unpersisted: AtomicBool::new(false),
            refresh_failing: AtomicBool::new(false),
            last_used_ms: AtomicU64::new(0),
            ctx,
        })
    }

    pub fn key(&self) -> &GrantKey {
        &self.key
    }

    /// `GrantKey::id`, made on each call: grants are many, and a stored copy
    /// would cost each one its own allocation.
    pub fn id(&self) -> String {
        self.key.id()
    }

    /// The key as the registry indexes it.
    pub(super) fn shared_key(&self) -> Arc<GrantKey> {
        self.key.clone()
    }

    /// The published snapshot, without any freshness check.
    pub fn current(&self) -> Arc<Current> {
        self.current.load_full()
    }

    /// The Zoom account whose rate-limit budgets this grant's calls draw on
    /// ([`Current::rate_account`]): one atomic load, no lock. A caller that
    /// already holds a snapshot from [`Self::token`] reads its field instead.
    pub fn rate_account(&self) -> Option<Arc<str>> {
        self.current.load().rate_account.clone()
    }

    pub fn is_unpersisted(&self) -> bool {
        self.unpersisted.load(Ordering::Acquire)
    }

    /// Did the last refresh attempt fail (Zoom or the store unavailable, or a
    /// refusal other than `invalid_grant`)? It is retried with backoff.
    pub fn refresh_failing(&self) -> bool {
        self.refresh_failing.load(Ordering::Relaxed)
    }

    /// When a caller last asked for this grant's token (0: not since start-up).
    pub fn last_used_ms(&self) -> UnixMillis {
        self.last_used_ms.load(Ordering::Relaxed)
    }

    /// `refresh.ahead` in milliseconds, as this grant's refresher reads it.
    pub fn refresh_ahead_ms(&self) -> u64 {
        self.ahead_ms()
    }

    /// Tokens Zoom issued for a code or legacy token, kept under the pending
    /// key because their adoption has not finished (the identity lookup or the
    /// user grant's write failed).
    pub fn awaits_adoption(&self) -> bool {
        let cur = self.current.load();
        matches!(self.key.subject, Subject::Pending(_))
            && cur.bearer.is_some()
            && cur.dead.is_none()
    }

    /// A copy of the full record (tokens included); for the admin view and tests.
    pub async fn record(&self) -> Grant {
        self.flight.lock().await.record.clone()
    }

    /// A token to inject now: fresh or stale (a background refresh is started),
    /// or, when expired, after the one refresh every waiter shares.
    pub async fn token(self: &Arc<Self>) -> Result<Arc<Current>, TokenError> {
        let now = self.ctx.clock.now_ms();
        self.last_used_ms.store(now, Ordering::Relaxed);
        let cur = self.current.load_full();
        match cur.freshness(now, self.ahead_ms()) {
            Freshness::Fresh => Ok(cur),
            Freshness::Stale => {
                self.kick_background(&cur);
                Ok(cur)
            }
            Freshness::Dead => Err(TokenError::Dead),
            Freshness::Expired => {
                // Boxed: the refresh is a large future, and every request's future
                // would otherwise carry its size (and move it) for a rare path.
                let result = Box::pin(self.refresh_while(Need::Expired)).await;
                if matches!(result, Err(TokenError::Unavailable(_))) {
                    // Keep retrying in the background so the grant recovers without traffic.
                    self.kick_background(&cur);
                }
                result
            }
        }
    }

    /// Zoom refused the token of snapshot `sent` (401 code 124). Refresh unless
    /// someone already has, and return the token to replay with.
    pub async fn after_rejection(
        self: &Arc<Self>,
        sent: &Arc<Current>,
    ) -> Result<Arc<Current>, TokenError> {
        Box::pin(self.refresh_while(Need::Replace(sent.clone()))).await
    }

    /// After [`Self::after_rejection`] failed while an authorization was being
    /// adopted: Zoom revokes a user's earlier tokens the moment it issues new
    /// ones, so the refusal may be that adoption's doing. Waits (at most
    /// [`ADOPTION_WAIT`], outside the grant's lock, which the adoption needs)
    /// for adoptions in flight to land, and returns the grant's token if it is
    /// a live one other than `sent`'s.
    pub async fn after_adoption(&self, sent: &Arc<Current>) -> Option<Arc<Current>> {
        if !self.ctx.adopting.any() {
            return None;
        }
        let _ = tokio::time::timeout(ADOPTION_WAIT, self.ctx.adopting.idle()).await;
        let cur = self.current.load_full();
        let newer = cur.bearer.is_some() && cur.bearer != sent.bearer && cur.dead.is_none();
        newer.then_some(cur)
    }

    /// Refreshes now, whatever the token's state (admin `POST /grants/{id}/refresh`, keep-alive).
    pub async fn force_refresh(self: &Arc<Self>) -> Result<Arc<Current>, TokenError> {
        self.refresh_while(Need::Forced(self.current())).await
    }

    /// Runs one attempt if `need` still holds once the lock is held, unless an
    /// attempt already ran while this caller waited, or backoff forbids one.
    async fn refresh_while(self: &Arc<Self>, need: Need) -> Result<Arc<Current>, TokenError> {
        let seen_attempts = self.attempts.load(Ordering::Acquire);
        // Waiting for the lock is the caller's own: nothing has begun yet.
        let mut flight = self.flight.clone().lock_owned().await;
        let cur = self.current.load_full();
        let now = self.ctx.clock.now_ms();
        if !need.holds(&cur, now) || cur.dead.is_some() {
            return usable(cur, now, &flight);
        }
        if self.attempts.load(Ordering::Acquire) != seen_attempts || now < flight.retry_at_ms {
            return Err(last_error(&flight));
        }
        let this = self.clone();
        let attempt = Tasks::spawn(&self.ctx, async move {
            let outcome = this.attempt(&mut flight, &need).await;
            // Counted under the lock, however it ended: callers queued behind
            // this attempt take its outcome instead of starting another.
            this.attempts.fetch_add(1, Ordering::AcqRel);
            this.settle(&mut flight, outcome)
        });
        attempt.await.unwrap_or_else(|_| {
            Err(TokenError::Unavailable(
                "the refresh task ended abnormally".into(),
            ))
        })
    }

    /// Reloads the grant from the store if it holds a newer version; another
    /// replica announced a change.
    pub async fn sync_from_store(&self) {
        let mut flight = self.flight.lock().await;
        self.reread(&mut flight).await;
    }

    /// Does binding `id` exist, unrevoked? One atomic load.
    pub fn binding_is_live(&self, id: &str) -> bool {
        self.live_bindings.load().contains(id)
    }

    /// Loads the stored grant; installs it if another writer got further.
    /// Returns whether it did.
    pub(super) async fn reread(&self, flight: &mut Flight) -> bool {
        match self.ctx.store.load(&self.key).await {
            Ok(Some(stored)) if stored.version > flight.record.version => {
                tracing::info!(grant = %self.key, version = stored.version, "store holds a newer grant; adopting it");
                self.install(flight, stored);
                true
            }
            Ok(_) => false,
            Err(error) => {
                tracing::warn!(grant = %self.key, %error, "cannot re-read the grant; using the copy in memory");
                false
            }
        }
    }

    /// Makes `record` the grant's state and publishes its token.
    pub(super) fn install(&self, flight: &mut Flight, record: Grant) {
        self.current.store(Arc::new(snapshot(&record)));
        self.replace_record(flight, record);
        flight.failures = 0;
        self.refresh_failing.store(false, Ordering::Relaxed);
        flight.retry_at_ms = 0;
        flight.last_error = None;
        flight.limbo_since_ms = None;
    }

    /// Swaps the record and its binding indexes; the published token is untouched.
    pub(super) fn replace_record(&self, flight: &mut Flight, record: Grant) {
        self.live_bindings.store(bindings::live_set(&record));
        self.ctx.legacy.install(&record);
        flight.record = record;
    }

    /// Tells other replicas the grant changed. They also re-read on a 401 and
    /// under the lease before any refresh, so a lost announcement costs a
    /// little latency, never a token: logged, not returned.
    pub(super) async fn announce(&self) {
        if let Err(error) = self.ctx.coord.announce(&self.key).await {
            tracing::debug!(grant = %self.key, %error, "cannot announce the change");
        }
    }

    fn ahead_ms(&self) -> u64 {
        self.ctx.refresh.load().ahead.as_millis() as u64
    }

    fn kick_background(self: &Arc<Self>, stale: &Arc<Current>) {
        if self.background.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        let stale = stale.clone();
        tokio::spawn(async move {
            this.background_refresh(&stale).await;
            this.background.store(false, Ordering::Release);
        });
    }

    /// Refreshes until the token moves past `stale`, backing off between failures.
    async fn background_refresh(self: &Arc<Self>, stale: &Arc<Current>) {
        let mut shutdown = self.ctx.shutdown.clone();
        loop {
            match self.refresh_while(Need::Replace(stale.clone())).await {
                Ok(_) | Err(TokenError::Dead) => return,
                Err(TokenError::Unavailable(_) | TokenError::Refused { .. }) => {}
            }
            let floor = self.ctx.clock.now_ms()
                + self.ctx.refresh.load().backoff_min.as_millis() as u64 / 2;
            let retry_at = self.flight.lock().await.retry_at_ms.max(floor);
            tokio::select! {
                _ = self.ctx.clock.sleep_until(retry_at) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    }

    /// When the keep-alive sweep should refresh this grant anyway.
    pub(crate) fn keepalive_due(&self, now: UnixMillis) -> bool {
        let cur = self.current.load();
        let keepalive = self.ctx.refresh.load().keepalive.as_millis() as u64;
        !self.key.subject.is_minted()
            && cur.dead.is_none()
            && cur.bearer.is_some()
            && now.saturating_sub(cur.issued_at_ms) >= keepalive
    }
}

/// The snapshot readers see for `record`.
fn snapshot(record: &Grant) -> Current {
    // Shares the record's buffer: the grant holds its token once.
    let bearer = record.access_token.header();
    Current {
        version: record.version,
        bearer,
        expires_at_ms: record.expires_at_ms,
        issued_at_ms: record.refreshed_at_ms,
        scope: record.scope.clone(),
        dead: match &record.state {
            GrantState::Live | GrantState::Adopted { .. } => None,
            GrantState::Dead { reason } => Some(reason.clone()),
            GrantState::Deauthorized { .. } => Some(DEAUTHORIZED.to_owned()),
        },
        rate_account: record.rate_account().map(Arc::from),
    }
}
