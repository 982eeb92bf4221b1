//! Opening the file store's folder: creating it, resolving the key, creating the
//! database, and checking the key without writing to an existing folder.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use redb::Database;

use super::scratch::ScratchBackend;
use super::{
    at, db_error, io_error, CACHE_BYTES, DB_FILE, GRANTS, KEY_CHECK, KEY_CHECK_PLAINTEXT, KEY_FILE,
    META,
};
use crate::config::KeySource;
use crate::store::crypto::{Cipher, StoreKey, SIGNING_KEY_LABEL};
use crate::store::StoreError;

/// Opens the database in `folder` (creating both if new) once the key check passes.
/// Returns the database, its cipher and the key virtual tokens are signed with.
pub(super) fn open(
    folder: &Path,
    key: &KeySource,
) -> Result<(Database, Cipher, [u8; 32]), StoreError> {
    ensure_folder(folder)?;
    let db_path = folder.join(DB_FILE);
    let exists = exists(&db_path)?;
    let key = resolve_key(key, folder, exists)?;
    let cipher = key.cipher();
    let signing = key.derive(SIGNING_KEY_LABEL);
    if !exists {
        create_database(&db_path, &cipher)?;
    }
    check_without_writing(&db_path, &cipher)?;
    let db = Database::builder()
        .set_cache_size(CACHE_BYTES)
        .open(&db_path)
        .map_err(at(&db_path))?;
    // Again under redb's exclusive lock, in case the file changed in between.
    check_key(&db, &cipher, &db_path)?;
    Ok((db, cipher, signing))
}

fn ensure_folder(folder: &Path) -> Result<(), StoreError> {
    match fs::metadata(folder) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(StoreError::Unavailable(format!(
            "{} is not a folder",
            folder.display()
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(folder)
            .map_err(|e| io_error(folder, "cannot create the state folder", &e)),
        Err(e) => Err(io_error(folder, "cannot read the state folder", &e)),
    }
}

fn exists(path: &Path) -> Result<bool, StoreError> {
    path.try_exists()
        .map_err(|e| io_error(path, "cannot read", &e))
}

/// The key named by `store.key_env` / `store.key_file`; `None` for a generated key.
/// The redis backend uses it too.
pub(in crate::store) fn given_key(source: &KeySource) -> Result<Option<StoreKey>, StoreError> {
    match source {
        KeySource::Env(name) => {
            let text = std::env::var(name).map_err(|e| {
                StoreError::Key(format!("store.key_env: environment variable {name}: {e}"))
            })?;
            StoreKey::parse(&text)
                .map(Some)
                .map_err(|e| StoreError::Key(format!("environment variable {name}: {e}")))
        }
        KeySource::File(path) => read_key_file(path).map(Some),
        KeySource::Generated => Ok(None),
    }
}

fn resolve_key(source: &KeySource, folder: &Path, db_exists: bool) -> Result<StoreKey, StoreError> {
    if let Some(key) = given_key(source)? {
        return Ok(key);
    }
    let path = folder.join(KEY_FILE);
    if exists(&path)? {
        read_key_file(&path)
    } else if db_exists {
        Err(StoreError::Key(format!(
            "{} exists but its key file {} is missing; restore the key file (or set \
             store.key_env / store.key_file): grantmux never generates a new key over \
             existing data",
            folder.join(DB_FILE).display(),
            path.display()
        )))
    } else {
        let key = StoreKey::generate();
        write_atomically(&path, format!("{}\n", key.to_base64()).as_bytes())?;
        tracing::info!(path = %path.display(), "generated a new store key");
        Ok(key)
    }
}

fn read_key_file(path: &Path) -> Result<StoreKey, StoreError> {
    let key_error = |what: String| StoreError::Key(format!("key file {}: {what}", path.display()));
    let meta = fs::metadata(path).map_err(|e| key_error(e.to_string()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(path = %path.display(), mode = format!("{:o}", meta.permissions().mode() & 0o777), "store key file is readable by others; chmod 600 it");
    }
    let text = fs::read_to_string(path).map_err(|e| key_error(e.to_string()))?;
    StoreKey::parse(&text).map_err(|e| key_error(e.to_string()))
}

/// temp file (0600) + fsync + rename + fsync of the folder.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension("tmp");
    let fail = |e: io::Error| io_error(path, "cannot write", &e);
    remove_if_present(&tmp)?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(fail)?;
    file.write_all(bytes).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    fs::rename(&tmp, path).map_err(fail)?;
    sync_parent(path)
}

/// Builds a new database under a temporary name and renames it into place, so
/// that `grants.redb` exists only once it holds its tables and key check.
fn create_database(db_path: &Path, cipher: &Cipher) -> Result<(), StoreError> {
    let tmp = db_path.with_extension("redb.tmp");
    remove_if_present(&tmp)?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io_error(&tmp, "cannot create", &e))?;
    let db = Database::builder().create_file(file).map_err(at(&tmp))?;
    let txn = db.begin_write().map_err(at(&tmp))?;
    {
        txn.open_table(GRANTS).map_err(at(&tmp))?;
        let mut meta = txn.open_table(META).map_err(at(&tmp))?;
        let check = cipher.seal(KEY_CHECK.as_bytes(), KEY_CHECK_PLAINTEXT);
        meta.insert(KEY_CHECK, check.as_slice()).map_err(at(&tmp))?;
    }
    txn.commit().map_err(at(&tmp))?;
    drop(db);
    fs::rename(&tmp, db_path).map_err(|e| io_error(db_path, "cannot create", &e))?;
    sync_parent(db_path)
}

/// Opens the database through a [`ScratchBackend`], so nothing reaches the file.
fn check_without_writing(db_path: &Path, cipher: &Cipher) -> Result<(), StoreError> {
    let file = File::open(db_path).map_err(|e| io_error(db_path, "cannot open", &e))?;
    let backend = ScratchBackend::new(file).map_err(|e| io_error(db_path, "cannot read", &e))?;
    if backend_is_empty(&backend) {
        return Err(StoreError::Corrupt(format!(
            "{} is empty",
            db_path.display()
        )));
    }
    let db = Database::builder()
        .set_cache_size(CACHE_BYTES)
        .create_with_backend(backend)
        .map_err(at(db_path))?;
    check_key(&db, cipher, db_path)
}

fn backend_is_empty(backend: &ScratchBackend) -> bool {
    redb::StorageBackend::len(backend).map_or(true, |len| len == 0)
}

fn check_key(db: &Database, cipher: &Cipher, db_path: &Path) -> Result<(), StoreError> {
    let txn = db.begin_read().map_err(at(db_path))?;
    let missing = || {
        StoreError::Corrupt(format!(
            "{} has no key check record: not a grantmux store, or damaged",
            db_path.display()
        ))
    };
    let meta = match txn.open_table(META) {
        Ok(meta) => meta,
        Err(redb::TableError::TableDoesNotExist(_)) => return Err(missing()),
        Err(e) => return Err(db_error(db_path, e.into())),
    };
    let record = meta
        .get(KEY_CHECK)
        .map_err(at(db_path))?
        .ok_or_else(missing)?;
    match cipher.open(KEY_CHECK.as_bytes(), record.value()) {
        Ok(plain) if plain == KEY_CHECK_PLAINTEXT => Ok(()),
        _ => Err(StoreError::WrongKey {
            path: db_path.to_owned(),
        }),
    }
}

pub(super) fn remove_if_present(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error(path, "cannot remove", &e)),
        _ => Ok(()),
    }
}

/// fsync the folder so that a rename survives a crash.
pub(super) fn sync_parent(path: &Path) -> Result<(), StoreError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    File::open(parent)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| io_error(parent, "cannot sync", &e))
}
