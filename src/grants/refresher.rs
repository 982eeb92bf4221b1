//! The single-flight refresher: one attempt at a time per grant, under the
//! grant's mutex and (with Redis) its lease: re-read → Zoom → persist → publish.
//!
//! Each step returns an [`Outcome`]; [`GrantHandle::settle`] is the one place
//! that turns it into backoff, logs and the caller's answer. An attempt runs in
//! a task the grant owns (see `handle.rs`), so it always finishes: once Zoom has
//! rotated the token, its answer is stored, held, or recorded as a refusal.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng as _;

use super::attempt::Attempt;
use super::current::{Current, Freshness};
use super::handle::GrantHandle;
use super::identity;
use super::model::{Grant, Issued};
use super::source::Mint;
use super::Subject;
use crate::clock::UnixMillis;
use crate::config;
use crate::failpoint;
use crate::oauth::ZoomTokenError;

/// The grant's state besides its published token, guarded by the single-flight mutex.
#[derive(Debug)]
pub(super) struct Flight {
    pub(super) record: Grant,
    pub(super) failures: u32,
    pub(super) retry_at_ms: UnixMillis,
    pub(super) last_error: Option<super::TokenError>,
    /// Since when Zoom has refused our refresh token while another replica's
    /// refresh was left unfinished: its rotated token may still be written.
    pub(super) limbo_since_ms: Option<UnixMillis>,
}

/// Why a refresh is wanted; checked again once the lock is held.
#[derive(Debug)]
pub(super) enum Need {
    /// The token is past its expiry (or was never minted).
    Expired,
    /// Zoom refused this token (401 code 124), or it is stale: replace it.
    Replace(Arc<Current>),
    /// An operator or the keep-alive asks for a refresh of a live grant.
    Forced(Arc<Current>),
}

/// How one attempt ended.
#[derive(Debug)]
pub(super) enum Outcome {
    /// Zoom issued new tokens; they are installed (stored or held in memory).
    Rotated,
    /// The store already held what was needed: no call to Zoom.
    Settled,
    /// Worth retrying later: Zoom or the store was unavailable, or the lease lapsed.
    Failed(String),
    /// Zoom refused the call for a reason other than a dead refresh token.
    Refused(ZoomTokenError),
    /// Zoom refused our refresh token while another replica's rotation may still land.
    Limbo,
    /// Zoom refused the refresh token and the store holds nothing newer.
    Dead,
}

/// How long to wait for an interrupted replica to write the token it rotated
/// before calling the grant dead. Past a lease or two, that replica is gone.
const LIMBO_MAX_MS: u64 = 5 * 60 * 1000;

// === impl Need ===

impl Need {
    pub(super) fn holds(&self, cur: &Current, now: UnixMillis) -> bool {
        match self {
            Need::Expired => cur.freshness(now, 0) == Freshness::Expired,
            Need::Replace(seen) => cur.same_token(seen),
            Need::Forced(seen) => cur.same_token(seen) && cur.dead.is_none(),
        }
    }
}

// === impl GrantHandle ===

impl GrantHandle {
    /// One attempt, under the grant's mutex (`flight`).
    pub(super) async fn attempt(self: &Arc<Self>, flight: &mut Flight, need: &Need) -> Outcome {
        let started = Instant::now();
        // Across replicas, one refresher per grant: without the lease, never call Zoom.
        let mut attempt = match Attempt::take(self).await {
            Ok(attempt) => attempt,
            Err(error) => return Outcome::Failed(format!("cannot take the refresh lock: {error}")),
        };
        if self.settled_by_store(flight, need).await {
            attempt.end().await;
            return Outcome::Settled;
        }
        let unsettled = self.ctx.coord.unsettled_for();
        if !unsettled.is_zero() {
            tracing::info!(grant = %self.key(), wait = ?unsettled, "the store just failed over; letting replicas write what they hold first");
            tokio::time::sleep(unsettled).await;
        }
        if !unsettled.is_zero() && self.settled_by_store(flight, need).await {
            attempt.end().await;
            return Outcome::Settled;
        }
        let interrupted = match attempt.begin().await {
            Ok(interrupted) => interrupted,
            Err(error) => return Outcome::Failed(format!("cannot record the refresh: {error}")),
        };
        failpoint::hit("before_zoom");
        if !attempt.lease_held() {
            // This process froze past its lease: another replica may own the
            // refresh now and may already have rotated the token we would send.
            tracing::warn!(grant = %self.key(), "refresh lock lapsed before the call to Zoom; not calling it");
            attempt.end().await;
            return match self.settled_by_store(flight, need).await {
                true => Outcome::Settled,
                false => Outcome::Failed("the refresh lock lapsed before the call to Zoom".into()),
            };
        }
        failpoint::hit("calling_zoom");
        // Dated when the request left: a process that stalls after Zoom answers
        // must not claim a longer lifetime than Zoom gave, nor look newer than a
        // refresh another replica made meanwhile (`persist` compares the dates).
        let sent_ms = self.ctx.clock.now_ms();
        let (kind, result) = self.call_zoom(&flight.record).await;
        failpoint::hit("after_zoom");
        let label = result.as_ref().map_or_else(ZoomTokenError::label, |_| "ok");
        self.ctx.metrics.token_call(kind, label);
        match result {
            Ok(issued) => {
                let mut next = flight.record.rotated(&issued, sent_ms);
                identity::learn_account(&mut next, &issued.access_token);
                let persist = self.persist(next).await;
                failpoint::hit("after_write");
                let held = persist.is_held();
                self.install(flight, persist.into_record());
                if held {
                    attempt.keep_marker();
                } else {
                    attempt.end().await;
                }
                self.announce().await;
                failpoint::hit("after_publish");
                let seconds = started.elapsed().as_secs_f64();
                self.ctx.metrics.refresh_seconds.observe(seconds);
                tracing::info!(grant = %self.key(), version = flight.record.version, "token refreshed");
                Outcome::Rotated
            }
            Err(error) if error.is_invalid_grant() => {
                self.on_invalid_grant(flight, attempt, interrupted).await
            }
            Err(error @ ZoomTokenError::Rejected { .. }) => {
                attempt.end().await;
                Outcome::Refused(error)
            }
            Err(error) => {
                attempt.end().await;
                Outcome::Failed(error.to_string())
            }
        }
    }

    /// Turns an outcome into the caller's answer, and schedules the next
    /// attempt after a failure (capped, jittered backoff).
    pub(super) fn settle(
        &self,
        flight: &mut Flight,
        outcome: Outcome,
    ) -> Result<Arc<Current>, super::TokenError> {
        use super::TokenError;
        let error = match outcome {
            Outcome::Rotated | Outcome::Settled => {
                let now = self.ctx.clock.now_ms();
                return usable(self.current(), now, flight);
            }
            Outcome::Dead => return Err(TokenError::Dead),
            Outcome::Failed(reason) => TokenError::Unavailable(reason),
            Outcome::Limbo => TokenError::Unavailable(
                "another replica rotated the token and has not stored it yet".into(),
            ),
            Outcome::Refused(ZoomTokenError::Rejected { status, body, .. }) => {
                TokenError::Refused { status, body }
            }
            Outcome::Refused(other) => TokenError::Unavailable(other.to_string()),
        };
        let now = self.ctx.clock.now_ms();
        flight.failures = flight.failures.saturating_add(1);
        self.refresh_failing
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let wait = backoff(&self.ctx.refresh.load(), flight.failures);
        flight.retry_at_ms = now + wait.as_millis() as u64;
        tracing::warn!(grant = %self.key(), %error, retry_in = ?wait, "refresh failed; will retry");
        flight.last_error = Some(error.clone());
        Err(error)
    }

    /// Zoom refused the refresh token. Another writer may have rotated it first:
    /// re-read, and only if the store has nothing newer, declare the grant dead.
    /// If another replica's refresh was left unfinished (it froze or crashed
    /// after calling Zoom), its rotated token may still arrive: wait a while.
    async fn on_invalid_grant(
        self: &Arc<Self>,
        flight: &mut Flight,
        attempt: Attempt,
        interrupted: bool,
    ) -> Outcome {
        if self.reread(flight).await && !flight.record.is_dead() {
            tracing::info!(grant = %self.key(), "invalid_grant was a lost race; using the newer grant");
            attempt.end().await;
            return Outcome::Settled;
        }
        if self.ctx.adopting.any() {
            // Zoom may have refused our token because it just issued this
            // user's new ones to an adoption still on its way to this grant.
            attempt.end().await;
            return Outcome::Failed(
                "Zoom refused the refresh token while an authorization is being adopted".into(),
            );
        }
        let now = self.ctx.clock.now_ms();
        if interrupted {
            let since = *flight.limbo_since_ms.get_or_insert(now);
            if now.saturating_sub(since) < LIMBO_MAX_MS {
                attempt.keep_marker();
                return Outcome::Limbo;
            }
        }
        let dead = flight
            .record
            .killed("Zoom answered invalid_grant to the refresh token");
        tracing::error!(grant = %self.key(), "grant is dead: Zoom refused its refresh token; the user must authorize again");
        let before = flight.record.state.clone();
        let persist = self.persist(dead).await;
        let record = persist.into_record();
        self.raise_change(&before, &record).await;
        self.install(flight, record);
        attempt.end().await;
        self.announce().await;
        Outcome::Dead
    }

    /// Re-reads the store; true if what it holds (another replica's refresh)
    /// leaves nothing to do.
    async fn settled_by_store(&self, flight: &mut Flight, need: &Need) -> bool {
        self.reread(flight).await && !need.holds(&self.current(), self.ctx.clock.now_ms())
    }

    async fn call_zoom(&self, record: &Grant) -> (&'static str, Result<Issued, ZoomTokenError>) {
        let client_id = &self.key().client_id;
        let source = &self.ctx.source;
        match (&self.key().subject, &record.refresh_token) {
            (Subject::Account(account_id), _) => {
                let mint = Mint::Account(account_id);
                ("mint", source.mint(client_id, mint).await)
            }
            (Subject::App, _) => ("mint", source.mint(client_id, Mint::App).await),
            (_, Some(token)) => ("refresh", source.refresh(client_id, token).await),
            // A user grant without a refresh token cannot be refreshed: as dead as a refused one.
            (_, None) => ("refresh", Err(ZoomTokenError::invalid_grant())),
        }
    }
}

pub(super) fn usable(
    cur: Arc<Current>,
    now: UnixMillis,
    flight: &Flight,
) -> Result<Arc<Current>, super::TokenError> {
    match cur.freshness(now, 0) {
        Freshness::Dead => Err(super::TokenError::Dead),
        Freshness::Expired => Err(last_error(flight)),
        Freshness::Fresh | Freshness::Stale => Ok(cur),
    }
}

pub(super) fn last_error(flight: &Flight) -> super::TokenError {
    flight.last_error.clone().unwrap_or_else(|| {
        super::TokenError::Unavailable("the token expired and no refresh succeeded yet".into())
    })
}

/// Capped exponential backoff with jitter in [50%, 100%].
pub(super) fn backoff(refresh: &config::Refresh, failures: u32) -> Duration {
    let exp = refresh
        .backoff_min
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    let capped = exp.min(refresh.backoff_max);
    let jitter = rand::rng().random_range(0.5..=1.0);
    capped.mul_f64(jitter)
}
