//! The file store against real files: durability, the version fence, encryption at
//! rest, key handling, refusing damaged or foreign folders without touching them, and
//! wiping a deauthorized grant so that no old copy of it stays in the file.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use grantmux::app::{Running, StartError, StartOptions};
use grantmux::config::{Config, KeySource, StoreBackend};
use grantmux::grants::{AccessToken, Grant, GrantKey, GrantState, Subject};
use grantmux::secret::Secret;
use grantmux::store::{
    FileStore, GrantStore, Message, Outbox, StoreError, StoreKey, DB_FILE, KEY_FILE,
};
use redb::ReadableTable as _;
use tempfile::TempDir;

/// Set by `kill_9_mid_save_loses_no_acknowledged_write` for its child process.
const CHILD_FOLDER_ENV: &str = "GRANTMUX_TEST_CRASH_CHILD_FOLDER";
const CHILD_KEY_ENV: &str = "GRANTMUX_TEST_CRASH_CHILD_KEY";

// === fixtures ===

fn grant_key(n: usize) -> GrantKey {
    GrantKey::new("client-A", Subject::User(format!("user-{n}")))
}

fn grant(n: usize, version: u64) -> Grant {
    Grant {
        access_token: AccessToken::new(&format!("ACCESS-TOKEN-plaintext-{n}-v{version}")),
        refresh_token: Some(Secret::new(format!(
            "REFRESH-TOKEN-plaintext-{n}-v{version}"
        ))),
        expires_at_ms: 4_000_000_000_000,
        refreshed_at_ms: 1_700_000_000_000,
        scope: "meeting:read".into(),
        api_url: "https://api.zoom.us".to_owned(),
        version,
        ..Grant::empty(grant_key(n))
    }
}

/// A store key in a file outside the state folder.
struct KeyFile {
    _dir: TempDir,
    key: StoreKey,
    source: KeySource,
}

fn key_file() -> KeyFile {
    let dir = TempDir::new().expect("tempdir");
    let key = StoreKey::generate();
    let path = dir.path().join("store.key");
    std::fs::write(&path, key.to_base64()).expect("write key");
    KeyFile {
        _dir: dir,
        key,
        source: KeySource::File(path),
    }
}

fn open(folder: &Path, key: &KeyFile) -> FileStore {
    FileStore::open(folder, &key.source).expect("open store")
}

/// Every file under `folder` with its bytes, for byte-for-byte comparisons.
fn snapshot(folder: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(folder).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files.extend(snapshot(&path));
        } else {
            files.insert(path.clone(), std::fs::read(&path).expect("read"));
        }
    }
    files
}

/// The first needle found in `haystack`, in one pass (a naive search per needle
/// takes seconds over a few MiB in a debug build). Needles are at least 8 bytes.
fn find_any<'a>(haystack: &[u8], needles: &'a [Vec<u8>]) -> Option<&'a [u8]> {
    let mut by_prefix: HashMap<&[u8], Vec<&[u8]>> = HashMap::new();
    for needle in needles {
        assert!(needle.len() >= 8, "needle too short to be distinctive");
        by_prefix.entry(&needle[..8]).or_default().push(needle);
    }
    haystack.windows(8).enumerate().find_map(|(i, prefix)| {
        let candidates = by_prefix.get(prefix)?;
        candidates
            .iter()
            .copied()
            .find(|n| haystack[i..].starts_with(n))
    })
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

// === round trips and the fence ===

#[tokio::test]
async fn save_then_load_round_trips() {
    let (dir, key) = (TempDir::new().expect("tempdir"), key_file());
    let folder = dir.path().join("state");
    let store = open(&folder, &key);
    assert_eq!(store.load(&grant_key(1)).await.expect("load"), None);
    store.save(&grant(1, 1)).await.expect("save");
    assert_eq!(
        store.load(&grant_key(1)).await.expect("load"),
        Some(grant(1, 1))
    );
    store.save(&grant(1, 2)).await.expect("save v2");
    assert_eq!(
        store.load(&grant_key(1)).await.expect("load"),
        Some(grant(1, 2))
    );
    store.ping().await.expect("ping");
    assert_eq!(mode(&folder), 0o700);
    assert_eq!(mode(&folder.join(DB_FILE)), 0o600);
}

#[tokio::test]
async fn load_all_after_reopen_returns_the_same_grants() {
    let (dir, key) = (TempDir::new().expect("tempdir"), key_file());
    let folder = dir.path().join("state/nested");
    let saved: Vec<Grant> = (0..50).map(|n| grant(n, 1 + n as u64 % 3)).collect();
    {
        let store = open(&folder, &key);
        for g in &saved {
            store.save(g).await.expect("save");
        }
    }
    let mut loaded = open(&folder, &key).load_all().await.expect("load_all");
    loaded.sort_by(|a, b| a.key.cmp(&b.key));
    let mut expected = saved;
    expected.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(loaded, expected);
}

#[tokio::test]
async fn version_fence_refuses_stale_and_equal_versions() {
    let (dir, key) = (TempDir::new().expect("tempdir"), key_file());
    let store = open(dir.path(), &key);
    store.save(&grant(1, 5)).await.expect("save v5");
    for attempted in [4, 5] {
        match store.save(&grant(1, attempted)).await {
            Err(StoreError::Conflict {
                key: k,
                stored: 5,
                attempted: a,
            }) => assert_eq!((k, a), (grant_key(1).id(), attempted)),
            other => panic!("v{attempted}: expected a conflict, got {other:?}"),
        }
    }
    assert_eq!(
        store.load(&grant_key(1)).await.expect("load"),
        Some(grant(1, 5))
    );
    store
        .save(&grant(1, 7))
        .await
        .expect("a version jump is allowed");
}

#[tokio::test]
async fn save_batch_is_fenced_and_all_or_nothing() {
    let (dir, key) = (TempDir::new().expect("tempdir"), key_file());
    let store = open(dir.path(), &key);
    store.save(&grant(2, 5)).await.expect("save");
    let err = store
        .save_batch(&[grant(1, 1), grant(2, 3)])
        .expect_err("stale");
    assert!(
        matches!(err, StoreError::Conflict { stored: 5, .. }),
        "{err:?}"
    );
    assert_eq!(store.load(&grant_key(1)).await.expect("load"), None);
    store
        .save_batch(&[grant(1, 1), grant(2, 6)])
        .expect("batch");
    let mut all = store.load_all().await.expect("load_all");
    all.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(all, [grant(1, 1), grant(2, 6)]);
}

// === at rest ===

#[tokio::test]
async fn no_token_or_key_appears_in_plaintext_at_rest() {
    let (dir, key) = (TempDir::new().expect("tempdir"), key_file());
    let mut grants: Vec<Grant> = (0..20).map(|n| grant(n, 1)).collect();
    {
        let store = open(dir.path(), &key);
        for g in &grants {
            store.save(g).await.expect("save");
        }
        // Rotate some, so that pages freed by a rotation held sealed tokens too.
        for n in 0..10 {
            store.save(&grant(n, 2)).await.expect("rotate");
            grants.push(grant(n, 2));
        }
    }
    let raw = base64_decode(&key.key.to_base64());
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let mut needles: Vec<Vec<u8>> = vec![
        key.key.to_base64().into_bytes(),
        hex.clone().into_bytes(),
        hex.to_uppercase().into_bytes(),
        raw,
        b"TOKEN-plaintext".to_vec(),
        b"refresh_token".to_vec(),
    ];
    for g in &grants {
        needles.push(g.access_token.expose().as_bytes().to_vec());
        needles.extend(
            g.refresh_token
                .iter()
                .map(|t| t.expose().as_bytes().to_vec()),
        );
    }
    let files = snapshot(dir.path());
    assert!(
        files.len() == 1,
        "expected only {DB_FILE}: {:?}",
        files.keys()
    );
    for (path, bytes) in &files {
        if let Some(found) = find_any(bytes, &needles) {
            panic!(
                "{} holds {:?} in plaintext",
                path.display(),
                String::from_utf8_lossy(found)
            );
        }
    }
    // The search itself works: the grant ids are stored in plaintext, as table keys.
    assert!(find_any(
        &files[&dir.path().join(DB_FILE)],
        &[grant_key(3).id().into_bytes()]
    )
    .is_some());
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64")
}

// === keys ===

#[tokio::test]
async fn wrong_key_is_refused_and_the_folder_is_untouched() {
    let (dir, key_a, key_b) = (TempDir::new().expect("tempdir"), key_file(), key_file());
    open(dir.path(), &key_a)
        .save(&grant(1, 1))
        .await
        .expect("save");
    let before = snapshot(dir.path());
    for _ in 0..2 {
        match FileStore::open(dir.path(), &key_b.source) {
            Err(e @ StoreError::WrongKey { .. }) => {
                assert!(e.to_string().contains("encrypted with another key"), "{e}")
            }
            other => panic!("expected WrongKey, got {other:?}"),
        }
        assert_eq!(
            snapshot(dir.path()),
            before,
            "a refused open changed the folder"
        );
    }
    let store = open(dir.path(), &key_a);
    assert_eq!(
        store.load(&grant_key(1)).await.expect("load"),
        Some(grant(1, 1))
    );
}

#[tokio::test]
async fn generated_key_is_written_0600_once_and_reused() {
    let dir = TempDir::new().expect("tempdir");
    let key_path = dir.path().join(KEY_FILE);
    FileStore::open(dir.path(), &KeySource::Generated)
        .expect("first open")
        .save(&grant(1, 1))
        .await
        .expect("save");
    assert_eq!(mode(&key_path), 0o600);
    let first = std::fs::read(&key_path).expect("key file");
    StoreKey::parse(std::str::from_utf8(&first).expect("utf8")).expect("a valid key");

    let store = FileStore::open(dir.path(), &KeySource::Generated).expect("second open");
    assert_eq!(std::fs::read(&key_path).expect("key file"), first);
    assert_eq!(
        store.load(&grant_key(1)).await.expect("load"),
        Some(grant(1, 1))
    );
    let names: Vec<_> = snapshot(dir.path()).into_keys().collect();
    assert_eq!(names, [dir.path().join(DB_FILE), dir.path().join(KEY_FILE)]);
}

#[tokio::test]
async fn missing_generated_key_is_never_replaced() {
    let dir = TempDir::new().expect("tempdir");
    drop(FileStore::open(dir.path(), &KeySource::Generated).expect("create"));
    std::fs::remove_file(dir.path().join(KEY_FILE)).expect("remove key");
    let before = snapshot(dir.path());
    match FileStore::open(dir.path(), &KeySource::Generated) {
        Err(e @ StoreError::Key(_)) => assert!(e.to_string().contains("missing"), "{e}"),
        other => panic!("expected a key error, got {other:?}"),
    }
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn malformed_or_absent_keys_are_clear_errors() {
    let dir = TempDir::new().expect("tempdir");
    let bad = dir.path().join("bad.key");
    std::fs::write(&bad, "not a key").expect("write");
    for source in [
        KeySource::File(bad),
        KeySource::File(dir.path().join("absent.key")),
        KeySource::Env("GRANTMUX_TEST_SURELY_UNSET_VARIABLE".to_owned()),
    ] {
        let err = FileStore::open(&dir.path().join("state"), &source).expect_err("must fail");
        assert!(matches!(err, StoreError::Key(_)), "{source:?}: {err:?}");
    }
}

// === damaged folders ===

#[tokio::test]
async fn garbage_or_truncated_database_is_refused_and_the_folder_is_untouched() {
    let (dir, key) = (TempDir::new().expect("tempdir"), key_file());
    open(dir.path(), &key)
        .save(&grant(1, 1))
        .await
        .expect("save");
    let db = dir.path().join(DB_FILE);
    let clean = std::fs::read(&db).expect("read");
    let mut bad_magic = clean.clone();
    bad_magic[3] ^= 0xff;
    let variants = [
        vec![],
        b"this is not a database".repeat(1000),
        clean[..clean.len() / 2].to_vec(),
        clean[..4096].to_vec(),
        bad_magic,
    ];
    for bytes in variants {
        std::fs::write(&db, &bytes).expect("write garbage");
        let before = snapshot(dir.path());
        match FileStore::open(dir.path(), &key.source) {
            Err(e @ StoreError::Corrupt(_)) => assert!(e.to_string().contains(DB_FILE), "{e}"),
            other => panic!("{} bytes: expected Corrupt, got {other:?}", bytes.len()),
        }
        assert_eq!(snapshot(dir.path()), before);
    }
}

/// Edits the raw records of `table` with redb directly, as damage or an attacker would.
fn tamper(db: &Path, table: &str, edit: impl FnOnce(&mut redb::Table<'_, &str, &[u8]>)) {
    let db = redb::Database::open(db).expect("redb open");
    let txn = db.begin_write().expect("write txn");
    {
        let mut table = txn
            .open_table(redb::TableDefinition::<&str, &[u8]>::new(table))
            .expect("table");
        edit(&mut table);
    }
    txn.commit().expect("commit");
}

fn flip_byte(table: &mut redb::Table<'_, &str, &[u8]>, id: &str) {
    let mut value = table
        .get(id)
        .expect("get")
        .expect("present")
        .value()
        .to_vec();
    value[20] ^= 0x01;
    table.insert(id, value.as_slice()).expect("insert");
}

#[tokio::test]
async fn damaged_key_check_is_refused_and_the_folder_is_untouched() {
    let (dir, key) = (TempDir::new().expect("tempdir"), key_file());
    drop(open(dir.path(), &key));
    tamper(&dir.path().join(DB_FILE), "meta", |t| {
        flip_byte(t, "key_check")
    });
    let before = snapshot(dir.path());
    let err = FileStore::open(dir.path(), &key.source).expect_err("damaged key check");
    assert!(err.to_string().contains("damaged"), "{err}");
    assert_eq!(snapshot(dir.path()), before);
}

/// A flipped byte, and a record moved under another grant's id (the id is the
/// associated data), are both refused with an error naming the grant.
#[tokio::test]
async fn damaged_or_swapped_grant_records_are_clear_errors() {
    let (dir, key) = (TempDir::new().expect("tempdir"), key_file());
    let store = open(dir.path(), &key);
    store
        .save_batch(&[grant(1, 1), grant(2, 1), grant(3, 1)])
        .expect("save");
    drop(store);
    tamper(&dir.path().join(DB_FILE), "grants", |t| {
        flip_byte(t, &grant_key(1).id());
        let sealed_3 = t
            .get(grant_key(3).id().as_str())
            .expect("get")
            .expect("present")
            .value()
            .to_vec();
        t.insert(grant_key(2).id().as_str(), sealed_3.as_slice())
            .expect("swap");
    });
    let store = open(dir.path(), &key);
    for n in [1, 2] {
        match store.load(&grant_key(n)).await {
            Err(e @ StoreError::Corrupt(_)) => {
                assert!(e.to_string().contains(&grant_key(n).id()), "{e}")
            }
            other => panic!("grant {n}: expected Corrupt, got {other:?}"),
        }
    }
    assert!(matches!(
        store.load_all().await,
        Err(StoreError::Corrupt(_))
    ));
    assert_eq!(
        store.load(&grant_key(3)).await.expect("load"),
        Some(grant(3, 1))
    );
}

#[tokio::test]
async fn load_all_spans_many_chunks_and_stops_on_a_damaged_one() {
    let (dir, key) = (TempDir::new().expect("tempdir"), key_file());
    let store = open(dir.path(), &key);
    let grants: Vec<Grant> = (0..5000).map(|n| grant(n, 1)).collect();
    store.save_batch(&grants).expect("batch");
    assert_eq!(store.load_all().await.expect("load_all").len(), 5000);
    drop(store);
    tamper(&dir.path().join(DB_FILE), "grants", |t| {
        flip_byte(t, &grant_key(4321).id())
    });
    let err = open(dir.path(), &key)
        .load_all()
        .await
        .expect_err("damaged");
    assert!(err.to_string().contains(&grant_key(4321).id()), "{err}");
}

// === wiping (app_deauthorized) ===

/// Where a rewrite builds the new database (`store::file::COMPACT_FILE`).
const COMPACT_FILE: &str = "grants.redb.compact";
const QUEUE: &str = "webhooks";
const DEAUTHORIZED_AT_MS: u64 = 1_800_000_000_000;

fn message(n: u32) -> Message {
    Message {
        kind: "zoom".into(),
        event: "meeting.created".into(),
        app: Some("client-A".into()),
        body: format!(r#"{{"event":"meeting.created","n":{n}}}"#),
        headers: vec![],
        queued_at_ms: 1_700_000_000_000 + u64::from(n),
    }
}

/// The sealed record of grant `id` as stored now, read with redb directly
/// (the store must be closed).
fn sealed_record(folder: &Path, id: &str) -> Vec<u8> {
    let db = redb::Database::open(folder.join(DB_FILE)).expect("redb open");
    let txn = db.begin_read().expect("read txn");
    let table = txn
        .open_table(redb::TableDefinition::<&str, &[u8]>::new("grants"))
        .expect("grants table");
    let sealed = table.get(id).expect("get").expect("present");
    sealed.value().to_vec()
}

/// Grants 1 (saved, then rotated) to 4, and three messages queued. Returns the
/// open store and every sealed record grant 1 has had, the newest last.
async fn seeded(folder: &Path, key: &KeyFile) -> (FileStore, Vec<Vec<u8>>) {
    let id = grant_key(1).id();
    let store = open(folder, key);
    for n in 1..=4 {
        store.save(&grant(n, 1)).await.expect("save");
    }
    drop(store);
    let first = sealed_record(folder, &id);
    let store = open(folder, key);
    store.save(&grant(1, 2)).await.expect("rotate");
    for n in 0..3 {
        store
            .push(&[QUEUE.to_owned()], &message(n))
            .await
            .expect("push");
    }
    drop(store);
    let second = sealed_record(folder, &id);
    (open(folder, key), vec![first, second])
}

/// The store after grant 1's wipe: the wiped record, the others untouched,
/// the queue whole.
async fn assert_wiped_store(store: &FileStore, wiped: &Grant) {
    let mut all = store.load_all().await.expect("load_all");
    all.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(all, [wiped.clone(), grant(2, 1), grant(3, 1), grant(4, 1)]);
    let stored = store
        .load(&grant_key(1))
        .await
        .expect("load")
        .expect("grant 1");
    assert_eq!(
        stored.state,
        GrantState::Deauthorized {
            at_ms: DEAUTHORIZED_AT_MS,
            event_owed: true,
        }
    );
    assert!(stored.refresh_token.is_none() && stored.access_token.expose().is_empty());
    assert_eq!(store.counts(QUEUE).await.expect("counts").pending, 3);
}

/// Without the rewrite the problem is real: a plain `save` of the wiped
/// grant leaves its last sealed record, tokens and all, in the file's freed
/// pages (redb is copy-on-write). If this ever stops holding, the test below
/// proves nothing and needs a bigger store.
#[tokio::test]
async fn a_plain_save_of_a_wiped_grant_leaves_the_old_record_in_the_file() {
    let (dir, key) = (TempDir::new().expect("tempdir"), key_file());
    let (store, old) = seeded(dir.path(), &key).await;
    let wiped = grant(1, 2).deauthorized(DEAUTHORIZED_AT_MS);
    store.save(&wiped).await.expect("plain save");
    let file = std::fs::read(dir.path().join(DB_FILE)).expect("read");
    let newest = old.last().expect("a record").clone();
    assert!(
        find_any(&file, &[newest]).is_some(),
        "the freed page no longer holds the old record: the wipe test below is vacuous"
    );
    assert_wiped_store(&store, &wiped).await;
}

/// `save_wiped` rewrites the database: no sealed record grant 1 ever had is
/// left in any file of the folder, and everything else is there, also after
/// a reopen (the key check record was carried over), queue order included.
#[tokio::test]
async fn save_wiped_leaves_no_old_record_of_the_grant_in_the_folder() {
    let (dir, key) = (TempDir::new().expect("tempdir"), key_file());
    let (store, old) = seeded(dir.path(), &key).await;
    let wiped = grant(1, 2).deauthorized(DEAUTHORIZED_AT_MS);
    store.save_wiped(&wiped).await.expect("wipe");
    let files = snapshot(dir.path());
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        [&dir.path().join(DB_FILE)]
    );
    for (path, bytes) in &files {
        assert!(
            find_any(bytes, &old).is_none(),
            "{} still holds an old sealed record of the wiped grant",
            path.display()
        );
    }
    assert_wiped_store(&store, &wiped).await;
    // Later writes land in the new file.
    store.save(&grant(2, 2)).await.expect("save after the wipe");
    drop(store);

    let store = open(dir.path(), &key);
    assert_eq!(
        store.load(&grant_key(2)).await.expect("load"),
        Some(grant(2, 2))
    );
    let mut seen = Vec::new();
    while let Some(head) = store.head(QUEUE).await.expect("head") {
        seen.push(head.message.clone());
        store.ack(QUEUE, head.id).await.expect("ack");
    }
    assert_eq!(seen, (0..3).map(message).collect::<Vec<_>>());
}

// === durability ===

#[tokio::test]
async fn save_survives_a_drop_and_reopen() {
    let (dir, key) = (TempDir::new().expect("tempdir"), key_file());
    let store = open(dir.path(), &key);
    store.save(&grant(1, 1)).await.expect("save");
    drop(store);
    let loaded = open(dir.path(), &key).load_all().await.expect("load_all");
    assert_eq!(loaded, [grant(1, 1)]);
}

/// Runs a child process that saves new versions of one grant in a loop and prints
/// each version once `save` has returned, then `kill -9`s it at a random moment.
/// The store must then hold at least the last version the child acknowledged.
/// Five rounds, so that every round after the first also opens after a crash.
#[tokio::test]
async fn kill_9_mid_save_loses_no_acknowledged_write() {
    let (dir, key) = (TempDir::new().expect("tempdir"), key_file());
    for round in 0..5 {
        let acked = run_child_until_killed(dir.path(), &key.key, 5 + round * 7);
        let store = open(dir.path(), &key);
        let stored = store
            .load(&grant_key(1))
            .await
            .expect("load")
            .expect("grant");
        assert!(
            stored.version >= acked,
            "round {round}: acknowledged v{acked}, stored v{}",
            stored.version
        );
        assert_eq!(stored, grant(1, stored.version));
    }
}

fn run_child_until_killed(folder: &Path, key: &StoreKey, kill_after: u64) -> u64 {
    run_child("crash_child_saves_until_killed", folder, key, kill_after)
}

/// Runs the ignored test `child` as a child process until it has printed
/// `kill_after` lines `saved v<n>`, then `kill -9`s it. Returns the last `n`.
fn run_child(child: &str, folder: &Path, key: &StoreKey, kill_after: u64) -> u64 {
    let mut child = Command::new(std::env::current_exe().expect("current_exe"))
        .args(["--exact", child, "--ignored"])
        .args(["--nocapture", "--test-threads=1"])
        .env(CHILD_FOLDER_ENV, folder)
        .env(CHILD_KEY_ENV, key.to_base64())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let mut acked = 0;
    let mut seen = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("child stdout");
        if let Some(version) = line.strip_prefix("saved v") {
            acked = version.parse().expect("version");
            seen += 1;
            if seen == kill_after {
                break;
            }
        }
    }
    child.kill().expect("kill -9"); // SIGKILL on unix
    let status = child.wait().expect("wait");
    assert!(!status.success(), "child ended on its own: {status}");
    assert!(acked > 0, "child acknowledged nothing");
    acked
}

#[test]
#[ignore = "the child process of kill_9_mid_save_loses_no_acknowledged_write"]
fn crash_child_saves_until_killed() {
    let Ok(folder) = std::env::var(CHILD_FOLDER_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let source = KeySource::Env(CHILD_KEY_ENV.to_owned());
    let store = FileStore::open(Path::new(&folder), &source).expect("child open");
    let start = runtime
        .block_on(store.load(&grant_key(1)))
        .expect("load")
        .map_or(0, |g| g.version);
    for version in start + 1.. {
        runtime
            .block_on(store.save(&grant(1, version)))
            .expect("save");
        println!("saved v{version}");
    }
}

/// As `kill_9_mid_save_loses_no_acknowledged_write`, with `save_wiped`: most
/// kills land mid-rewrite (it is most of a wipe's time). Every reopen must
/// find one whole database, grant and queue intact, and no half-built file.
#[tokio::test]
async fn kill_9_mid_wipe_leaves_one_whole_database() {
    let (dir, key) = (TempDir::new().expect("tempdir"), key_file());
    {
        let store = open(dir.path(), &key);
        store.save(&grant(2, 1)).await.expect("seed");
        for n in 0..3 {
            store
                .push(&[QUEUE.to_owned()], &message(n))
                .await
                .expect("push");
        }
    }
    for round in 0..5 {
        let acked = run_child(
            "crash_child_wipes_until_killed",
            dir.path(),
            &key.key,
            2 + round * 3,
        );
        let store = open(dir.path(), &key);
        assert!(!dir.path().join(COMPACT_FILE).exists(), "round {round}");
        let stored = store
            .load(&grant_key(1))
            .await
            .expect("load")
            .expect("grant");
        assert!(
            stored.version >= acked,
            "round {round}: acked v{acked}, stored v{}",
            stored.version
        );
        assert_eq!(stored, grant(1, stored.version));
        assert_eq!(
            store.load(&grant_key(2)).await.expect("load"),
            Some(grant(2, 1))
        );
        let head = store.head(QUEUE).await.expect("head").expect("queued");
        assert_eq!(head.message, message(0));
        assert_eq!(store.counts(QUEUE).await.expect("counts").pending, 3);
    }
}

#[test]
#[ignore = "the child process of kill_9_mid_wipe_leaves_one_whole_database"]
fn crash_child_wipes_until_killed() {
    let Ok(folder) = std::env::var(CHILD_FOLDER_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let source = KeySource::Env(CHILD_KEY_ENV.to_owned());
    let store = FileStore::open(Path::new(&folder), &source).expect("child open");
    let start = runtime
        .block_on(store.load(&grant_key(1)))
        .expect("load")
        .map_or(0, |g| g.version);
    for version in start + 1.. {
        runtime
            .block_on(store.save_wiped(&grant(1, version)))
            .expect("save_wiped");
        println!("saved v{version}");
    }
}

// === wiring ===

#[tokio::test]
async fn app_starts_on_a_file_store_and_refuses_a_wrong_key() {
    let (dir, key) = (TempDir::new().expect("tempdir"), key_file());
    open(dir.path(), &key)
        .save(&grant(1, 1))
        .await
        .expect("seed");
    let config = |source: &KeySource| {
        let mut config = Config::for_upstream("http://127.0.0.1:9".parse().expect("uri"), vec![]);
        config.store.backend = StoreBackend::File {
            path: dir.path().to_owned(),
        };
        config.store.key = source.clone();
        config
    };
    let running = Running::start(config(&key.source), StartOptions::default())
        .await
        .expect("start");
    assert!(running.registry.get(&grant_key(1)).is_some());
    running
        .shutdown()
        .await
        .expect("every grant saved at shutdown");

    let err = Running::start(config(&key_file().source), StartOptions::default())
        .await
        .expect_err("wrong key");
    assert!(
        matches!(err, StartError::Store(StoreError::WrongKey { .. })),
        "{err:?}"
    );
}
