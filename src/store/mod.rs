//! Where grants live between restarts: `trait GrantStore` and its backends.
//!
//! The refresher is the only writer of a grant. Every write carries the grant's
//! new version, and a store refuses a write whose version is not exactly one
//! more than what it holds ([`StoreError::Conflict`]): this is the fence that
//! lets several replicas share one store. Stores that live in this process
//! (memory, file) need no lock beyond the refresher's own single-flight mutex.

mod crypto;
mod file;
mod memory;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

pub use self::crypto::{KeyError, StoreKey};
pub use self::file::{FileStore, DB_FILE, KEY_FILE};
pub use self::memory::MemoryStore;
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

    /// Is the store reachable? Used by `/readyz`.
    fn ping(&self) -> StoreFuture<'_, ()>;
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
