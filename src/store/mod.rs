//! Where grants live between restarts, and how replicas sharing them take turns.
//!
//! Two traits, because they answer different questions. [`GrantStore`] is
//! storage: load, save, ping. The refresher is the only writer of a grant; every
//! write carries the grant's new version, and a store refuses a write whose
//! version is not above the one it holds ([`StoreError::Conflict`]): the fence
//! that lets several replicas share one store. [`Coordinator`] is the rest of
//! sharing: the per-grant lock, the "refresh begun" marker, announcements.
//! Stores that live in this process (memory, file) need no lock beyond the
//! refresher's own mutex and have nobody to tell: they pair with [`Local`]. The
//! Redis store, shared by many replicas, is both.

mod crypto;
mod file;
mod memory;
pub mod outbox;
mod redis;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

pub use self::crypto::{KeyError, StoreKey};
pub use self::file::{FileStore, DB_FILE, KEY_FILE};
pub use self::memory::{MemoryOutbox, MemoryStore, WriteHold};
pub use self::outbox::{Envelope, Message, Outbox, QueueCounts};
pub use self::redis::{Primary as RedisPrimary, RedisStore};
use crate::grants::{Grant, GrantKey};

pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Persistence for grants. Object-safe, held as `Arc<dyn GrantStore>`.
pub trait GrantStore: Send + Sync + std::fmt::Debug + 'static {
    /// Every grant, for start-up.
    fn load_all(&self) -> StoreFuture<'_, Vec<Grant>>;

    /// One grant as stored now: the refresher re-reads before calling Zoom.
    fn load<'a>(&'a self, key: &'a GrantKey) -> StoreFuture<'a, Option<Grant>>;

    /// Durably writes `grant` if the stored version is below `grant.version` (or absent).
    /// Returns when the write is durable.
    fn save<'a>(&'a self, grant: &'a Grant) -> StoreFuture<'a, ()>;

    /// Writes a wiped grant (Zoom's `app_deauthorized`) as `save` does, and
    /// returns only once no earlier copy of its tokens stays readable in the
    /// store's own files. A store that keeps no old copies just saves.
    fn save_wiped<'a>(&'a self, grant: &'a Grant) -> StoreFuture<'a, ()> {
        self.save(grant)
    }

    /// Finishes what an earlier [`GrantStore::save_wiped`] left undone after
    /// its write landed (a failed rewrite). A retried `app_deauthorized` calls
    /// it for a grant already wiped, so that its 200 still means no copy is left.
    fn finish_wipe(&self) -> StoreFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }

    /// Is the store reachable? Used by `/readyz`.
    fn ping(&self) -> StoreFuture<'_, ()>;

    /// The key virtual tokens are signed with, if this store keeps one, so that
    /// tokens outlive a restart. `None`: a random key per process (memory store).
    fn signing_key(&self) -> Option<[u8; 32]> {
        None
    }
}

/// How replicas sharing a store take turns: the per-grant lock, the marker of
/// a refresh begun, and announcements of changes. Object-safe, held as
/// `Arc<dyn Coordinator>` beside the store.
pub trait Coordinator: Send + Sync + std::fmt::Debug + 'static {
    /// Takes the grant's refresh lock across replicas, waiting while another
    /// replica holds it. The lock lasts until the [`Lease`] is dropped.
    fn lock<'a>(&'a self, key: &'a GrantKey) -> StoreFuture<'a, Lease>;

    /// Called under the lock just before the refresh token goes to Zoom. Returns
    /// whether an earlier holder started a refresh it never finished: its Zoom
    /// call may have rotated the token without the store knowing yet.
    fn begin_refresh<'a>(&'a self, key: &'a GrantKey) -> StoreFuture<'a, bool>;

    /// The refresh begun by [`Coordinator::begin_refresh`] is written (or failed cleanly).
    fn end_refresh<'a>(&'a self, key: &'a GrantKey) -> StoreFuture<'a, ()>;

    /// Tells other replicas that `key` changed, so they reload it at once.
    fn announce<'a>(&'a self, key: &'a GrantKey) -> StoreFuture<'a, ()>;

    /// Grants other replicas changed, if this store can tell.
    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<GrantKey>>;

    /// How long a refresh should still wait before calling Zoom because the
    /// store just failed over: replicas holding rotations the old primary
    /// lost write them to the new one first. Zero for a store that never
    /// fails over.
    fn unsettled_for(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

/// The coordinator of a store only this process uses (memory, file): the
/// grant's own mutex is the lock, and there is nobody to tell.
#[derive(Debug, Default)]
pub struct Local;

impl Coordinator for Local {
    fn lock<'a>(&'a self, _key: &'a GrantKey) -> StoreFuture<'a, Lease> {
        Box::pin(async { Ok(Lease::local()) })
    }

    fn begin_refresh<'a>(&'a self, _key: &'a GrantKey) -> StoreFuture<'a, bool> {
        Box::pin(async { Ok(false) })
    }

    fn end_refresh<'a>(&'a self, _key: &'a GrantKey) -> StoreFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }

    fn announce<'a>(&'a self, _key: &'a GrantKey) -> StoreFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }

    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<GrantKey>> {
        None
    }
}

/// The right to refresh one grant, held until dropped. Stores that need to
/// release something (a Redis lock) do it from `Drop`.
pub struct Lease {
    held: Option<Box<dyn HeldLock>>,
}

/// A cross-process lock behind a [`Lease`]: released when dropped.
pub trait HeldLock: Send + Sync {
    /// Whether the lock is still ours by our own clock. A process that froze past
    /// its lease (a pause, a stalled VM) learns here that another may hold it now.
    fn still_held(&self) -> bool;
}

impl Lease {
    /// No cross-process lock: the in-process mutex is enough.
    pub fn local() -> Self {
        Self { held: None }
    }

    /// A lease on a cross-process lock, released when dropped.
    pub fn held(held: Box<dyn HeldLock>) -> Self {
        Self { held: Some(held) }
    }

    /// Always true for a local lease.
    pub fn still_held(&self) -> bool {
        self.held.as_ref().is_none_or(|held| held.still_held())
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("held", &self.held.is_some())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("grant {key} changed under us: stored version {stored}, write version {attempted}")]
    Conflict {
        key: String,
        stored: u64,
        attempted: u64,
    },
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store data is corrupt: {0}")]
    Corrupt(String),
    /// The store key is missing, unreadable or malformed.
    #[error("store key: {0}")]
    Key(String),
    /// The key check failed: the folder was written with another key. Nothing was changed.
    #[error(
        "{path} is encrypted with another key (or its key check record is damaged); \
         start with the key it was written with"
    )]
    WrongKey { path: PathBuf },
}
