//! The default store: grants in an embedded redb database, sealed with AES-256-GCM.
//!
//! The state folder (`store.path`, created with mode 0700) holds:
//!
//! ```text
//! grants.redb   table `grants`: grant id -> seal(serde_json(Grant), aad = grant id)
//!               table `meta`:   "key_check" -> seal(KEY_CHECK_PLAINTEXT)
//! key           the generated store key (KeySource::Generated only), mode 0600
//! ```
//!
//! Every `save` is one redb write transaction, committed with redb's default
//! `Durability::Immediate` (fsync before `commit` returns), with the version fence
//! checked inside it. Opening an existing folder writes nothing until the key check
//! has passed: the database is first opened through `scratch::ScratchBackend`.

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};

use redb::{Database, ReadableTable, TableDefinition};

pub(super) mod open;
mod scratch;

use super::crypto::Cipher;
use super::{GrantStore, StoreError, StoreFuture};
use crate::config::KeySource;
use crate::grants::{Grant, GrantKey};

pub const DB_FILE: &str = "grants.redb";
pub const KEY_FILE: &str = "key";
const GRANTS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("grants");
const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
const KEY_CHECK: &str = "key_check";
const KEY_CHECK_PLAINTEXT: &[u8] = b"grantmux store key check v1";
/// redb's default page cache is 1 GiB. Start-up reads every page once and the OS
/// page cache keeps them anyway, so a small cache keeps memory per grant low.
const CACHE_BYTES: usize = 16 << 20;

/// `load_all` decodes on at most this many threads.
const MAX_DECODERS: usize = 8;
/// Records handed to a decoder at a time: large enough to amortise the channel,
/// small enough that the scan keeps every decoder busy.
const CHUNK: usize = 1024;

/// A redb-backed, encrypted [`GrantStore`]. Cheap to clone. `Debug` shows the folder only.
#[derive(Clone)]
pub struct FileStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    cipher: Cipher,
    /// Derived from the store key, so virtual tokens survive a restart.
    signing_key: [u8; 32],
    folder: PathBuf,
}

/// Raw `(grant id, sealed bytes)` records on their way from the scan to a decoder.
type Chunk = Vec<(String, Vec<u8>)>;

/// One grant ready to write: its id, version (for the fence) and sealed bytes.
struct Sealed {
    id: String,
    version: u64,
    bytes: Vec<u8>,
}

// === impl FileStore ===

impl FileStore {
    /// Opens (or creates) the store in the folder `path`. Blocking: call it from
    /// `spawn_blocking` on a runtime.
    ///
    /// An existing folder is only written to after its key check passes; a folder
    /// encrypted with another key gives [`StoreError::WrongKey`], a damaged one
    /// [`StoreError::Corrupt`], and neither is modified.
    pub fn open(path: &Path, key: &KeySource) -> Result<Self, StoreError> {
        // redb asserts on some malformed files instead of returning an error.
        panic::catch_unwind(AssertUnwindSafe(|| Self::open_unguarded(path, key))).unwrap_or_else(
            |_| {
                Err(StoreError::Corrupt(format!(
                    "{}: the database engine panicked reading it; the file is damaged",
                    path.join(DB_FILE).display()
                )))
            },
        )
    }

    fn open_unguarded(folder: &Path, key: &KeySource) -> Result<Self, StoreError> {
        let (db, cipher, signing_key) = open::open(folder, key)?;
        tracing::info!(folder = %folder.display(), "file store open");
        let folder = folder.to_owned();
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                cipher,
                signing_key,
                folder,
            }),
        })
    }

    /// Writes many grants in one durable transaction, with the same version fence
    /// as `save`; any conflict writes none of them. Blocking. For bulk loads
    /// (imports, benchmarks), where one fsync per grant would dominate.
    pub fn save_batch(&self, grants: &[Grant]) -> Result<(), StoreError> {
        let sealed = grants
            .iter()
            .map(|g| self.inner.seal(g))
            .collect::<Result<Vec<_>, _>>()?;
        self.inner.write(&sealed)
    }
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("folder", &self.inner.folder)
            .finish_non_exhaustive()
    }
}

/// Writes go through `spawn_blocking`: a commit fsyncs, which can take
/// milliseconds and must not stall a runtime worker. `load_all` does too, as it
/// decrypts every grant (hundreds of milliseconds at 100k). `load` and `ping` are
/// one B-tree lookup served from redb's or the OS's page cache, cheaper than the
/// thread hop, so they run inline.
impl GrantStore for FileStore {
    fn signing_key(&self) -> Option<[u8; 32]> {
        Some(self.inner.signing_key)
    }

    fn load_all(&self) -> StoreFuture<'_, Vec<Grant>> {
        // Blocking, and itself spreads the decoding over scoped threads.
        let inner = self.inner.clone();
        Box::pin(async move { blocking(move || inner.read_all()).await })
    }

    fn load<'a>(&'a self, key: &'a GrantKey) -> StoreFuture<'a, Option<Grant>> {
        let found = self.inner.read_one(&key.id());
        Box::pin(async move { found })
    }

    fn save<'a>(&'a self, grant: &'a Grant) -> StoreFuture<'a, ()> {
        if crate::failpoint::failing("store_save") {
            let failed = StoreError::Unavailable("failpoint store_save: the write failed".into());
            return Box::pin(async move { Err(failed) });
        }
        let inner = self.inner.clone();
        let sealed = inner.seal(grant);
        Box::pin(async move {
            let sealed = sealed?;
            blocking(move || inner.write(&[sealed])).await
        })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        let result = self.inner.ping();
        Box::pin(async move { result })
    }
}

/// Runs store work on the blocking pool. redb asserts on some malformed pages
/// instead of returning an error, so a panic there means a damaged file.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        Err(match e.is_panic() {
            true => StoreError::Corrupt(
                "the database engine failed reading the store; the file is damaged".into(),
            ),
            false => StoreError::Unavailable("the store task was cancelled".into()),
        })
    })
}

// === impl Inner ===

impl Inner {
    /// Scans the table on this thread while up to [`MAX_DECODERS`] scoped threads
    /// decrypt and parse. Scan, AES-GCM and JSON each measured about a third of
    /// a sequential load, so with free cores start-up approaches the scan alone.
    fn read_all(&self) -> Result<Vec<Grant>, StoreError> {
        let decoders = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(MAX_DECODERS);
        let (chunks, rx) = mpsc::sync_channel::<Chunk>(decoders);
        // Each decoder holds a clone; when all have quit (on an error), the
        // receiver is dropped and the scan's next send fails instead of blocking.
        let rx = Arc::new(Mutex::new(rx));
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..decoders)
                .map(|_| {
                    let rx = rx.clone();
                    scope.spawn(move || self.decode_chunks(&rx))
                })
                .collect();
            drop(rx);
            let scanned = self.scan(&chunks);
            drop(chunks);
            let mut grants = Vec::new();
            for handle in handles {
                let decoded = handle.join().unwrap_or_else(|_| {
                    Err(StoreError::Corrupt("a grant decoder panicked".to_owned()))
                })?;
                grants.extend(decoded);
            }
            scanned.map(|()| grants)
        })
    }

    /// Copies every record out of the table, [`CHUNK`] at a time, into `chunks`.
    fn scan(&self, chunks: &mpsc::SyncSender<Chunk>) -> Result<(), StoreError> {
        let txn = self.db.begin_read().map_err(at(&self.folder))?;
        let table = txn.open_table(GRANTS).map_err(at(&self.folder))?;
        let mut chunk = Vec::with_capacity(CHUNK);
        for entry in table.iter().map_err(at(&self.folder))? {
            let (id, sealed) = entry.map_err(at(&self.folder))?;
            chunk.push((id.value().to_owned(), sealed.value().to_vec()));
            if chunk.len() == CHUNK && chunks.send(std::mem::take(&mut chunk)).is_err() {
                return Ok(()); // every decoder quit; their error is the one to report
            }
        }
        let _ = chunks.send(chunk);
        Ok(())
    }

    fn decode_chunks(&self, rx: &Mutex<mpsc::Receiver<Chunk>>) -> Result<Vec<Grant>, StoreError> {
        let mut grants = Vec::new();
        loop {
            // The lock is held only to take one chunk; a poisoned lock means a
            // sibling decoder panicked, which its join reports.
            let next = rx
                .lock()
                .map_err(|_| StoreError::Corrupt("a grant decoder panicked".to_owned()))?
                .recv();
            let Ok(chunk) = next else {
                return Ok(grants);
            };
            for (id, sealed) in chunk {
                grants.push(self.decode(&id, &sealed)?);
            }
        }
    }

    fn read_one(&self, id: &str) -> Result<Option<Grant>, StoreError> {
        let txn = self.db.begin_read().map_err(at(&self.folder))?;
        let table = txn.open_table(GRANTS).map_err(at(&self.folder))?;
        let sealed = table.get(id).map_err(at(&self.folder))?;
        sealed.map(|s| self.decode(id, s.value())).transpose()
    }

    /// One durable transaction: fence every record on its stored version, insert,
    /// commit (fsync). Any conflict aborts the whole transaction.
    fn write(&self, records: &[Sealed]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(at(&self.folder))?;
        {
            let mut table = txn.open_table(GRANTS).map_err(at(&self.folder))?;
            for Sealed { id, version, bytes } in records {
                let stored = table.get(id.as_str()).map_err(at(&self.folder))?;
                let stored = stored.map(|s| self.decode(id, s.value())).transpose()?;
                if let Some(stored) = stored.filter(|g| g.version >= *version) {
                    // Dropping the transaction aborts it.
                    return Err(StoreError::Conflict {
                        key: id.clone(),
                        stored: stored.version,
                        attempted: *version,
                    });
                }
                table
                    .insert(id.as_str(), bytes.as_slice())
                    .map_err(at(&self.folder))?;
            }
        }
        txn.commit().map_err(at(&self.folder))
    }

    fn seal(&self, grant: &Grant) -> Result<Sealed, StoreError> {
        Ok(Sealed {
            bytes: self.cipher.seal_grant(grant)?,
            version: grant.version,
            id: grant.key.id(),
        })
    }

    fn ping(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_read().map_err(at(&self.folder))?;
        txn.open_table(GRANTS).map(drop).map_err(at(&self.folder))
    }

    fn decode(&self, id: &str, sealed: &[u8]) -> Result<Grant, StoreError> {
        self.cipher
            .open_grant(&self.folder.display().to_string(), id, sealed)
    }
}

fn io_error(path: &Path, what: &str, e: &io::Error) -> StoreError {
    StoreError::Unavailable(format!("{what} {}: {e}", path.display()))
}

/// `map_err` adapter for any redb error, classified by [`db_error`].
fn at<E: Into<redb::Error>>(path: &Path) -> impl Fn(E) -> StoreError + '_ {
    move |e| db_error(path, e.into())
}

/// Sorts redb's errors by fault: damaged data is `Corrupt`, the rest `Unavailable`.
fn db_error(path: &Path, e: redb::Error) -> StoreError {
    let text = format!("{}: {e}", path.display());
    match e {
        redb::Error::Corrupted(_)
        | redb::Error::UpgradeRequired(_)
        | redb::Error::TableTypeMismatch { .. }
        | redb::Error::TableIsMultimap(_)
        | redb::Error::TableIsNotMultimap(_)
        | redb::Error::TypeDefinitionChanged { .. }
        | redb::Error::TableDoesNotExist(_) => StoreError::Corrupt(text),
        redb::Error::Io(io) if io.kind() == io::ErrorKind::InvalidData => {
            StoreError::Corrupt(format!(
                "{}: not a redb database, or its header is damaged",
                path.display()
            ))
        }
        redb::Error::DatabaseAlreadyOpen => StoreError::Unavailable(format!(
            "{}: in use by another grantmux process",
            path.display()
        )),
        _ => StoreError::Unavailable(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_in_the_database_engine_reads_as_a_damaged_file() {
        // The panic hook of the test harness prints it; the store reports it as data.
        let answer: Result<(), StoreError> = blocking(|| panic!("redb: page checksum")).await;
        match answer {
            Err(StoreError::Corrupt(why)) => assert!(why.contains("damaged"), "{why}"),
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
}
