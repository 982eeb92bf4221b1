//! Real `grantmux serve` replicas finding their Redis through the Sentinels of
//! `support.rs`, an in-process simulator, and callers that note when each
//! failure happened.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use grantmux::sim::{Sim, SimConfig, SimHandle};
use http::Method;
use serde_json::Value;
use tempfile::TempDir;

use crate::common::client::basic;
use crate::common::process::{write_config, Grantmux, CLIENT, SECRET};
pub(crate) use crate::redis_support::{send, Http, USER_GRANT, USER_KEY};
use crate::support::{Ha, MASTER, REDIS_PASSWORD};

const USER: &str = "sim-user";
const STORE_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const REDIRECT: &str = "http://localhost/cb";
/// The change channel every replica subscribes to (`src/store/redis/scripts.rs`).
pub(crate) const CHANGES: &str = "grantmux:changes";
/// How long grantmux may take to do what a test waits for.
pub(crate) const BOUND: Duration = Duration::from_secs(30);
/// `store.replica_ack_timeout` in these tests.
const ACK_TIMEOUT: &str = "500ms";

/// The Redis topology, the simulator, and the replicas' `proxy.toml`.
pub(crate) struct Fleet {
    pub(crate) ha: Ha,
    pub(crate) sim: SimHandle,
    pub(crate) http: Http,
    config: PathBuf,
    _dir: TempDir,
}

/// One `grantmux serve` process. Killed on drop.
pub(crate) struct Replica {
    pub(crate) name: String,
    proxy: std::net::SocketAddr,
    admin: std::net::SocketAddr,
    process: Grantmux,
}

/// Callers calling `/v2/users/me` on replicas in a loop until stopped.
pub(crate) struct Callers {
    stop: Arc<AtomicBool>,
    pub(crate) ok: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<Failure>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// A caller's failed call: through which replica, when it was sent, when
/// its answer (or error) came, and what it was.
#[derive(Clone, Debug)]
pub(crate) struct Failure {
    pub(crate) replica: String,
    pub(crate) sent: Instant,
    pub(crate) at: Instant,
    pub(crate) what: String,
}

// === impl Fleet ===

impl Fleet {
    /// The Redis topology, a simulator, and a config with Sentinel and
    /// `store.min_replicas_acked = min_acked`.
    pub(crate) async fn start(sim: SimConfig, min_acked: u32) -> Self {
        let ha = tokio::task::block_in_place(Ha::start);
        let sim = Sim::start(sim).await.expect("sim starts");
        let dir = tempfile::tempdir().expect("tempdir");
        let config = write_config(dir.path(), &sim.base_url(), &toml(&ha, min_acked));
        Self {
            ha,
            sim,
            http: crate::common::client::http(),
            config,
            _dir: dir,
        }
    }

    /// A replica. Its `REDIS_URL` gives the password; its host and port
    /// (nothing listens on port 1) are ignored with Sentinel.
    pub(crate) fn replica(&self, name: &str) -> Replica {
        let url = format!("redis://:{REDIS_PASSWORD}@127.0.0.1:1/0");
        let env = [
            ("REDIS_URL", url.as_str()),
            ("GRANTMUX_STORE_KEY", STORE_KEY),
            ("USER_KEY", USER_KEY),
        ];
        let process = Grantmux::try_start(&self.config, &env)
            .unwrap_or_else(|(code, log)| panic!("{name} exited ({code:?}): {log:#?}"));
        Replica {
            name: name.to_owned(),
            proxy: process.proxy,
            admin: process.admin,
            process,
        }
    }

    pub(crate) fn replicas(&self, n: usize) -> Vec<Replica> {
        (0..n).map(|i| self.replica(&format!("r{i}"))).collect()
    }

    /// The user authorizes; the code is exchanged at `via`'s token endpoint.
    pub(crate) async fn authorize(&self, via: &Replica) {
        let code = self.sim.issue_code(CLIENT, USER, REDIRECT);
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
            ])
            .finish();
        let (status, answer) = send(
            &self.http,
            Method::POST,
            &format!("http://{}/oauth/token", via.proxy),
            &[
                ("authorization", &basic(CLIENT, SECRET)),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            body,
        )
        .await
        .expect("token endpoint answers");
        assert_eq!(
            status,
            200,
            "code exchange: {}",
            String::from_utf8_lossy(&answer)
        );
    }

    /// Each replica's last log lines (bar the callers' failed requests, each
    /// logged, which would crowd out the rest) and what the Sentinels
    /// logged: for a failed assertion's message.
    pub(crate) fn logs(&self, replicas: &[&Replica]) -> String {
        let mut text = String::new();
        for r in replicas {
            let log: Vec<String> = r
                .log()
                .into_iter()
                .filter(|l| !l.contains("\"request failed\""))
                .collect();
            let tail = &log[log.len().saturating_sub(40)..];
            text += &format!("--- {} ---\n{}\n", r.name, tail.join("\n"));
        }
        text + &self.ha.sentinel_logs()
    }
}

/// `proxy.toml` after the app: the issue's `[store]` keys, quick refresh
/// retries, one caller of the user grant, no rate shaping.
fn toml(ha: &Ha, min_acked: u32) -> String {
    format!(
        r#"
[store]
backend = "redis"
url_env = "REDIS_URL"
key_env = "GRANTMUX_STORE_KEY"
sentinels = {sentinels}
sentinel_master = "{MASTER}"
min_replicas_acked = {min_acked}
replica_ack_timeout = "{ACK_TIMEOUT}"
lock_lease = "2s"
[refresh]
ahead = "5m"
backoff_min = "50ms"
backoff_max = "500ms"
[[caller]]
name = "user"
key_env = "USER_KEY"
grant = {{ client_id = "{CLIENT}", user_id = "{USER}" }}
[rate_limit]
enabled = false
"#,
        sentinels = ha.sentinels_toml(),
    )
}

// === impl Replica ===

impl Replica {
    /// `GET /v2/users/me` through this replica with the caller key.
    pub(crate) async fn me(&self, http: &Http) -> u16 {
        let auth = format!("Bearer {USER_KEY}");
        let url = format!("http://{}/v2/users/me", self.proxy);
        send(http, Method::GET, &url, &[("authorization", &auth)], "")
            .await
            .map_or(0, |(s, _)| s)
    }

    /// This replica's view of the user grant from `GET /grants`.
    pub(crate) async fn grant(&self, http: &Http) -> Option<Value> {
        let url = format!("http://{}/grants", self.admin);
        let (status, body) = send(http, Method::GET, &url, &[], "").await.ok()?;
        assert_eq!(status, 200);
        let v: Value = serde_json::from_slice(&body).ok()?;
        v["grants"]
            .as_array()?
            .iter()
            .find(|g| g["id"] == USER_GRANT)
            .cloned()
    }

    /// The version of the token this replica would inject (0: none).
    pub(crate) async fn version(&self, http: &Http) -> u64 {
        let grant = self.grant(http).await;
        grant.and_then(|g| g["version"].as_u64()).unwrap_or(0)
    }

    /// Does it hold the user grant's tokens in memory only?
    pub(crate) async fn unpersisted(&self, http: &Http) -> bool {
        let grant = self.grant(http).await.expect("the user grant");
        grant["unpersisted"].as_bool().expect("unpersisted")
    }

    /// `POST /grants/{id}/refresh`. Admin accepts one per grant per 5 s; a
    /// 429 is waited out (polling), not asserted on.
    pub(crate) async fn force_refresh(&self, http: &Http) -> (u16, Value) {
        let url = format!("http://{}/grants/{USER_GRANT}/refresh", self.admin);
        let deadline = Instant::now() + BOUND;
        loop {
            let (status, body) = send(http, Method::POST, &url, &[], "")
                .await
                .expect("admin answers");
            if status != 429 || Instant::now() > deadline {
                return (status, serde_json::from_slice(&body).unwrap_or(Value::Null));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// [`Self::force_refresh`] in a task of its own, for a test that acts
    /// while the refresh runs.
    pub(crate) fn spawn_force_refresh(
        &self,
        http: &Http,
    ) -> tokio::task::JoinHandle<Result<(u16, bytes::Bytes), String>> {
        let url = format!("http://{}/grants/{USER_GRANT}/refresh", self.admin);
        let http = http.clone();
        tokio::spawn(async move { send(&http, Method::POST, &url, &[], "").await })
    }

    /// `/readyz/store`: the store answers and holds every rotated token.
    pub(crate) async fn readyz_store(&self, http: &Http) -> u16 {
        let url = format!("http://{}/readyz/store", self.admin);
        send(http, Method::GET, &url, &[], "")
            .await
            .map_or(0, |(s, _)| s)
    }

    /// Has it logged a line containing `text` (ignoring case)?
    pub(crate) fn logged(&self, text: &str) -> bool {
        let text = text.to_lowercase();
        self.log().iter().any(|l| l.to_lowercase().contains(&text))
    }

    pub(crate) fn log(&self) -> Vec<String> {
        self.process.log()
    }
}

// === impl Callers ===

impl Callers {
    /// `per_replica` callers on each of `replicas`, each calling in a loop.
    pub(crate) fn start(http: &Http, replicas: &[&Replica], per_replica: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for replica in replicas {
            for _ in 0..per_replica {
                let (stop, ok, failures) = (stop.clone(), ok.clone(), failures.clone());
                let http = http.clone();
                let name = replica.name.clone();
                let url = format!("http://{}/v2/users/me", replica.proxy);
                tasks.push(tokio::spawn(async move {
                    let auth = format!("Bearer {USER_KEY}");
                    while !stop.load(Ordering::Relaxed) {
                        let sent = Instant::now();
                        let answer =
                            send(&http, Method::GET, &url, &[("authorization", &auth)], "").await;
                        let what = match answer {
                            Ok((200, _)) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                                continue;
                            }
                            Ok((s, b)) => format!("{s} {}", String::from_utf8_lossy(&b)),
                            Err(e) => e,
                        };
                        let failure = Failure {
                            replica: name.clone(),
                            sent,
                            at: Instant::now(),
                            what,
                        };
                        failures.lock().expect("failures").push(failure);
                    }
                }));
            }
        }
        Self {
            stop,
            ok,
            failures,
            tasks,
        }
    }

    /// Calls answered 200 so far.
    pub(crate) fn served(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Waits (polling, bounded) until `more` further calls were answered 200.
    pub(crate) async fn wait_served(&self, more: u64) {
        let target = self.served() + more;
        let deadline = Instant::now() + BOUND;
        while self.served() < target {
            assert!(
                Instant::now() < deadline,
                "callers were not served: {} of {target} answered 200; failures: {:#?}",
                self.served(),
                self.failures()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub(crate) fn failures(&self) -> Vec<Failure> {
        self.failures.lock().expect("failures").clone()
    }

    /// Stops the callers; returns (calls answered 200, failures).
    pub(crate) async fn stop(self) -> (u64, Vec<Failure>) {
        self.stop.store(true, Ordering::Relaxed);
        let failures = self.failures.clone();
        for task in self.tasks {
            task.await.expect("caller task");
        }
        let failures = failures.lock().expect("failures").clone();
        (self.ok.load(Ordering::Relaxed), failures)
    }
}

// === impl Failure ===

impl Failure {
    /// "N failed calls, from .. to .. after `since` (the first: ..)", or
    /// "no failed call": a caller-side failure window, for the README.
    pub(crate) fn window(failures: &[Failure], since: Instant) -> String {
        let first = failures.iter().min_by_key(|f| f.at);
        let last = failures.iter().map(|f| f.at).max();
        match (first, last) {
            (Some(first), Some(last)) => format!(
                "{} failed calls, {:?} to {:?} after the kill (the first: {}: {})",
                failures.len(),
                first.at.saturating_duration_since(since),
                last.saturating_duration_since(since),
                first.replica,
                first.what
            ),
            _ => "no failed call".to_owned(),
        }
    }
}

// === helpers ===

/// Polls `done` (every 10 ms) until it holds; panics after [`BOUND`] with
/// `what` and `context()` (logs, say).
pub(crate) async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    context: impl Fn() -> String,
    mut done: impl FnMut() -> F,
) -> Duration {
    let started = Instant::now();
    while !done().await {
        assert!(
            started.elapsed() < BOUND,
            "timed out ({BOUND:?}) waiting for {what}\n{}",
            context()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}
