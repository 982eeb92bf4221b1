//! The shared store for many replicas: grants in Redis, sealed with AES-256-GCM
//! as in the file store, with a fenced per-grant refresh lock and pub/sub
//! announcements (DESIGN §3.6), and the delivery queues ([`outbox`]). Key
//! names and scripts: [`scripts`].
//!
//! Commands go through the connection [`Primary`] holds to the primary as last
//! known (the URL's host, or the one the Sentinels name, followed through
//! failovers). It reconnects by itself and is set to fail fast: while Redis is down a refresh must not wait long for a
//! lock it cannot get, and `/readyz` must answer. The registry keeps serving the
//! tokens it holds in memory meanwhile.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;

mod changes;
mod lock;
mod outbox;
mod primary;
mod scripts;

use self::changes::Subscriber;
use self::lock::Locker;
pub use self::primary::Primary;
use self::scripts::{Keys, Scripts};
use super::crypto::{Cipher, SIGNING_KEY_LABEL};
use super::file::open::given_key;
use super::{Coordinator, GrantStore, Lease, StoreError, StoreFuture};
use crate::config::{KeySource, RedisStore as RedisConfig};
use crate::grants::{Grant, GrantKey};

const KEY_CHECK_PLAINTEXT: &[u8] = b"grantmux store key check v1";
/// How long an unfinished refresh stays on record. Past the refresher's limbo
/// (5 min) the question it answers no longer matters.
const INTENT_TTL: Duration = Duration::from_secs(15 * 60);
/// After following a failover, refreshes wait this long before calling Zoom:
/// every replica follows within a second or so, and one that holds a rotation
/// the old primary lost writes it to the new one as it follows. A refresh
/// that waited then finds the newer token in the store instead of sending
/// Zoom a refresh token it has already revoked.
const FAILOVER_SETTLE: Duration = Duration::from_secs(3);
/// After following a failover, how long every refresh is treated as possibly
/// interrupted. Replicas holding unwritten rotations write them as soon as
/// they follow (a second or two after Sentinel's switch).
const FAILOVER_GRACE: Duration = Duration::from_secs(60);
/// `load_all` reads this many grants per round trip.
const LOAD_BATCH: usize = 500;

/// A Redis-backed, encrypted [`GrantStore`] for many replicas. Cheap to clone.
/// `Debug` shows no URL: it may hold a password.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    primary: Primary,
    /// `store.min_replicas_acked` and `store.replica_ack_timeout`.
    acks: (u32, Duration),
    cipher: Cipher,
    signing_key: [u8; 32],
    scripts: Arc<Scripts>,
    locker: Locker,
    /// Tags our announcements, so the subscriber skips them.
    instance: String,
    changes: broadcast::Sender<GrantKey>,
    _subscriber: Subscriber,
}

// === impl RedisStore ===

impl RedisStore {
    /// The primary, for the rate-limit budgets that replicas share
    /// (`ratelimit::SharedBudget`).
    pub fn primary(&self) -> Primary {
        self.inner.primary.clone()
    }

    /// Connects, checks that Redis holds grants sealed with this key (or none),
    /// and subscribes to announcements.
    pub async fn open(config: &RedisConfig, key: &KeySource) -> Result<Self, StoreError> {
        let key = given_key(key)?.ok_or_else(|| {
            StoreError::Key("the redis backend needs store.key_env or store.key_file".into())
        })?;
        let primary = Primary::open(&config.url, config.sentinel.as_ref()).await?;
        let cipher = key.cipher();
        check_key(&primary.conn(), &cipher).await?;
        let instance = lock::random_token();
        let (changes, _) = broadcast::channel(changes::CAPACITY);
        let subscriber =
            Subscriber::start(primary.clone(), instance.clone(), changes.clone()).await?;
        let scripts = Arc::new(Scripts::new());
        let lease = config.lock_lease;
        let locker = Locker {
            primary: primary.clone(),
            scripts: scripts.clone(),
            held: Arc::new(Mutex::new(HashMap::new())),
            lease,
        };
        let acks = (config.min_replicas_acked, config.replica_ack_timeout);
        tracing::info!(lock_lease = ?lease, min_replicas_acked = acks.0, "redis store open");
        Ok(Self {
            inner: Arc::new(Inner {
                primary,
                acks,
                cipher,
                signing_key: key.derive(SIGNING_KEY_LABEL),
                scripts,
                locker,
                instance,
                changes,
                _subscriber: subscriber,
            }),
        })
    }
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("lease", &self.inner.locker.lease)
            .finish_non_exhaustive()
    }
}

impl GrantStore for RedisStore {
    fn load_all(&self) -> StoreFuture<'_, Vec<Grant>> {
        Box::pin(self.inner.load_all())
    }

    fn load<'a>(&'a self, key: &'a GrantKey) -> StoreFuture<'a, Option<Grant>> {
        Box::pin(self.inner.load(key.id()))
    }

    fn save<'a>(&'a self, grant: &'a Grant) -> StoreFuture<'a, ()> {
        Box::pin(self.inner.save(grant))
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let _: String = redis::cmd("PING")
                .query_async(&mut self.inner.primary.conn())
                .await
                .map_err(unavailable)?;
            Ok(())
        })
    }

    fn signing_key(&self) -> Option<[u8; 32]> {
        Some(self.inner.signing_key)
    }
}

impl Coordinator for RedisStore {
    fn lock<'a>(&'a self, key: &'a GrantKey) -> StoreFuture<'a, Lease> {
        Box::pin(async move {
            let held = self.inner.locker.acquire(&key.id()).await?;
            Ok(Lease::held(held))
        })
    }

    fn begin_refresh<'a>(&'a self, key: &'a GrantKey) -> StoreFuture<'a, bool> {
        Box::pin(self.inner.begin_refresh(key.id()))
    }

    fn end_refresh<'a>(&'a self, key: &'a GrantKey) -> StoreFuture<'a, ()> {
        Box::pin(self.inner.end_refresh(key.id()))
    }

    fn announce<'a>(&'a self, key: &'a GrantKey) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let message = format!("{} {}", self.inner.instance, key.id());
            let _: i64 = redis::cmd("PUBLISH")
                .arg(Keys::channel())
                .arg(message)
                .query_async(&mut self.inner.primary.conn())
                .await
                .map_err(unavailable)?;
            Ok(())
        })
    }

    fn unsettled_for(&self) -> Duration {
        self.inner.primary.unsettled_for(FAILOVER_SETTLE)
    }

    fn changes(&self) -> Option<broadcast::Receiver<GrantKey>> {
        Some(self.inner.changes.subscribe())
    }
}

// === impl Inner ===

impl Inner {
    async fn load_all(&self) -> Result<Vec<Grant>, StoreError> {
        let mut conn = self.primary.conn();
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(Keys::index())
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let mut grants = Vec::with_capacity(ids.len());
        for batch in ids.chunks(LOAD_BATCH) {
            let mut pipe = redis::pipe();
            for id in batch {
                pipe.cmd("HGET").arg(Keys::grant(id)).arg("g");
            }
            let sealed: Vec<Option<Vec<u8>>> =
                pipe.query_async(&mut conn).await.map_err(unavailable)?;
            for (id, sealed) in batch.iter().zip(sealed) {
                if let Some(sealed) = sealed {
                    grants.push(self.decode(id, &sealed)?);
                }
            }
        }
        Ok(grants)
    }

    async fn load(&self, id: String) -> Result<Option<Grant>, StoreError> {
        let sealed: Option<Vec<u8>> = redis::cmd("HGET")
            .arg(Keys::grant(&id))
            .arg("g")
            .query_async(&mut self.primary.conn())
            .await
            .map_err(unavailable)?;
        sealed.map(|s| self.decode(&id, &s)).transpose()
    }

    /// The fenced write: one script compares the stored version and writes;
    /// then, with `store.min_replicas_acked`, the wait for replicas to hold it.
    async fn save(&self, grant: &Grant) -> Result<(), StoreError> {
        let id = grant.key.id();
        let sealed = self.cipher.seal_grant(grant)?;
        let mut script = self.scripts.save.prepare_invoke();
        script
            .key(Keys::grant(&id))
            .key(Keys::index())
            .arg(grant.version)
            .arg(sealed)
            .arg(&id);
        let (stored, mut conn) = self.invoke_acked(&script).await?;
        match u64::try_from(stored) {
            Err(_) => self.replicated(&mut conn).await,
            Ok(stored) => Err(StoreError::Conflict {
                key: id,
                stored,
                attempted: grant.version,
            }),
        }
    }

    /// Runs a write script on the connection [`Inner::replicated`] waits on,
    /// and returns that connection with the script's answer. Sent once more
    /// if the connection had dropped: it sits idle between writes, so after
    /// Redis restarted or failed over its first command finds it dead (the
    /// repeat waits for the reconnect). Only fenced or idempotent scripts go
    /// through here: a repeat of one that did land is refused by its version,
    /// or harmless.
    pub(super) async fn invoke_acked(
        &self,
        script: &redis::ScriptInvocation<'_>,
    ) -> Result<(i64, redis::aio::ConnectionManager), StoreError> {
        let mut conn = self.primary.acked();
        let answer = match script.invoke_async(&mut conn).await {
            Err(e) if e.is_connection_dropped() || e.is_io_error() => {
                script.invoke_async(&mut conn).await
            }
            done => done,
        };
        Ok((answer.map_err(unavailable)?, conn))
    }

    /// Waits until `store.min_replicas_acked` replicas hold every write sent
    /// on `conn` so far (`WAIT`). Fewer within `store.replica_ack_timeout`:
    /// the write is not durable, since a failover now could lose it, and the
    /// caller treats it as failed (a grant is then held in memory and retried).
    pub(super) async fn replicated(
        &self,
        conn: &mut redis::aio::ConnectionManager,
    ) -> Result<(), StoreError> {
        let (wanted, timeout) = self.acks;
        if wanted == 0 {
            return Ok(());
        }
        let acked: i64 = redis::cmd("WAIT")
            .arg(wanted)
            .arg(timeout.as_millis() as u64)
            .query_async(conn)
            .await
            .map_err(unavailable)?;
        if acked < i64::from(wanted) {
            return Err(StoreError::Unavailable(format!(
                "redis: {acked} of the {wanted} replicas store.min_replicas_acked asks for \
                 took the write within {timeout:?}; it is not durable"
            )));
        }
        Ok(())
    }

    async fn begin_refresh(&self, id: String) -> Result<bool, StoreError> {
        let Some(owner) = self.locker.owner_of(&id) else {
            return Ok(false); // not under our lock: nothing to mark
        };
        let interrupted: i64 = self
            .scripts
            .begin_refresh
            .key(Keys::intent(&id))
            .key(Keys::grant(&id))
            .arg(owner)
            .arg(INTENT_TTL.as_millis() as u64)
            .invoke_async(&mut self.primary.conn())
            .await
            .map_err(unavailable)?;
        // Markers written just before a failover may not have reached the
        // new primary, and a replica may hold a rotated token it has not
        // written there yet: for a while, a refusal from Zoom is treated as
        // such a rotation in flight (the grant waits for it), not a death.
        Ok(interrupted == 1 || self.primary.moved_within(FAILOVER_GRACE))
    }

    async fn end_refresh(&self, id: String) -> Result<(), StoreError> {
        let Some(owner) = self.locker.owner_of(&id) else {
            return Ok(());
        };
        let _: i64 = self
            .scripts
            .end_refresh
            .key(Keys::intent(&id))
            .arg(owner)
            .invoke_async(&mut self.primary.conn())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    fn decode(&self, id: &str, sealed: &[u8]) -> Result<Grant, StoreError> {
        self.cipher.open_grant("redis", id, sealed)
    }
}

/// Writes the key check record if Redis has none, then proves we can open it:
/// replicas configured with different keys must not share one Redis.
async fn check_key(
    conn: &redis::aio::ConnectionManager,
    cipher: &Cipher,
) -> Result<(), StoreError> {
    let mut conn = conn.clone();
    let aad = Keys::key_check();
    let _: Option<String> = redis::cmd("SET")
        .arg(Keys::key_check())
        .arg(cipher.seal(aad.as_bytes(), KEY_CHECK_PLAINTEXT))
        .arg("NX")
        .query_async(&mut conn)
        .await
        .map_err(unavailable)?;
    let stored: Vec<u8> = redis::cmd("GET")
        .arg(Keys::key_check())
        .query_async(&mut conn)
        .await
        .map_err(unavailable)?;
    match cipher.open(aad.as_bytes(), &stored) {
        Ok(text) if text == KEY_CHECK_PLAINTEXT => Ok(()),
        _ => Err(StoreError::Key(
            "Redis holds grants sealed with another store key; every replica must use the \
             same store.key_env / store.key_file"
                .into(),
        )),
    }
}

/// A Redis error as a store error. Redis errors name no password. By value,
/// to fit `map_err`.
#[allow(clippy::needless_pass_by_value)]
fn unavailable(error: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {error}"))
}
