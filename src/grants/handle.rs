//! One grant's live state and its single-flight refresher.
//!
//! Readers take the current token with one atomic load ([`ArcSwap`]). Every
//! change (refresh, mint, adoption, death) happens under the grant's
//! `tokio::sync::Mutex`, held across the whole re-read → Zoom → persist →
//! publish sequence; that mutex is what makes a refresh single-flight.
//! Waiters that queued behind a refresh do not start another one: they see
//! that an attempt completed while they waited (`attempts`) and take its
//! outcome, so many callers of an expired grant cause exactly one Zoom call.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use rand::Rng as _;
use tokio::sync::{watch, Mutex};

use super::current::{Current, Freshness};
use super::model::{Binding, Grant, GrantState};
use super::vtoken::Signer;
use super::{GrantKey, Subject};
use crate::clock::{Clock, UnixMillis};
use crate::config;
use crate::failpoint;
use crate::metrics::Metrics;
use crate::oauth::{TokenResponse, ZoomTokenClient, ZoomTokenError};
use crate::store::{GrantStore, StoreError};

/// What every grant's refresher shares.
#[derive(Debug)]
pub struct RefreshCtx {
    pub zoom: ZoomTokenClient,
    pub store: Arc<dyn GrantStore>,
    pub clock: Clock,
    pub refresh: config::Refresh,
    pub metrics: Metrics,
    /// Signs and verifies callers' virtual tokens.
    pub signer: Signer,
    /// Flips to `true` on shutdown; background loops end.
    pub shutdown: watch::Receiver<bool>,
}

/// Why no token can be had. The text is safe to show callers: no secrets.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the grant is dead: Zoom refused its refresh token, so the user must authorize again")]
    Dead,
    #[error("no valid Zoom access token: {0}")]
    Unavailable(String),
}

/// A grant: its published token and its refresher.
#[derive(Debug)]
pub struct GrantHandle {
    /// Shared with the registry's index, which is keyed by it.
    key: Arc<GrantKey>,
    current: ArcSwap<Current>,
    /// The single-flight lock; it also guards the full record and the backoff state.
    flight: Mutex<Flight>,
    /// Completed refresh attempts; waiters compare it to see that one ran meanwhile.
    attempts: AtomicU64,
    /// A background refresh task is running.
    background: AtomicBool,
    /// A rotated token is held in memory only: the store refused it.
    unpersisted: AtomicBool,
    last_used_ms: AtomicU64,
    /// Ids of unrevoked bindings, read on every virtual-token request.
    live_bindings: ArcSwap<HashSet<String>>,
    /// (hash of a legacy refresh token, binding id) pairs.
    adopted: ArcSwap<Vec<(String, String)>>,
    ctx: Arc<RefreshCtx>,
}

#[derive(Debug)]
struct Flight {
    record: Grant,
    failures: u32,
    retry_at_ms: UnixMillis,
    last_error: Option<TokenError>,
    /// Since when Zoom has refused our refresh token while another replica's
    /// refresh was left unfinished: its rotated token may still be written.
    limbo_since_ms: Option<UnixMillis>,
}

/// How long to wait for an interrupted replica to write the token it rotated
/// before calling the grant dead. Past a lease or two, that replica is gone.
const LIMBO_MAX_MS: u64 = 5 * 60 * 1000;

/// Counts an attempt when dropped, whichever way the attempt ended.
struct AttemptDone<'a>(&'a AtomicU64);

// === impl GrantHandle ===

impl GrantHandle {
    pub fn new(record: Grant, ctx: Arc<RefreshCtx>) -> Arc<Self> {
        let current = ArcSwap::from_pointee(snapshot(&record));
        let live_bindings = ArcSwap::new(live_set(&record));
        let adopted = ArcSwap::new(adopted_list(&record));
        Arc::new(Self {
            key: Arc::new(record.key.clone()),
            current,
            flight: Mutex::new(Flight {
                record,
                failures: 0,
                retry_at_ms: 0,
                last_error: None,
                limbo_since_ms: None,
            }),
            attempts: AtomicU64::new(0),
            background: AtomicBool::new(false),
            unpersisted: AtomicBool::new(false),
            last_used_ms: AtomicU64::new(0),
            live_bindings,
            adopted,
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

    pub fn is_unpersisted(&self) -> bool {
        self.unpersisted.load(Ordering::Acquire)
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
                let result = Box::pin(
                    self.refresh_while(|c, now| c.freshness(now, 0) == Freshness::Expired),
                )
                .await;
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
        sent: &Current,
    ) -> Result<Arc<Current>, TokenError> {
        Box::pin(self.refresh_while(|c, _| c.same_token(sent))).await
    }

    /// Refreshes now, whatever the token's state (admin `POST /grants/{id}/refresh`, keep-alive).
    pub async fn force_refresh(self: &Arc<Self>) -> Result<Arc<Current>, TokenError> {
        let seen = self.current.load_full();
        self.refresh_while(|c, _| c.same_token(&seen) && c.dead.is_none())
            .await
    }

    /// Replaces the tokens with ones the caller just obtained from Zoom (a code
    /// exchange, or a legacy refresh token forwarded once). Zoom has revoked the
    /// old pair, so there is nothing to keep; the grant is alive again.
    pub async fn adopt(self: &Arc<Self>, tokens: &TokenResponse) -> Arc<Current> {
        let mut flight = self.flight.lock().await;
        // Other replicas must not refresh the pair being replaced meanwhile.
        let _lease = self.ctx.store.lock(&self.key).await;
        self.reread(&mut flight).await;
        let now = self.ctx.clock.now_ms();
        let new = flight.record.rotated(tokens, now);
        let new = self.persist(new).await;
        self.install(&mut flight, new);
        let _ = self.ctx.store.announce(&self.key).await;
        self.current.load_full()
    }

    /// Adds a caller binding and persists it before returning.
    pub async fn add_binding(self: &Arc<Self>, binding: Binding) -> Result<(), StoreError> {
        let mut flight = self.flight.lock().await;
        self.update(&mut flight, |g| {
            if g.live_bindings().any(|b| b.id == binding.id) {
                None
            } else {
                Some(g.with_binding(binding.clone()))
            }
        })
        .await
    }

    /// Revokes a binding; returns how many live bindings remain.
    pub async fn revoke_binding(self: &Arc<Self>, id: &str) -> Result<usize, StoreError> {
        let mut flight = self.flight.lock().await;
        self.update(&mut flight, |g| Some(g.with_revoked(id)))
            .await?;
        Ok(flight.record.live_bindings().count())
    }

    /// Writes `change` of the record (bindings only; tokens stay as they are).
    /// On a version conflict another replica wrote first: re-read and re-apply.
    async fn update(
        &self,
        flight: &mut Flight,
        change: impl Fn(&Grant) -> Option<Grant>,
    ) -> Result<(), StoreError> {
        let mut tries = 0;
        loop {
            let Some(next) = change(&flight.record) else {
                return Ok(());
            };
            match self.ctx.store.save(&next).await {
                Ok(()) => {
                    self.replace_record(flight, next);
                    let _ = self.ctx.store.announce(&self.key).await;
                    return Ok(());
                }
                Err(StoreError::Conflict { .. }) if tries < 3 => {
                    tries += 1;
                    self.reread(flight).await;
                }
                Err(error) => return Err(error),
            }
        }
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

    /// The live binding a legacy caller got for the real refresh token hashed `hash`.
    pub fn binding_adopted_from(&self, hash: &str) -> Option<String> {
        self.adopted
            .load()
            .iter()
            .find(|(h, _)| h == hash)
            .map(|(_, id)| id.clone())
    }

    /// Runs one refresh if `need` still holds once the lock is held, unless an
    /// attempt already ran while this caller waited, or backoff forbids one.
    async fn refresh_while(
        self: &Arc<Self>,
        need: impl Fn(&Current, UnixMillis) -> bool,
    ) -> Result<Arc<Current>, TokenError> {
        let seen_attempts = self.attempts.load(Ordering::Acquire);
        let mut flight = self.flight.lock().await;
        let cur = self.current.load_full();
        let now = self.ctx.clock.now_ms();
        if !need(&cur, now) || cur.dead.is_some() {
            return usable(cur, now, &flight);
        }
        if self.attempts.load(Ordering::Acquire) != seen_attempts || now < flight.retry_at_ms {
            return Err(last_error(&flight));
        }
        self.attempt(&mut flight, &need).await
    }

    /// One refresh, under the lock: re-read → Zoom → persist → publish.
    async fn attempt(
        self: &Arc<Self>,
        flight: &mut Flight,
        need: &impl Fn(&Current, UnixMillis) -> bool,
    ) -> Result<Arc<Current>, TokenError> {
        let _done = AttemptDone(&self.attempts);
        let started = Instant::now();
        // Across replicas, one refresher per grant: without the lock, never call Zoom.
        let lease = match self.ctx.store.lock(&self.key).await {
            Ok(lease) => lease,
            Err(error) => {
                return Err(self.failed(flight, format!("cannot take the refresh lock: {error}")))
            }
        };
        if let Some(done) = self.settled_by_store(flight, need).await {
            return done;
        }
        let interrupted = match self.ctx.store.begin_refresh(&self.key).await {
            Ok(interrupted) => interrupted,
            Err(error) => {
                return Err(self.failed(flight, format!("cannot record the refresh: {error}")))
            }
        };
        failpoint::hit("before_zoom");
        if !lease.still_held() {
            return self.lapsed_before_zoom(flight, need).await;
        }
        failpoint::hit("calling_zoom");
        // Tokens are dated when the request left, not when we got round to the
        // answer: a process that stalls after Zoom answers must neither claim a
        // longer lifetime than Zoom gave, nor look newer than a refresh another
        // replica made meanwhile (`persist` compares `refreshed_at_ms`).
        let sent_ms = self.ctx.clock.now_ms();
        let (kind, result) = self.call_zoom(&flight.record).await;
        failpoint::hit("after_zoom");
        let label = result.as_ref().map_or_else(ZoomTokenError::label, |_| "ok");
        self.ctx.metrics.token_call(kind, label);
        match result {
            Ok(tokens) => {
                let new = self.persist(flight.record.rotated(&tokens, sent_ms)).await;
                failpoint::hit("after_write");
                self.install(flight, new);
                let _ = self.ctx.store.end_refresh(&self.key).await;
                let _ = self.ctx.store.announce(&self.key).await;
                failpoint::hit("after_publish");
                self.ctx
                    .metrics
                    .refresh_seconds
                    .observe(started.elapsed().as_secs_f64());
                tracing::info!(grant = %self.key, version = flight.record.version, "token refreshed");
                Ok(self.current.load_full())
            }
            Err(error) if error.is_invalid_grant() => {
                self.on_invalid_grant(flight, interrupted).await
            }
            Err(error) => {
                let _ = self.ctx.store.end_refresh(&self.key).await;
                Err(self.failed(flight, error.to_string()))
            }
        }
    }

    /// Records a failed attempt and schedules the next one (capped, jittered backoff).
    fn failed(&self, flight: &mut Flight, reason: String) -> TokenError {
        let now = self.ctx.clock.now_ms();
        flight.failures = flight.failures.saturating_add(1);
        let wait = backoff(&self.ctx.refresh, flight.failures);
        flight.retry_at_ms = now + wait.as_millis() as u64;
        tracing::warn!(grant = %self.key, error = %reason, retry_in = ?wait, "refresh failed; will retry");
        flight.last_error = Some(TokenError::Unavailable(reason));
        last_error(flight)
    }

    /// Loads the stored grant; adopts it if another writer got further. Returns
    /// whether it did.
    async fn reread(&self, flight: &mut Flight) -> bool {
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

    async fn call_zoom(
        &self,
        record: &Grant,
    ) -> (&'static str, Result<TokenResponse, ZoomTokenError>) {
        let client_id = &self.key.client_id;
        match &self.key.subject {
            Subject::Account(account_id) => {
                ("mint", self.ctx.zoom.mint(client_id, account_id).await)
            }
            Subject::User(_) => match &record.refresh_token {
                Some(token) => ("refresh", self.ctx.zoom.refresh(client_id, token).await),
                None => (
                    "refresh",
                    Err(ZoomTokenError::Rejected {
                        status: 400,
                        error: "invalid_grant".into(),
                        body: bytes::Bytes::new(),
                    }),
                ),
            },
        }
    }

    /// Zoom refused the refresh token. Another writer may have rotated it first:
    /// re-read, and only if the store has nothing newer, declare the grant dead.
    /// If another replica's refresh was left unfinished (it froze or crashed
    /// after calling Zoom), its rotated token may still arrive: wait a while.
    async fn on_invalid_grant(
        self: &Arc<Self>,
        flight: &mut Flight,
        interrupted: bool,
    ) -> Result<Arc<Current>, TokenError> {
        if self.reread(flight).await && !flight.record.is_dead() {
            tracing::info!(grant = %self.key, "invalid_grant was a lost race; using the newer grant");
            let _ = self.ctx.store.end_refresh(&self.key).await;
            return Ok(self.current.load_full());
        }
        let now = self.ctx.clock.now_ms();
        if interrupted {
            let since = *flight.limbo_since_ms.get_or_insert(now);
            if now.saturating_sub(since) < LIMBO_MAX_MS {
                // Leave the refresh marked unfinished, so the next attempt knows too.
                return Err(self.failed(
                    flight,
                    "another replica rotated the token and has not stored it yet".into(),
                ));
            }
        }
        let dead = flight
            .record
            .killed("Zoom answered invalid_grant to the refresh token");
        tracing::error!(grant = %self.key, "grant is dead: Zoom refused its refresh token; the user must authorize again");
        let dead = self.persist(dead).await;
        self.install(flight, dead);
        let _ = self.ctx.store.end_refresh(&self.key).await;
        let _ = self.ctx.store.announce(&self.key).await;
        Err(TokenError::Dead)
    }

    /// Re-reads the store; if what it holds (another replica's refresh) leaves
    /// nothing to do, that is the answer.
    async fn settled_by_store(
        &self,
        flight: &mut Flight,
        need: &impl Fn(&Current, UnixMillis) -> bool,
    ) -> Option<Result<Arc<Current>, TokenError>> {
        if !self.reread(flight).await {
            return None;
        }
        let cur = self.current.load_full();
        let now = self.ctx.clock.now_ms();
        (!need(&cur, now)).then(|| usable(cur, now, flight))
    }

    /// This process froze past its lease between taking the lock and calling
    /// Zoom (a pause, a stalled VM): another replica may own the refresh now, and
    /// may already have rotated the refresh token this one would send. Calling
    /// Zoom would only earn an `invalid_grant`; take what is stored instead.
    async fn lapsed_before_zoom(
        self: &Arc<Self>,
        flight: &mut Flight,
        need: &impl Fn(&Current, UnixMillis) -> bool,
    ) -> Result<Arc<Current>, TokenError> {
        tracing::warn!(grant = %self.key, "refresh lock lapsed before the call to Zoom; not calling it");
        let _ = self.ctx.store.end_refresh(&self.key).await;
        if let Some(done) = self.settled_by_store(flight, need).await {
            return done;
        }
        Err(self.failed(
            flight,
            "the refresh lock lapsed before the call to Zoom".into(),
        ))
    }

    /// Makes `record` the grant's state and publishes its token.
    fn install(&self, flight: &mut Flight, record: Grant) {
        self.current.store(Arc::new(snapshot(&record)));
        self.replace_record(flight, record);
        flight.failures = 0;
        flight.retry_at_ms = 0;
        flight.last_error = None;
        flight.limbo_since_ms = None;
    }

    /// Swaps the record and its binding indexes; the published token is untouched.
    fn replace_record(&self, flight: &mut Flight, record: Grant) {
        self.live_bindings.store(live_set(&record));
        self.adopted.store(adopted_list(&record));
        flight.record = record;
    }

    /// Writes `record` durably and returns what to install. On failure the new
    /// tokens stay in memory (they are the only valid ones now) and a retry loop
    /// keeps writing until it lands.
    ///
    /// A version conflict means another replica wrote while we were calling Zoom
    /// (our lease lapsed). Zoom just accepted our call, so our tokens are the
    /// newest unless the stored grant was authorized again after we called:
    /// rebase ours onto the stored version, or take theirs.
    async fn persist(self: &Arc<Self>, record: Grant) -> Grant {
        let started = Instant::now();
        let mut record = record;
        for _ in 0..3 {
            match self.ctx.store.save(&record).await {
                Ok(()) => {
                    self.ctx
                        .metrics
                        .persist_seconds
                        .observe(started.elapsed().as_secs_f64());
                    self.unpersisted.store(false, Ordering::Release);
                    return record;
                }
                Err(StoreError::Conflict { stored, .. }) => {
                    match self.ctx.store.load(&self.key).await {
                        Ok(Some(theirs))
                            if theirs.refreshed_at_ms > record.refreshed_at_ms
                                && !theirs.is_dead() =>
                        {
                            tracing::info!(grant = %self.key, "a newer authorization was stored meanwhile; taking it");
                            return theirs;
                        }
                        _ => {
                            tracing::warn!(grant = %self.key, stored, "store moved on while we called Zoom; rebasing our newer tokens");
                            record.version = stored.max(record.version) + 1;
                            if let Ok(Some(theirs)) = self.ctx.store.load(&self.key).await {
                                record.bindings = merge_bindings(&theirs, &record);
                            }
                        }
                    }
                }
                Err(error) => {
                    tracing::error!(grant = %self.key, %error, "ROTATED REFRESH TOKEN NOT PERSISTED; keeping it in memory and retrying");
                    if !self.unpersisted.swap(true, Ordering::AcqRel) {
                        let this = self.clone();
                        tokio::spawn(async move { this.retry_persist().await });
                    }
                    return record;
                }
            }
        }
        record
    }

    fn ahead_ms(&self) -> u64 {
        self.ctx.refresh.ahead.as_millis() as u64
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
    async fn background_refresh(self: &Arc<Self>, stale: &Current) {
        let mut shutdown = self.ctx.shutdown.clone();
        loop {
            match self.refresh_while(|c, _| c.same_token(stale)).await {
                Ok(_) | Err(TokenError::Dead) => return,
                Err(TokenError::Unavailable(_)) => {}
            }
            let floor =
                self.ctx.clock.now_ms() + self.ctx.refresh.backoff_min.as_millis() as u64 / 2;
            let retry_at = self.flight.lock().await.retry_at_ms.max(floor);
            tokio::select! {
                _ = self.ctx.clock.sleep_until(retry_at) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    }

    /// Writes the in-memory record until the store takes it.
    async fn retry_persist(&self) {
        let mut failures = 0;
        let mut shutdown = self.ctx.shutdown.clone();
        while self.is_unpersisted() {
            {
                let flight = self.flight.lock().await;
                match self.ctx.store.save(&flight.record).await {
                    Ok(()) => {
                        self.unpersisted.store(false, Ordering::Release);
                        tracing::info!(grant = %self.key, "rotated refresh token persisted after retry");
                        return;
                    }
                    Err(StoreError::Conflict { .. }) => {
                        // The store holds a newer version; ours is superseded, not lost.
                        self.unpersisted.store(false, Ordering::Release);
                        return;
                    }
                    Err(error) => {
                        tracing::error!(grant = %self.key, %error, "persist retry failed")
                    }
                }
            }
            failures += 1;
            tokio::select! {
                _ = self.ctx.clock.sleep(backoff(&self.ctx.refresh, failures)) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    }

    /// When the keep-alive sweep should refresh this grant anyway.
    pub(crate) fn keepalive_due(&self, now: UnixMillis) -> bool {
        let cur = self.current.load();
        let keepalive = self.ctx.refresh.keepalive.as_millis() as u64;
        matches!(self.key.subject, Subject::User(_))
            && cur.dead.is_none()
            && cur.bearer.is_some()
            && now.saturating_sub(cur.issued_at_ms) >= keepalive
    }
}

impl Drop for AttemptDone<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

fn live_set(record: &Grant) -> Arc<HashSet<String>> {
    // Most grants have no binding (static callers) or few: the empty set is shared.
    static NONE: LazyLock<Arc<HashSet<String>>> = LazyLock::new(Arc::default);
    let set: HashSet<String> = record.live_bindings().map(|b| b.id.clone()).collect();
    if set.is_empty() {
        NONE.clone()
    } else {
        Arc::new(set)
    }
}

fn adopted_list(record: &Grant) -> Arc<Vec<(String, String)>> {
    static NONE: LazyLock<Arc<Vec<(String, String)>>> = LazyLock::new(Arc::default);
    let list: Vec<(String, String)> = record
        .live_bindings()
        .filter_map(|b| b.adopted_from.clone().map(|h| (h, b.id.clone())))
        .collect();
    if list.is_empty() {
        NONE.clone()
    } else {
        Arc::new(list)
    }
}

/// Bindings of both records: those another replica added while we were busy survive.
fn merge_bindings(theirs: &Grant, ours: &Grant) -> Vec<Binding> {
    let mut merged = theirs.bindings.clone();
    for b in &ours.bindings {
        match merged.iter_mut().find(|m| m.id == b.id) {
            Some(m) => m.revoked |= b.revoked,
            None => merged.push(b.clone()),
        }
    }
    merged
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
            GrantState::Live => None,
            GrantState::Dead { reason } => Some(reason.clone()),
        },
    }
}

fn usable(cur: Arc<Current>, now: UnixMillis, flight: &Flight) -> Result<Arc<Current>, TokenError> {
    match cur.freshness(now, 0) {
        Freshness::Dead => Err(TokenError::Dead),
        Freshness::Expired => Err(last_error(flight)),
        Freshness::Fresh | Freshness::Stale => Ok(cur),
    }
}

fn last_error(flight: &Flight) -> TokenError {
    flight.last_error.clone().unwrap_or_else(|| {
        TokenError::Unavailable("the token expired and no refresh succeeded yet".into())
    })
}

/// Capped exponential backoff with jitter in [50%, 100%].
fn backoff(refresh: &config::Refresh, failures: u32) -> Duration {
    let exp = refresh
        .backoff_min
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    let capped = exp.min(refresh.backoff_max);
    let jitter = rand::rng().random_range(0.5..=1.0);
    capped.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_and_jittered() {
        let refresh = config::Refresh {
            ahead: Duration::from_secs(300),
            keepalive: Duration::from_secs(86400),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
        };
        for failures in 1..40 {
            let d = backoff(&refresh, failures);
            assert!(d <= Duration::from_secs(60), "{failures}: {d:?}");
            assert!(d >= Duration::from_millis(500), "{failures}: {d:?}");
        }
        assert!(backoff(&refresh, 1) <= Duration::from_secs(1));
    }
}
