//! The shared store for many replicas: grants in Redis, sealed with AES-256-GCM
//! as in the file store, with a fenced per-grant refresh lock and pub/sub
//! announcements (DESIGN §3.6), and the delivery queues ([`outbox`]). Key
//! names and scripts: [`scripts`].
//!
//! Commands go through one `ConnectionManager`, which reconnects by itself. It
//! is set to fail fast: while Redis is down a refresh must not wait long for a
//! lock it cannot get, and `/readyz` must answer. The registry keeps serving the
//! tokens it holds in memory meanwhile.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::broadcast;

mod changes;
mod lock;
mod outbox;
mod scripts;

use self::changes::Subscriber;
use self::lock::Locker;
use self::scripts::{Keys, Scripts};
use super::crypto::{Cipher, SIGNING_KEY_LABEL};
use super::file::open::given_key;
use super::{Coordinator, GrantStore, Lease, StoreError, StoreFuture};
use crate::config::KeySource;
use crate::grants::{Grant, GrantKey};
use crate::secret::Secret;

const KEY_CHECK_PLAINTEXT: &[u8] = b"grantmux store key check v1";
/// How long an unfinished refresh stays on record. Past the refresher's limbo
/// (5 min) the question it answers no longer matters.
const INTENT_TTL: Duration = Duration::from_secs(15 * 60);
/// `load_all` reads this many grants per round trip.
const LOAD_BATCH: usize = 500;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// A Redis-backed, encrypted [`GrantStore`] for many replicas. Cheap to clone.
/// `Debug` shows no URL: it may hold a password.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    conn: ConnectionManager,
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
    /// A handle on the store's connection, for the rate-limit budgets that
    /// replicas share (`ratelimit::SharedBudget`).
    pub fn connection(&self) -> ConnectionManager {
        self.inner.conn.clone()
    }

    /// Connects, checks that Redis holds grants sealed with this key (or none),
    /// and subscribes to announcements.
    pub async fn open(url: &Secret, key: &KeySource, lease: Duration) -> Result<Self, StoreError> {
        let key = given_key(key)?.ok_or_else(|| {
            StoreError::Key("the redis backend needs store.key_env or store.key_file".into())
        })?;
        // Never show the URL or the parser's text about it: it may hold a password.
        let client = redis::Client::open(url.expose()).map_err(|e| {
            StoreError::Unavailable(format!(
                "store.url is not a usable Redis URL ({:?})",
                e.kind()
            ))
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(unavailable)?;
        let cipher = key.cipher();
        check_key(&conn, &cipher).await?;
        let instance = lock::random_token();
        let (changes, _) = broadcast::channel(changes::CAPACITY);
        let subscriber =
            Subscriber::start(client, conn.clone(), instance.clone(), changes.clone()).await?;
        let scripts = Arc::new(Scripts::new());
        let locker = Locker {
            conn: conn.clone(),
            scripts: scripts.clone(),
            held: Arc::new(Mutex::new(HashMap::new())),
            lease,
        };
        tracing::info!(lock_lease = ?lease, "redis store open");
        Ok(Self {
            inner: Arc::new(Inner {
                conn,
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
                .query_async(&mut self.inner.conn.clone())
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
                .query_async(&mut self.inner.conn.clone())
                .await
                .map_err(unavailable)?;
            Ok(())
        })
    }

    fn changes(&self) -> Option<broadcast::Receiver<GrantKey>> {
        Some(self.inner.changes.subscribe())
    }
}

// === impl Inner ===

impl Inner {
    async fn load_all(&self) -> Result<Vec<Grant>, StoreError> {
        let mut conn = self.conn.clone();
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
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        sealed.map(|s| self.decode(&id, &s)).transpose()
    }

    /// The fenced write: one script compares the stored version and writes.
    async fn save(&self, grant: &Grant) -> Result<(), StoreError> {
        let id = grant.key.id();
        let sealed = self.cipher.seal_grant(grant)?;
        let stored: i64 = self
            .scripts
            .save
            .key(Keys::grant(&id))
            .key(Keys::index())
            .arg(grant.version)
            .arg(sealed)
            .arg(&id)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        match u64::try_from(stored) {
            Err(_) => Ok(()),
            Ok(stored) => Err(StoreError::Conflict {
                key: id,
                stored,
                attempted: grant.version,
            }),
        }
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
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(interrupted == 1)
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
            .invoke_async(&mut self.conn.clone())
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
async fn check_key(conn: &ConnectionManager, cipher: &Cipher) -> Result<(), StoreError> {
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
