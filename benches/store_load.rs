//! Run with: cargo bench --bench store_load
//!
//! Start-up cost of the file store at scale: writes 100,000 grants into a temporary
//! folder, reopens it (as after a restart), and times `FileStore::open` and
//! `load_all`. Prints the durations, the bytes on disk per grant, and the growth
//! of the resident set while loading. A measurement, not a pass/fail test.

use std::path::Path;
use std::time::{Duration, Instant};

use grantmux::config::KeySource;
use grantmux::grants::{AccessToken, Grant, GrantKey, Subject};
use grantmux::secret::Secret;
use grantmux::store::{FileStore, GrantStore};

const GRANTS: usize = 100_000;
const BATCH: usize = 10_000;

fn main() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let folder = dir.path().join("state");
    let write_time = write_grants(&folder);
    println!("wrote {GRANTS} grants in {write_time:?} ({BATCH} per transaction)");

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    // First, while the heap is fresh, so the resident-set growth is all this run's.
    // The whole start-up as `grantmux serve` does it: open, load, build the registry
    // (one published snapshot and refresher per grant), bind the listeners.
    let rss_before = rss_bytes();
    let started = Instant::now();
    let running = runtime.block_on(async {
        let store = FileStore::open(&folder, &KeySource::Generated).expect("reopen");
        let config = grantmux::config::Config::for_upstream(
            "http://127.0.0.1:9".parse().expect("uri"),
            Vec::new(),
        );
        let options = grantmux::app::StartOptions {
            store: Some(std::sync::Arc::new(store)),
            ..Default::default()
        };
        grantmux::app::Running::start(config, options)
            .await
            .expect("start")
    });
    let total = started.elapsed();
    let rss_growth = rss_bytes().saturating_sub(rss_before);
    println!(
        "full start-up (open, load, registry, listeners): {total:.1?} (target <= 2 s); \
         resident set +{} bytes per grant held (target <= 2048)",
        rss_growth / GRANTS as u64
    );
    assert_eq!(running.registry.len(), GRANTS);
    runtime
        .block_on(running.shutdown())
        .expect("every grant saved at shutdown");
    for run in 1..=3 {
        let rss_before = rss_bytes();
        let cpu_before = cpu_time();
        let started = Instant::now();
        let store = FileStore::open(&folder, &KeySource::Generated).expect("reopen");
        let open_time = started.elapsed();
        let grants = runtime.block_on(store.load_all()).expect("load_all");
        let total = started.elapsed();
        let cpu = cpu_time().saturating_sub(cpu_before);
        assert_eq!(grants.len(), GRANTS);
        let rss_growth = rss_bytes().saturating_sub(rss_before);
        println!(
            "run {run}: open {open_time:.1?} + load_all {:.1?} = start-up {total:.1?} \
             (target <= 2 s); CPU {cpu:.1?}",
            total - open_time,
        );
        if run == 1 {
            // Later runs reuse the heap freed by the one before, so only the first counts.
            println!(
                "run 1: resident set +{} bytes per loaded grant (the Vec<Grant> and redb's cache)",
                rss_growth / GRANTS as u64
            );
        }
        drop((grants, store));
    }
    let disk = folder_bytes(&folder);
    println!(
        "on disk: {disk} bytes, {} bytes per grant",
        disk / GRANTS as u64
    );
    restart_after_a_crash(&folder, &runtime);
}

/// The folder copied while a store has it open, after a rotation was written, is
/// what `kill -9` leaves: redb's header still says "in use" and its saved allocator
/// state predates the last commit, so the next open repairs the file (walks every
/// page to rebuild that state) before grantmux can serve.
fn restart_after_a_crash(folder: &Path, runtime: &tokio::runtime::Runtime) {
    let crashed = tempfile::TempDir::new().expect("tempdir");
    let open = FileStore::open(folder, &KeySource::Generated).expect("open");
    let rotated = Grant {
        version: 2,
        ..grant(0)
    };
    open.save_batch(&[rotated]).expect("a rotation");
    for entry in std::fs::read_dir(folder).expect("read_dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), crashed.path().join(entry.file_name())).expect("copy");
    }
    drop(open);
    let started = Instant::now();
    let store = FileStore::open(crashed.path(), &KeySource::Generated).expect("open after crash");
    let open_time = started.elapsed();
    let grants = runtime.block_on(store.load_all()).expect("load_all");
    assert_eq!(grants.len(), GRANTS);
    println!(
        "after a crash: open (key check and repair) {open_time:.1?} + load_all {:.1?} = {:.1?}",
        started.elapsed() - open_time,
        started.elapsed()
    );
}

fn write_grants(folder: &Path) -> Duration {
    let store = FileStore::open(folder, &KeySource::Generated).expect("create");
    let started = Instant::now();
    // Grant ids arrive in no particular order; sorted inserts would leave every
    // B-tree leaf half full. 7919 is prime, so this visits every n once.
    let order: Vec<usize> = (0..GRANTS).map(|i| i * 7919 % GRANTS).collect();
    for chunk in order.chunks(BATCH) {
        let grants: Vec<Grant> = chunk.iter().map(|&n| grant(n)).collect();
        store.save_batch(&grants).expect("save_batch");
    }
    started.elapsed()
}

/// A grant shaped like a real one: Zoom tokens are JWTs of several hundred bytes.
fn grant(n: usize) -> Grant {
    let key = GrantKey::new(
        "zoom-client-id-0123456789",
        Subject::User(format!("{n:022}")),
    );
    Grant {
        access_token: AccessToken::new(&format!("eyJ{n:0>700}")),
        refresh_token: Some(Secret::new(format!("eyJ{n:0>500}"))),
        expires_at_ms: 1_700_000_000_000 + n as u64,
        refreshed_at_ms: 1_700_000_000_000,
        scope: "meeting:read:admin meeting:write:admin user:read:admin".into(),
        api_url: "https://api.zoom.us".to_owned(),
        version: 1,
        ..Grant::empty(key)
    }
}

fn folder_bytes(folder: &Path) -> u64 {
    std::fs::read_dir(folder)
        .expect("read_dir")
        .map(|e| e.expect("entry").metadata().expect("metadata").len())
        .sum()
}

/// User + system CPU time of the whole process, from /proc (Linux, 100 Hz ticks); 0 elsewhere.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks: u64 = fields
        .get(11..13)
        .map_or(0, |t| t.iter().filter_map(|v| v.parse::<u64>().ok()).sum());
    Duration::from_millis(ticks * 10)
}

/// VmRSS from /proc (Linux); 0 elsewhere.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
