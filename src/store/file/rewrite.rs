//! Rewriting the database into a new file, so that no page of the old one
//! survives: what `save_wiped` owes after Zoom's `app_deauthorized`.
//!
//! redb is copy-on-write: a grant overwritten by its wiped version leaves its
//! old page, sealed tokens and all, among the file's free pages until redb
//! happens to reuse it, and `Database::compact` moves pages without erasing
//! the ones it frees. So the live records of every table are copied into a new
//! file beside the old one ([`COMPACT_FILE`]), committed (fsync), renamed over
//! [`DB_FILE`] and the folder synced; then the open handle is swapped. The
//! rename is atomic, so a `kill -9` at any point leaves the old or the new
//! database whole at `grants.redb`; a half-built new file is removed at the
//! next open, and a rewrite a crash interrupted is done then too (the
//! `wipe_pending` mark, committed with the wiped grant, says it is owed).
//!
//! Out of reach here: copies below the file: the old file's freed blocks, a
//! copy-on-write file system's snapshots, an SSD's remapped cells.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{
    Database, MultimapTableHandle, ReadTransaction, ReadableTable, TableDefinition, TableHandle,
    WriteTransaction,
};

use super::open::{remove_if_present, sync_parent};
use super::{
    at, io_error, open_if_present, Inner, CACHE_BYTES, COMPACT_FILE, DB_FILE, DEAD_LETTERS, GRANTS,
    META, OUTBOX, OUTBOX_SEQ, WIPE_PENDING,
};
use crate::store::StoreError;

/// How long a rewrite waits for readers still in the old database before
/// leaving its drop to the last of them.
const RETIRE_WAIT: Duration = Duration::from_secs(2);

// === impl Inner ===

impl Inner {
    /// Copies every live record into a new file and swaps it in. Holds the
    /// writers' lock throughout: a write landing in the old file once the copy
    /// began would be lost with it. Readers go on in the old file meanwhile.
    pub(super) fn rewrite(&self) -> Result<(), StoreError> {
        let writer = self.writer();
        let old = self.db.load_full();
        let db_path = self.folder.join(DB_FILE);
        let new_path = self.folder.join(COMPACT_FILE);
        let new = copy_into_new(&old, &new_path).inspect_err(|_| discard(&new_path))?;
        if let Err(e) = fs::rename(&new_path, &db_path) {
            drop(new);
            discard(&new_path);
            return Err(io_error(&db_path, "cannot replace", &e));
        }
        // From here `grants.redb` is the new file: swap even if the sync
        // fails, or later writes would go to the unlinked old one.
        self.db.store(Arc::new(new));
        let synced = sync_parent(&db_path);
        drop(writer);
        retire(old);
        tracing::info!(path = %db_path.display(), "store rewritten into a new file");
        synced
    }

    /// At open: finishes a rewrite a crash or a failure left owed, and removes
    /// a half-built new file. Failures are logged, not fatal: the database is
    /// whole either way; only old pages linger until the next rewrite.
    pub(super) fn finish_pending_wipe(&self) {
        let done = self
            .finish_owed_rewrite()
            .and_then(|rewrote| match rewrote {
                true => Ok(()),
                false => remove_if_present(&self.folder.join(COMPACT_FILE)),
            });
        if let Err(error) = done {
            let folder = self.folder.display();
            tracing::warn!(%error, %folder, "could not finish an interrupted store rewrite");
        }
    }
}

impl Inner {
    /// Does the rewrite the `wipe_pending` mark says is owed, if it is.
    /// Returns whether there was one.
    pub(super) fn finish_owed_rewrite(&self) -> Result<bool, StoreError> {
        let pending = self.read(|txn| {
            let meta = txn.open_table(META).map_err(at(&self.folder))?;
            let mark = meta.get(WIPE_PENDING).map_err(at(&self.folder))?;
            Ok(mark.is_some())
        })?;
        if pending {
            self.rewrite()?;
        }
        Ok(pending)
    }
}

/// Builds the new database at `path` from `old`'s latest commit, durably.
fn copy_into_new(old: &Database, path: &Path) -> Result<Database, StoreError> {
    let from = old.begin_read().map_err(at(path))?;
    let new = create(path)?;
    let to = new.begin_write().map_err(at(path))?;
    copy(&from, &to, GRANTS, path)?;
    copy(&from, &to, META, path)?;
    copy(&from, &to, OUTBOX, path)?;
    copy(&from, &to, DEAD_LETTERS, path)?;
    copy(&from, &to, OUTBOX_SEQ, path)?;
    refuse_dropped_tables(&from, &to, path)?;
    {
        let mut meta = to.open_table(META).map_err(at(path))?;
        meta.remove(WIPE_PENDING).map_err(at(path))?;
    }
    to.commit().map_err(at(path))?;
    Ok(new)
}

/// Refuses a rewrite that would drop a table `copy_into_new` does not know
/// (a newer grantmux wrote it): the wipe then fails, and the old file stays.
fn refuse_dropped_tables(
    from: &ReadTransaction,
    to: &WriteTransaction,
    path: &Path,
) -> Result<(), StoreError> {
    let old = names(
        from.list_tables().map_err(at(path))?,
        from.list_multimap_tables().map_err(at(path))?,
    );
    let new = names(
        to.list_tables().map_err(at(path))?,
        to.list_multimap_tables().map_err(at(path))?,
    );
    match old.difference(&new).next() {
        Some(name) => Err(StoreError::Unavailable(format!(
            "{}: table `{name}` is unknown to this grantmux; not rewriting the store, \
             which would drop it",
            path.display()
        ))),
        None => Ok(()),
    }
}

fn names(
    tables: impl Iterator<Item = impl TableHandle>,
    multimap: impl Iterator<Item = impl MultimapTableHandle>,
) -> BTreeSet<String> {
    let tables = tables.map(|t| t.name().to_owned());
    tables
        .chain(multimap.map(|t| t.name().to_owned()))
        .collect()
}

/// A new, empty database file at `path` (mode 0600), with the store's cache size.
fn create(path: &Path) -> Result<Database, StoreError> {
    remove_if_present(path)?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io_error(path, "cannot create", &e))?;
    Database::builder()
        .set_cache_size(CACHE_BYTES)
        .create_file(file)
        .map_err(at(path))
}

/// Copies every record of `table`; a table never created stays absent.
fn copy<K: redb::Key + 'static, V: redb::Value + 'static>(
    from: &ReadTransaction,
    to: &WriteTransaction,
    table: TableDefinition<'_, K, V>,
    path: &Path,
) -> Result<(), StoreError> {
    let Some(source) = open_if_present(from, table, path)? else {
        return Ok(());
    };
    let mut target = to.open_table(table).map_err(at(path))?;
    for row in source.iter().map_err(at(path))? {
        let (key, value) = row.map_err(at(path))?;
        target
            .insert(key.value(), value.value())
            .map_err(at(path))?;
    }
    Ok(())
}

/// Removes a half-built new file after a failed rewrite, best effort: the
/// next rewrite or open removes it otherwise.
fn discard(path: &Path) {
    if let Err(error) = remove_if_present(path) {
        tracing::warn!(%error, "could not remove a half-built store file");
    }
}

/// Drops the old database here, on the blocking pool, once the readers still
/// in it are done: dropping a redb database commits its allocator state, an
/// fsync a runtime worker (an inline `load`) should not wait on. Past
/// [`RETIRE_WAIT`] the last reader drops it.
fn retire(old: Arc<Database>) {
    let deadline = Instant::now() + RETIRE_WAIT;
    while Arc::strong_count(&old) > 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(old);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KeySource;
    use crate::grants::{Grant, GrantKey, Subject};
    use crate::store::file::FileStore;
    use crate::store::outbox::{contract, Outbox};
    use crate::store::GrantStore;
    use redb::ReadableTableMetadata as _;

    fn grant(n: u32, version: u64) -> Grant {
        Grant {
            version,
            ..Grant::empty(GrantKey::new("client", Subject::User(format!("user-{n}"))))
        }
    }

    fn open(folder: &Path) -> FileStore {
        FileStore::open(folder, &KeySource::Generated).expect("open")
    }

    /// Every table's name and row count, for before/after comparisons.
    fn shape(store: &FileStore) -> Vec<(String, u64)> {
        let db = store.inner.db.load_full();
        let txn = db.begin_read().expect("read");
        let mut shape: Vec<_> = txn
            .list_tables()
            .expect("tables")
            .map(|t| {
                let name = t.name().to_owned();
                let rows = match name.as_str() {
                    "outbox" | "dead_letters" => {
                        let def = TableDefinition::<(&str, u64), &[u8]>::new(&name);
                        txn.open_table(def).expect("open").len().expect("len")
                    }
                    "outbox_seq" => txn
                        .open_table(OUTBOX_SEQ)
                        .expect("open")
                        .len()
                        .expect("len"),
                    _ => {
                        let def = TableDefinition::<&str, &[u8]>::new(&name);
                        txn.open_table(def).expect("open").len().expect("len")
                    }
                };
                (name, rows)
            })
            .collect();
        shape.sort();
        shape
    }

    fn wipe_pending(store: &FileStore) -> bool {
        let db = store.inner.db.load_full();
        let txn = db.begin_read().expect("read");
        let meta = txn.open_table(META).expect("meta");
        let mark = meta.get(WIPE_PENDING).expect("get");
        mark.is_some()
    }

    async fn seed(store: &FileStore) {
        store.save(&grant(1, 1)).await.expect("save");
        store.save(&grant(2, 3)).await.expect("save");
        let queues = ["a".to_owned(), "b".to_owned()];
        for n in 0..3 {
            store
                .push(&queues, &contract::message("e", n))
                .await
                .expect("push");
        }
        let head = store.head("a").await.expect("head").expect("one");
        store.bury("a", &head).await.expect("bury");
    }

    #[tokio::test]
    async fn a_rewrite_keeps_every_table_and_record_and_the_store_writable() {
        let dir = tempfile::TempDir::new().expect("tempdir");
        let store = open(dir.path());
        seed(&store).await;
        let before = shape(&store);
        assert_eq!(before.len(), 5, "every table exists: {before:?}");
        store.save_wiped(&grant(1, 2)).await.expect("wipe");
        assert_eq!(shape(&store), before);
        assert!(!wipe_pending(&store));
        assert!(!dir.path().join(COMPACT_FILE).exists());

        // Writes and reads after the swap go to the new file, and survive.
        store.save(&grant(3, 1)).await.expect("save after");
        store
            .push(&["a".to_owned()], &contract::message("after", 9))
            .await
            .expect("push");
        drop(store);
        let store = open(dir.path());
        assert_eq!(store.load_all().await.expect("load_all").len(), 3);
        assert_eq!(store.counts("a").await.expect("counts").pending, 3);
        assert_eq!(store.dead("a", 5).await.expect("dead").len(), 1);
    }

    /// A crash between the wiped grant's commit and the rename: the mark is
    /// committed, a half-built new file lies beside. The next open finishes it.
    #[tokio::test]
    async fn an_interrupted_rewrite_is_finished_at_open() {
        let dir = tempfile::TempDir::new().expect("tempdir");
        let store = open(dir.path());
        seed(&store).await;
        store
            .inner
            .write_txn(|txn| {
                let mut meta = txn.open_table(META).map_err(at(Path::new("test")))?;
                meta.insert(WIPE_PENDING, [].as_slice())
                    .map_err(at(Path::new("test")))?;
                Ok(())
            })
            .expect("mark");
        let before = shape(&store);
        drop(store);
        fs::write(dir.path().join(COMPACT_FILE), b"half built").expect("leftover");

        let store = open(dir.path());
        assert!(!wipe_pending(&store), "the rewrite ran at open");
        assert!(!dir.path().join(COMPACT_FILE).exists());
        let mut after = shape(&store);
        for (name, rows) in &mut after {
            *rows += u64::from(name == "meta"); // the mark is gone
        }
        assert_eq!(after, before);
    }

    #[tokio::test]
    async fn a_leftover_new_file_is_removed_at_open() {
        let dir = tempfile::TempDir::new().expect("tempdir");
        let store = open(dir.path());
        store.save(&grant(1, 1)).await.expect("save");
        drop(store);
        fs::write(dir.path().join(COMPACT_FILE), b"half built").expect("leftover");
        let store = open(dir.path());
        assert!(!dir.path().join(COMPACT_FILE).exists());
        assert_eq!(store.load_all().await.expect("load_all"), [grant(1, 1)]);
    }

    /// A table this version does not know would be lost by a rewrite: the
    /// wipe fails (Zoom retries) and the store is left as it was.
    #[tokio::test]
    async fn an_unknown_table_stops_the_rewrite() {
        let dir = tempfile::TempDir::new().expect("tempdir");
        let store = open(dir.path());
        store.save(&grant(1, 1)).await.expect("save");
        store
            .inner
            .write_txn(|txn| {
                let future = TableDefinition::<&str, &[u8]>::new("from_the_future");
                let mut table = txn.open_table(future).map_err(at(Path::new("test")))?;
                table
                    .insert("k", [1u8].as_slice())
                    .map_err(at(Path::new("test")))?;
                Ok(())
            })
            .expect("future table");
        match store.save_wiped(&grant(1, 2)).await {
            Err(StoreError::Unavailable(why)) => assert!(why.contains("from_the_future"), "{why}"),
            other => panic!("expected Unavailable, got {other:?}"),
        }
        assert!(!dir.path().join(COMPACT_FILE).exists());
        assert!(shape(&store)
            .iter()
            .any(|(name, _)| name == "from_the_future"));
        assert_eq!(store.load_all().await.expect("load_all"), [grant(1, 2)]);

        // Zoom delivers the uninstall again once the cause is gone: the grant
        // is wiped already, and the rewrite still owed is done before its 200.
        store
            .inner
            .write_txn(|txn| {
                let future = TableDefinition::<&str, &[u8]>::new("from_the_future");
                txn.delete_table(future).map_err(at(Path::new("test")))?;
                Ok(())
            })
            .expect("the unknown table dropped");
        store.finish_wipe().await.expect("the owed rewrite");
        assert!(
            !store.inner.finish_owed_rewrite().expect("read the mark"),
            "nothing is owed any more"
        );
        assert_eq!(store.load_all().await.expect("load_all"), [grant(1, 2)]);
    }

    /// Rewrites swap the database under running readers and writers: no
    /// acknowledged write is lost, and no read fails or sees a gap.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn reads_and_writes_during_rewrites_are_neither_lost_nor_refused() {
        let dir = tempfile::TempDir::new().expect("tempdir");
        let store = open(dir.path());
        store.save(&grant(1, 1)).await.expect("seed");
        let writer = tokio::spawn({
            let store = store.clone();
            async move {
                for v in 1..=30 {
                    store.save(&grant(2, v)).await.expect("save");
                    let queue = ["q".to_owned()];
                    store
                        .push(&queue, &contract::message("e", v as u32))
                        .await
                        .expect("push");
                }
            }
        });
        let reader = tokio::spawn({
            let store = store.clone();
            async move {
                let mut last = 0;
                while last < 30 {
                    let seen = store.load(&grant(2, 0).key).await.expect("load");
                    let version = seen.map_or(0, |g| g.version);
                    assert!(version >= last, "went back from v{last} to v{version}");
                    last = version;
                    assert!(!store.load_all().await.expect("load_all").is_empty());
                    tokio::task::yield_now().await;
                }
            }
        });
        for v in 2..=6 {
            store.save_wiped(&grant(1, v)).await.expect("wipe");
        }
        writer.await.expect("writer");
        reader.await.expect("reader");
        drop(store);
        let store = open(dir.path());
        assert_eq!(
            store.load(&grant(2, 0).key).await.expect("load"),
            Some(grant(2, 30))
        );
        assert_eq!(
            store.load(&grant(1, 0).key).await.expect("load"),
            Some(grant(1, 6))
        );
        assert_eq!(store.counts("q").await.expect("counts").pending, 30);
    }
}
