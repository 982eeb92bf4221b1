//! The default store: grants in an embedded redb database, sealed with AES-256-GCM.
//!
//! The state folder (`store.path`, created with mode 0700) holds:
//!
//! ```text
//! grants.redb   table `grants`:       grant id -> seal(serde_json(Grant), aad = grant id)
//!               table `meta`:         "key_check" -> seal(KEY_CHECK_PLAINTEXT)
//!                                     "wipe_pending" -> [], while a wipe's rewrite is owed
//!               table `outbox`:       (queue, id) -> seal(serde_json(Envelope),
//!                                                      aad = "outbox/{queue}/{id}")
//!               table `dead_letters`: (queue, id) -> seal(serde_json(Envelope),
//!                                                      aad = "dead/{queue}/{id}")
//!               table `outbox_seq`:   "last_id" -> the last message id handed out
//! key           the generated store key (KeySource::Generated only), mode 0600
//! ```
//!
//! Every `save` is one redb write transaction, committed with redb's default
//! `Durability::Immediate` (fsync before `commit` returns), with the version fence
//! checked inside it. Opening an existing folder writes nothing until the key check
//! has passed: the database is first opened through `scratch::ScratchBackend`.
//! The outbox tables are created by their first write (`outbox`); a store
//! written before they existed reads as empty queues. `save_wiped` rewrites the
//! whole database into a new file (`rewrite`), because redb is copy-on-write and
//! the freed pages of the old file still hold the wiped grant's sealed tokens.

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;
use redb::{Database, ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};

pub(super) mod open;
mod outbox;
mod rewrite;
mod scratch;

use super::crypto::Cipher;
use super::{GrantStore, StoreError, StoreFuture};
use crate::config::KeySource;
use crate::grants::{Grant, GrantKey};

pub const DB_FILE: &str = "grants.redb";
pub const KEY_FILE: &str = "key";
const GRANTS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("grants");
const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
/// Waiting messages by queue, oldest (smallest id) first.
const OUTBOX: TableDefinition<'_, (&str, u64), &[u8]> = TableDefinition::new("outbox");
/// Buried messages by queue, oldest first, at most `MAX_DEAD_LETTERS` each.
const DEAD_LETTERS: TableDefinition<'_, (&str, u64), &[u8]> = TableDefinition::new("dead_letters");
/// One row, [`LAST_ID`]: ids rise across restarts even when every queue is empty.
const OUTBOX_SEQ: TableDefinition<'_, &str, u64> = TableDefinition::new("outbox_seq");
const LAST_ID: &str = "last_id";
const KEY_CHECK: &str = "key_check";
const KEY_CHECK_PLAINTEXT: &[u8] = b"grantmux store key check v1";
/// Present in `meta` from the commit of a wiped grant until the rewrite that
/// drops the old file is done; seen at open, the rewrite is finished then.
const WIPE_PENDING: &str = "wipe_pending";
/// Where `rewrite` builds the new database before renaming it over [`DB_FILE`].
const COMPACT_FILE: &str = "grants.redb.compact";
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
    /// Swapped whole by `rewrite`. Readers take the current one for one
    /// transaction and never wait; one still in the old file reads the
    /// snapshot it began with, as any redb read transaction does.
    db: ArcSwap<Database>,
    /// Held by every write transaction and by the whole rewrite, so that no
    /// write can land in the old file after the copy began. redb runs one write
    /// transaction at a time anyway, so this costs writers nothing.
    writer: Mutex<()>,
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
        let inner = Inner {
            db: ArcSwap::from_pointee(db),
            writer: Mutex::new(()),
            cipher,
            signing_key,
            folder: folder.to_owned(),
        };
        inner.finish_pending_wipe();
        Ok(Self {
            inner: Arc::new(inner),
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

impl FileStore {
    /// Seals `grant` here, then runs `write` on the blocking pool. The
    /// `store_save` failpoint fails every grant write alike.
    fn write_sealed<'a>(
        &'a self,
        grant: &'a Grant,
        write: fn(&Inner, &Sealed) -> Result<(), StoreError>,
    ) -> StoreFuture<'a, ()> {
        if crate::failpoint::failing("store_save") {
            let failed = StoreError::Unavailable("failpoint store_save: the write failed".into());
            return Box::pin(async move { Err(failed) });
        }
        let inner = self.inner.clone();
        let sealed = inner.seal(grant);
        Box::pin(async move {
            let sealed = sealed?;
            blocking(move || write(&inner, &sealed)).await
        })
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
        self.write_sealed(grant, |inner, sealed| {
            inner.write(std::slice::from_ref(sealed))
        })
    }

    /// The versioned save, then a rewrite of the whole database into a new
    /// file (see `rewrite`); `Ok` only once both are done and durable.
    ///
    /// The save commits a `wipe_pending` mark with the grant, and the rewrite
    /// drops it, so a crash between the two is finished at the next open. If
    /// the rewrite fails here (a full disk), the caller answers Zoom with a
    /// 5xx, and Zoom's retry finds the grant already wiped and calls
    /// [`GrantStore::finish_wipe`], which does the rewrite still owed.
    fn save_wiped<'a>(&'a self, grant: &'a Grant) -> StoreFuture<'a, ()> {
        self.write_sealed(grant, Inner::write_wiped)
    }

    fn finish_wipe(&self) -> StoreFuture<'_, ()> {
        let inner = self.inner.clone();
        Box::pin(async move { blocking(move || inner.finish_owed_rewrite().map(drop)).await })
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
        self.read(|txn| self.scan_in(txn, chunks))
    }

    fn scan_in(
        &self,
        txn: &ReadTransaction,
        chunks: &mpsc::SyncSender<Chunk>,
    ) -> Result<(), StoreError> {
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
        self.read(|txn| {
            let table = txn.open_table(GRANTS).map_err(at(&self.folder))?;
            let sealed = table.get(id).map_err(at(&self.folder))?;
            sealed.map(|s| self.decode(id, s.value())).transpose()
        })
    }

    /// One durable transaction: fence every record on its stored version, insert,
    /// commit (fsync). Any conflict aborts the whole transaction.
    fn write(&self, records: &[Sealed]) -> Result<(), StoreError> {
        self.write_txn(|txn| self.put_grants(txn, records))
    }

    /// `write` of one wiped grant, marked so that the rewrite is owed even
    /// across a crash, then the rewrite.
    fn write_wiped(&self, record: &Sealed) -> Result<(), StoreError> {
        self.write_txn(|txn| {
            self.put_grants(txn, std::slice::from_ref(record))?;
            let mut meta = txn.open_table(META).map_err(at(&self.folder))?;
            meta.insert(WIPE_PENDING, [].as_slice())
                .map_err(at(&self.folder))?;
            Ok(())
        })?;
        self.rewrite()
    }

    /// The fenced inserts of `write`. An error aborts the caller's transaction.
    fn put_grants(&self, txn: &WriteTransaction, records: &[Sealed]) -> Result<(), StoreError> {
        let mut table = txn.open_table(GRANTS).map_err(at(&self.folder))?;
        for Sealed { id, version, bytes } in records {
            let stored = table.get(id.as_str()).map_err(at(&self.folder))?;
            let stored = stored.map(|s| self.decode(id, s.value())).transpose()?;
            if let Some(stored) = stored.filter(|g| g.version >= *version) {
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
        Ok(())
    }

    /// Runs `work` in one read transaction of the current database.
    fn read<T>(
        &self,
        work: impl FnOnce(&ReadTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let db = self.db.load_full();
        let txn = db.begin_read().map_err(at(&self.folder))?;
        work(&txn)
    }

    /// Runs `work` in one write transaction and commits it durably if `work`
    /// succeeds; an error drops the transaction, which aborts it.
    fn write_txn<T>(
        &self,
        work: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _writer = self.writer();
        let db = self.db.load_full();
        let txn = db.begin_write().map_err(at(&self.folder))?;
        let done = work(&txn)?;
        txn.commit().map_err(at(&self.folder))?;
        Ok(done)
    }

    /// The writers' lock. Poisoning only means a writer panicked (a damaged
    /// file); its transaction was dropped, so nothing is half written.
    fn writer(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn seal(&self, grant: &Grant) -> Result<Sealed, StoreError> {
        Ok(Sealed {
            bytes: self.cipher.seal_grant(grant)?,
            version: grant.version,
            id: grant.key.id(),
        })
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.read(|txn| txn.open_table(GRANTS).map(drop).map_err(at(&self.folder)))
    }

    fn decode(&self, id: &str, sealed: &[u8]) -> Result<Grant, StoreError> {
        self.cipher
            .open_grant(&self.folder.display().to_string(), id, sealed)
    }
}

/// `table` as of `txn`, or `None` if it was never created: the outbox tables
/// appear with their first write, and a store older than them has none.
fn open_if_present<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &ReadTransaction,
    table: TableDefinition<'_, K, V>,
    path: &Path,
) -> Result<Option<redb::ReadOnlyTable<K, V>>, StoreError> {
    match txn.open_table(table) {
        Ok(table) => Ok(Some(table)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(db_error(path, e.into())),
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
    use crate::store::outbox::{contract, Outbox};

    fn temp_store() -> (tempfile::TempDir, FileStore) {
        let dir = tempfile::TempDir::new().expect("tempdir");
        let store = FileStore::open(dir.path(), &KeySource::Generated).expect("open");
        (dir, store)
    }

    #[tokio::test]
    async fn file_outbox_keeps_the_contract() {
        let (_dir, store) = temp_store();
        contract::run(&store).await;
        let (_dir, store) = temp_store();
        contract::dead_letters_are_capped(&store).await;
    }

    /// A store created before the outbox had its tables (as every new store
    /// still is until the first push) reads as empty queues, also after a reopen.
    #[tokio::test]
    async fn a_store_without_outbox_tables_reads_as_empty_queues() {
        let (dir, store) = temp_store();
        drop(store);
        let store = FileStore::open(dir.path(), &KeySource::Generated).expect("reopen");
        assert_eq!(store.head("q").await.expect("head"), None);
        assert_eq!(store.counts("q").await.expect("counts"), Default::default());
        assert_eq!(store.dead("q", 10).await.expect("dead"), []);
        store.ack("q", 1).await.expect("a stale ack on no table");
    }

    #[tokio::test]
    async fn queued_messages_survive_a_reopen_in_order_and_ids_keep_rising() {
        let (dir, store) = temp_store();
        let (q, drained) = (vec!["q".to_owned()], vec!["drained".to_owned()]);
        for n in 0..3 {
            store
                .push(&q, &contract::message("e", n))
                .await
                .expect("push");
        }
        // The newest id ever handed out leaves with its queue's last message.
        store
            .push(&drained, &contract::message("gone", 9))
            .await
            .expect("push");
        let gone = store.head("drained").await.expect("head").expect("one");
        store.ack("drained", gone.id).await.expect("ack");
        drop(store);

        let store = FileStore::open(dir.path(), &KeySource::Generated).expect("reopen");
        let mut seen = Vec::new();
        while let Some(head) = store.head("q").await.expect("head") {
            seen.push((head.id, head.message.clone()));
            store.ack("q", head.id).await.expect("ack");
        }
        let messages: Vec<_> = seen.iter().map(|(_, m)| m.clone()).collect();
        assert_eq!(
            messages,
            (0..3)
                .map(|n| contract::message("e", n))
                .collect::<Vec<_>>()
        );
        assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "{seen:?}");
        store
            .push(&q, &contract::message("after", 4))
            .await
            .expect("push");
        let after = store.head("q").await.expect("head").expect("one");
        assert!(
            after.id > gone.id,
            "id {} after reopen, {} before",
            after.id,
            gone.id
        );
    }

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
