//! A fake Zoom token endpoint and a store that can misbehave on cue, for the
//! refresh core's own tests. The real ones run in `tests/`.

use crate::grants::Mint;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Semaphore};

use crate::clock::Clock;
use crate::config;
use crate::grants::{
    Adopting, Binding, Grant, GrantKey, Identity, Issued, LegacyIndex, RefreshCtx, Registry,
    SourceFuture, Subject, Tasks, TokenSource,
};
use crate::metrics::MetricsRegistry;
use crate::oauth::ZoomTokenError;
use crate::secret::Secret;
use crate::store::{Coordinator, GrantStore, HeldLock, Lease, Local, MemoryStore, StoreFuture};

pub(super) const CLIENT: &str = "app";
pub(super) const USER: &str = "u1";
/// The account `/v2/users/me` names for [`USER`].
pub(super) const ACCOUNT: &str = "acct-1";

/// What the fake answers next; when the script is empty, new tokens.
#[derive(Debug)]
pub(super) enum Answer {
    Transient,
    InvalidGrant,
    Refused,
}

/// Zoom's token endpoint, acting on each call at once: every call is counted
/// (`calls`) before its answer, which waits for a permit if `gated`.
pub(super) struct FakeZoom {
    script: Mutex<VecDeque<Answer>>,
    pub(super) calls: watch::Sender<usize>,
    issued: AtomicU64,
    gate: Option<Semaphore>,
    /// `/v2/users/me` answers with the user.
    pub(super) knows_user: AtomicBool,
    /// ... and with its account ([`ACCOUNT`]).
    pub(super) knows_account: AtomicBool,
    /// Runs at the next call, as another writer acting meanwhile would.
    on_call: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

/// The test's handles on one grant's world.
pub(super) struct World {
    pub(super) zoom: Arc<FakeZoom>,
    pub(super) store: Arc<TestStore>,
    pub(super) registry: Arc<Registry>,
    pub(super) clock: Clock,
    _shutdown: watch::Sender<bool>,
}

/// A memory store with a rival writer, and a coordinator whose lease lapses, on cue.
#[derive(Debug, Default)]
pub(super) struct TestStore {
    pub(super) inner: MemoryStore,
    /// This many next saves find that another writer saved just before.
    pub(super) rivals: AtomicU32,
    /// Leases lapse before they are used (a process that froze).
    pub(super) lapse: AtomicBool,
}

struct Lapsed;

// === impl FakeZoom ===

impl FakeZoom {
    pub(super) fn new(gated: bool) -> Arc<Self> {
        Arc::new(Self {
            script: Mutex::default(),
            calls: watch::channel(0).0,
            issued: AtomicU64::new(0),
            gate: gated.then(|| Semaphore::new(0)),
            knows_user: AtomicBool::new(true),
            knows_account: AtomicBool::new(true),
            on_call: Mutex::default(),
        })
    }

    pub(super) fn then(&self, answer: Answer) {
        self.script.lock().expect("script").push_back(answer);
    }

    pub(super) fn on_next_call(&self, hook: impl FnOnce() + Send + 'static) {
        *self.on_call.lock().expect("hook") = Some(Box::new(hook));
    }

    pub(super) fn count(&self) -> usize {
        *self.calls.borrow()
    }

    /// Lets one gated answer go.
    pub(super) fn release(&self) {
        if let Some(gate) = &self.gate {
            gate.add_permits(1);
        }
    }

    async fn answer(&self) -> Result<Issued, ZoomTokenError> {
        self.calls.send_modify(|n| *n += 1);
        let hook = self.on_call.lock().expect("hook").take();
        if let Some(hook) = hook {
            hook();
        }
        if let Some(gate) = &self.gate {
            gate.acquire().await.expect("gate open").forget();
        }
        let next = self.script.lock().expect("script").pop_front();
        match next {
            None => Ok(self.tokens()),
            Some(Answer::Transient) => Err(ZoomTokenError::Transient("HTTP 503".into())),
            Some(Answer::InvalidGrant) => Err(ZoomTokenError::invalid_grant()),
            Some(Answer::Refused) => Err(ZoomTokenError::Rejected {
                status: 400,
                error: "invalid_request".into(),
                body: bytes::Bytes::from_static(b"{}"),
            }),
        }
    }

    /// Opaque tokens, numbered: `at-1`/`rt-1`, `at-2`/`rt-2`…
    fn tokens(&self) -> Issued {
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        Issued {
            access_token: Secret::new(format!("at-{n}")),
            refresh_token: Some(Secret::new(format!("rt-{n}"))),
            expires_in_secs: 3600,
            scope: Some("meeting:read".into()),
            api_url: None,
        }
    }
}

impl std::fmt::Debug for FakeZoom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeZoom")
            .field("calls", &self.count())
            .finish_non_exhaustive()
    }
}

impl TokenSource for FakeZoom {
    fn refresh<'a>(
        &'a self,
        _: &'a str,
        _: &'a Secret,
    ) -> SourceFuture<'a, Result<Issued, ZoomTokenError>> {
        Box::pin(self.answer())
    }

    fn mint<'a>(
        &'a self,
        _: &'a str,
        _: Mint<'a>,
    ) -> SourceFuture<'a, Result<Issued, ZoomTokenError>> {
        Box::pin(self.answer())
    }

    fn exchange<'a>(
        &'a self,
        _: &'a str,
        _: String,
    ) -> SourceFuture<'a, Result<Issued, ZoomTokenError>> {
        Box::pin(self.answer())
    }

    fn whoami<'a>(&'a self, _: &'a Secret) -> SourceFuture<'a, Option<Identity>> {
        let known = self.knows_user.load(Ordering::SeqCst);
        let account = self.knows_account.load(Ordering::SeqCst);
        Box::pin(async move {
            known.then(|| Identity {
                user_id: USER.to_owned(),
                account_id: account.then(|| ACCOUNT.to_owned()),
            })
        })
    }
}

// === impl TestStore ===

impl GrantStore for TestStore {
    fn load_all(&self) -> StoreFuture<'_, Vec<Grant>> {
        self.inner.load_all()
    }

    fn load<'a>(&'a self, key: &'a GrantKey) -> StoreFuture<'a, Option<Grant>> {
        self.inner.load(key)
    }

    fn save<'a>(&'a self, grant: &'a Grant) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let rival = self
                .rivals
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
            if let (Ok(n), Some(stored)) = (rival, self.inner.load(&grant.key).await?) {
                let mut theirs = stored.with_binding(binding(&format!("rival-{n}")));
                theirs.version = theirs.version.max(grant.version);
                self.inner.save(&theirs).await?;
            }
            self.inner.save(grant).await
        })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        self.inner.ping()
    }
}

impl Coordinator for TestStore {
    fn lock<'a>(&'a self, _: &'a GrantKey) -> StoreFuture<'a, Lease> {
        let lapse = self.lapse.load(Ordering::SeqCst);
        Box::pin(async move {
            Ok(match lapse {
                true => Lease::held(Box::new(Lapsed)),
                false => Lease::local(),
            })
        })
    }

    fn begin_refresh<'a>(&'a self, key: &'a GrantKey) -> StoreFuture<'a, bool> {
        Local.begin_refresh(key)
    }

    fn end_refresh<'a>(&'a self, key: &'a GrantKey) -> StoreFuture<'a, ()> {
        Local.end_refresh(key)
    }

    fn announce<'a>(&'a self, key: &'a GrantKey) -> StoreFuture<'a, ()> {
        Local.announce(key)
    }

    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<GrantKey>> {
        Local.changes()
    }
}

impl HeldLock for Lapsed {
    fn still_held(&self) -> bool {
        false
    }
}

// === impl World ===

impl World {
    /// A user grant whose token expires in `expires_in`, in a registry of its own.
    pub(super) async fn new(zoom: Arc<FakeZoom>, expires_in: Duration) -> Self {
        let world = Self::empty(zoom).await;
        let now = world.clock.now_ms();
        let mut grant = Grant::empty(user_key()).rotated(
            &Issued {
                access_token: Secret::new("at-0"),
                refresh_token: Some(Secret::new("rt-0")),
                expires_in_secs: 0,
                scope: None,
                api_url: None,
            },
            now,
        );
        // Issued an hour before it expires, as Zoom's are.
        grant.expires_at_ms = now + expires_in.as_millis() as u64;
        grant.refreshed_at_ms = grant.expires_at_ms.saturating_sub(3_600_000);
        world.store.inner.save(&grant).await.expect("seeded");
        world.registry.reload(&user_key()).await;
        world
    }

    /// No grant yet.
    pub(super) async fn empty(zoom: Arc<FakeZoom>) -> Self {
        let store = Arc::new(TestStore::default());
        let clock = Clock::new();
        let (shutdown, rx) = watch::channel(false);
        let ctx = Arc::new(RefreshCtx {
            source: zoom.clone(),
            store: store.clone(),
            coord: store.clone(),
            clock: clock.clone(),
            refresh: arc_swap::ArcSwap::from_pointee(config::Refresh {
                ahead: Duration::from_secs(300),
                keepalive: Duration::from_secs(30 * 86400),
                // Long enough that no background retry runs unless the clock is advanced.
                backoff_min: Duration::from_secs(3600),
                backoff_max: Duration::from_secs(7200),
            }),
            metrics: MetricsRegistry::new().metrics,
            shutdown: rx,
            tasks: Tasks::default(),
            legacy: LegacyIndex::default(),
            adopting: Adopting::default(),
            lifecycle: Arc::new(crate::grants::Silent),
        });
        let registry = Registry::load(ctx).await.expect("registry");
        Self {
            zoom,
            store,
            registry,
            clock,
            _shutdown: shutdown,
        }
    }

    pub(super) fn grant(&self) -> Arc<crate::grants::GrantHandle> {
        self.registry.get(&user_key()).expect("grant")
    }

    pub(super) async fn stored(&self) -> Grant {
        self.store
            .inner
            .load(&user_key())
            .await
            .expect("load")
            .expect("stored")
    }
}

pub(super) fn user_key() -> GrantKey {
    GrantKey::new(CLIENT, Subject::User(USER.into()))
}

pub(super) fn binding(id: &str) -> Binding {
    Binding {
        id: id.into(),
        label: "test".into(),
        created_at_ms: 0,
        revoked: false,
        adopted_from: None,
    }
}
