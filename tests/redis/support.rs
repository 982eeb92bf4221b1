//! Fixtures: a `redis-server` of the test's own, real `grantmux serve` replicas
//! sharing it, an in-process simulator, and callers that count failures.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use grantmux::sim::{Sim, SimConfig, SimHandle, TestCertificates};
use http::Method;
use serde_json::Value;
use tempfile::TempDir;

pub(crate) use crate::common::client::Http;
use crate::common::client::{basic, read, request};
use crate::common::process::{write_config, Exited, Grantmux};
pub(crate) use crate::common::process::{CLIENT, SECRET};

pub(crate) const USER: &str = "sim-user";
pub(crate) const ACCOUNT: &str = "sim-account";
pub(crate) const USER_GRANT: &str = "sim-client/user:sim-user";
pub(crate) const S2S_GRANT: &str = "sim-client/account:sim-account";
/// Static caller keys (`[[caller]]`), one per grant.
pub(crate) const USER_KEY: &str = "redis-test-user-caller-key";
pub(crate) const S2S_KEY: &str = "redis-test-s2s-caller-key";
const STORE_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const REDIRECT: &str = "http://localhost/cb";
/// Every test Redis demands this password, so the URL the replicas get holds a
/// secret that must never reach their logs.
pub(crate) const REDIS_PASSWORD: &str = "redis-test-password-7d1c";
const DEADLINE: Duration = Duration::from_secs(30);
/// A TLS Redis's PEM files, in its folder.
const CA_FILE: &str = "ca.pem";
const CERT_FILE: &str = "redis.pem";
const KEY_FILE: &str = "redis.key";

/// A `redis-server` on a free port with an append-only file in its own folder,
/// so that a test can kill it and start it again on the same data. Killed on drop.
pub(crate) struct RedisServer {
    pub(crate) port: u16,
    dir: TempDir,
    child: Option<Child>,
    /// The CA's PEM when Redis speaks TLS only ([`Self::start_tls`]).
    tls_ca: Option<String>,
    /// Redis's `appendfsync`: `always` unless started with [`Self::start_fsync_everysec`].
    appendfsync: &'static str,
}

/// Settings every replica of one test shares.
#[derive(Clone, Debug)]
pub(crate) struct ReplicaConfig {
    pub(crate) lock_lease: &'static str,
    pub(crate) ahead: &'static str,
    /// The `[rate_limit]` section. Off by default here: these tests are about
    /// grants, and shaping (on in production) would pace their bursts at
    /// Zoom's Light rate for the whole account, 30 a second, stretching a burst
    /// across several of the 1 s tokens they count rotations of. Shaping across
    /// replicas has tests of its own (`ratelimit.rs`, `fairness.rs`).
    pub(crate) rate_limit: &'static str,
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        Self {
            lock_lease: "2s",
            ahead: "5m",
            rate_limit: "enabled = false",
        }
    }
}

/// One `grantmux serve` process. Killed on drop (SIGCONT first, in case it is stopped).
pub(crate) struct Replica {
    pub(crate) name: String,
    pub(crate) proxy: SocketAddr,
    pub(crate) admin: SocketAddr,
    process: Grantmux,
}

/// Everything a multi-replica test runs: Redis, the simulator and the replicas' config.
pub(crate) struct Cluster {
    pub(crate) redis: RedisServer,
    pub(crate) sim: SimHandle,
    pub(crate) http: Http,
    config: PathBuf,
    _dir: TempDir,
}

/// Callers hammering replicas until stopped; counts answers by outcome.
pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    pub(crate) ok: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

// === impl RedisServer ===

impl RedisServer {
    /// Picks a free port below the kernel's ephemeral range (which `bind(0)`
    /// and outgoing connections draw from, so a port released there may be
    /// taken again before Redis binds it), and tries others if Redis cannot
    /// bind it.
    pub(crate) fn start() -> Self {
        Self::start_in(tempfile::tempdir().expect("tempdir"), None, "always")
    }

    /// Like [`Self::start`], but Redis writes its AOF to disk once a second
    /// (Redis's default) rather than before each answer: for load tests, in
    /// which one slow fsync (other disk traffic on the machine) would hold up
    /// every client at once; not for tests that kill Redis.
    pub(crate) fn start_fsync_everysec() -> Self {
        Self::start_in(tempfile::tempdir().expect("tempdir"), None, "everysec")
    }

    /// Like [`Self::start`], but Redis listens for TLS only (`--port 0`), with a
    /// certificate for `127.0.0.1` from a throwaway CA written, with its key and
    /// the CA, into Redis's folder. [`Self::url`] is then `rediss://`.
    pub(crate) fn start_tls() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = TestCertificates::generate().expect("certificates");
        for (file, pem) in [
            (CA_FILE, &certs.ca_pem),
            (CERT_FILE, &certs.leaf_pem),
            (KEY_FILE, &certs.leaf_key_pem),
        ] {
            std::fs::write(dir.path().join(file), pem).expect("PEM written");
        }
        Self::start_in(dir, Some(certs.ca_pem), "always")
    }

    fn start_in(dir: TempDir, tls_ca: Option<String>, appendfsync: &'static str) -> Self {
        let mut server = Self {
            port: 0,
            dir,
            child: None,
            tls_ca,
            appendfsync,
        };
        for _ in 0..20 {
            server.port = free_port();
            if server.spawn_and_wait() {
                return server;
            }
        }
        panic!("redis-server did not start on any of 20 ports");
    }

    /// Starts again on the same port and folder (the AOF), after [`Self::kill`].
    pub(crate) fn restart(&mut self) {
        assert!(
            self.spawn_and_wait(),
            "redis-server did not restart on port {}",
            self.port
        );
    }

    /// Spawns Redis and waits until it answers. `false` if it exited instead
    /// (the port was taken).
    fn spawn_and_wait(&mut self) -> bool {
        assert!(self.child.is_none(), "redis-server is still running");
        let mut command = Command::new("redis-server");
        if self.tls_ca.is_some() {
            let file = |name| self.dir.path().join(name);
            command
                .args(["--port", "0", "--tls-port", &self.port.to_string()])
                .arg("--tls-cert-file")
                .arg(file(CERT_FILE))
                .arg("--tls-key-file")
                .arg(file(KEY_FILE))
                .arg("--tls-ca-cert-file")
                .arg(file(CA_FILE))
                .args(["--tls-auth-clients", "no"]);
        } else {
            command.args(["--port", &self.port.to_string()]);
        }
        let mut child = command
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "yes"])
            .args(["--requirepass", REDIS_PASSWORD])
            // `always`: every write is fsynced before Redis answers, so a killed Redis
            // loses nothing it acknowledged (with `everysec` it could lose a second).
            .args(["--appendfsync", self.appendfsync])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (apt-get install redis-server)");
        let deadline = Instant::now() + DEADLINE;
        loop {
            if child.try_wait().ok().flatten().is_some() {
                return false;
            }
            // Ours, not another test's Redis that holds the port.
            if self.serves_our_folder() {
                self.child = Some(child);
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} never answered",
                self.port
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILL, like a crashed node: nothing is flushed beyond what the AOF holds.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub(crate) fn url(&self) -> String {
        let scheme = if self.tls_ca.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://:{REDIS_PASSWORD}@127.0.0.1:{}/0", self.port)
    }

    /// The CA file a client must trust, when Redis speaks TLS.
    pub(crate) fn ca_file(&self) -> Option<PathBuf> {
        self.tls_ca.as_ref().map(|_| self.dir.path().join(CA_FILE))
    }

    /// A client for [`Self::url`]. Over TLS it trusts only our CA, handed over
    /// here: the test process's own environment (`SSL_CERT_FILE`) stays as it was.
    fn client(&self) -> redis::RedisResult<redis::Client> {
        match &self.tls_ca {
            None => redis::Client::open(self.url()),
            Some(ca) => redis::Client::build_with_tls(
                self.url(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca.clone().into_bytes()),
                },
            ),
        }
    }

    fn serves_our_folder(&self) -> bool {
        let Ok(client) = self.client() else {
            return false;
        };
        let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(200)) else {
            return false;
        };
        let dir: Result<Vec<String>, _> =
            redis::cmd("CONFIG").arg("GET").arg("dir").query(&mut conn);
        let ours = self.dir.path().canonicalize().ok();
        dir.ok()
            .and_then(|d| d.into_iter().nth(1))
            .is_some_and(|d| Some(PathBuf::from(d)) == ours)
    }

    /// The version Redis holds for grant `id` (0: none), read past grantmux.
    pub(crate) fn stored_version(&self, id: &str) -> u64 {
        redis::cmd("HGET")
            .arg(format!("grantmux:grant:{{{id}}}"))
            .arg("v")
            .query::<Option<u64>>(&mut self.connection())
            .expect("HGET")
            .unwrap_or(0)
    }

    /// A synchronous connection for checks the test makes itself.
    pub(crate) fn connection(&self) -> redis::Connection {
        self.client()
            .expect("url")
            .get_connection_with_timeout(Duration::from_secs(2))
            .expect("redis answers")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

// === impl Cluster ===

impl Cluster {
    /// Redis, a simulator (`sim` with `tweak`) and a config file for replicas.
    pub(crate) async fn start(sim: SimConfig, replicas: ReplicaConfig) -> Self {
        Self::around(RedisServer::start(), sim, replicas, "").await
    }

    /// [`Self::start`] around `redis`, with `extra` at the end of the replicas'
    /// `proxy.toml` (more `[[caller]]`s); pass their keys to [`Self::replica_env`].
    pub(crate) async fn start_with(
        redis: RedisServer,
        sim: SimConfig,
        replicas: ReplicaConfig,
        extra: &str,
    ) -> Self {
        Self::around(redis, sim, replicas, extra).await
    }

    /// [`Self::start`] with a TLS-only Redis ([`RedisServer::start_tls`]).
    pub(crate) async fn start_tls(sim: SimConfig, replicas: ReplicaConfig) -> Self {
        Self::around(RedisServer::start_tls(), sim, replicas, "").await
    }

    async fn around(
        redis: RedisServer,
        sim: SimConfig,
        replicas: ReplicaConfig,
        extra: &str,
    ) -> Self {
        let sim = Sim::start(sim).await.expect("sim starts");
        let dir = tempfile::tempdir().expect("tempdir");
        let toml = replica_toml(&replicas) + extra;
        let config = write_config(dir.path(), &sim.base_url(), &toml);
        Self {
            redis,
            sim,
            http: crate::common::client::http(),
            config,
            _dir: dir,
        }
    }

    pub(crate) fn replica(&self, name: &str) -> Replica {
        self.replica_with(name, None)
    }

    /// A replica whose refresher stops or aborts at `failpoint` (see `src/failpoint.rs`).
    /// With a TLS Redis, the replica trusts its CA the way a user makes grantmux
    /// trust a private CA: `SSL_CERT_FILE` (the redis crate reads the platform's
    /// roots, which that variable replaces).
    pub(crate) fn replica_with(&self, name: &str, failpoint: Option<&str>) -> Replica {
        let ca = self.redis.ca_file();
        let ca = ca.as_deref().map(|f| f.to_str().expect("UTF-8 temp path"));
        let trust = ca.map(|f| ("SSL_CERT_FILE", f));
        Replica::try_start(
            name,
            &self.config,
            &self.redis.url(),
            failpoint,
            trust.as_slice(),
        )
        .unwrap_or_else(|(code, log)| panic!("{name} exited ({code:?}): {log:#?}"))
    }

    /// A replica (plain Redis) with `env` added to its environment: the keys
    /// of the callers in [`Self::start_with`]'s `extra`.
    pub(crate) fn replica_env(&self, name: &str, env: &[(&str, &str)]) -> Replica {
        Replica::try_start(name, &self.config, &self.redis.url(), None, env)
            .unwrap_or_else(|(code, log)| panic!("{name} exited ({code:?}): {log:#?}"))
    }

    /// A replica given no `SSL_CERT_FILE`: with a TLS Redis it knows only the
    /// platform's roots. Its exit code and output if it exits before it starts.
    pub(crate) fn try_replica_without_ca(&self, name: &str) -> Result<Replica, Exited> {
        Replica::try_start(name, &self.config, &self.redis.url(), None, &[])
    }

    pub(crate) fn replicas(&self, n: usize) -> Vec<Replica> {
        (0..n).map(|i| self.replica(&format!("r{i}"))).collect()
    }

    /// The user authorizes; the code is exchanged at `via`'s token endpoint.
    /// Returns the caller's (virtual) token answer.
    pub(crate) async fn authorize(&self, via: &Replica) -> Value {
        self.authorize_user(via, USER).await
    }

    /// `user` authorizes the app through `via`: the grant `sim-client/user:{user}`.
    pub(crate) async fn authorize_user(&self, via: &Replica, user: &str) -> Value {
        let code = self.sim.issue_code(CLIENT, user, REDIRECT);
        let answer = self
            .token(
                via,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", REDIRECT),
                ],
            )
            .await;
        assert_eq!(answer.0, 200, "code exchange: {}", answer.1);
        answer.1
    }

    /// What a legacy system holds before grantmux: `user` authorizes, and the
    /// code is exchanged at Zoom itself (the simulator), not through a
    /// replica. Returns Zoom's real refresh token.
    pub(crate) async fn authorize_at_zoom(&self, user: &str) -> String {
        let code = self.sim.issue_code(CLIENT, user, REDIRECT);
        let form = [
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ];
        let (status, answer) = self.post_form(&self.sim.base_url(), "token", &form).await;
        assert_eq!(status, 200, "code exchange at Zoom: {answer}");
        answer["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .to_owned()
    }

    /// `POST /oauth/token` with a refresh token at Zoom itself, past grantmux.
    pub(crate) async fn refresh_at_zoom(&self, refresh_token: &str) -> (u16, Value) {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        self.post_form(&self.sim.base_url(), "token", &form).await
    }

    /// `POST /oauth/revoke` of `token` at `via`.
    pub(crate) async fn revoke(&self, via: &Replica, token: &str) -> (u16, Value) {
        self.oauth(via, "revoke", &[("token", token)]).await
    }

    /// `POST /oauth/token` at `via` with the app's credentials.
    pub(crate) async fn token(&self, via: &Replica, form: &[(&str, &str)]) -> (u16, Value) {
        self.oauth(via, "token", form).await
    }

    async fn oauth(&self, via: &Replica, endpoint: &str, form: &[(&str, &str)]) -> (u16, Value) {
        self.post_form(&format!("http://{}", via.proxy), endpoint, form)
            .await
    }

    /// `POST {base}/oauth/{endpoint}` with the app's credentials and `form`.
    async fn post_form(&self, base: &str, endpoint: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let basic = basic(CLIENT, SECRET);
        let (status, body) = send(
            &self.http,
            Method::POST,
            &format!("{base}/oauth/{endpoint}"),
            &[
                ("authorization", &basic),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            body,
        )
        .await
        .expect("oauth endpoint answers");
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }
}

/// The `proxy.toml` sections after the app: the shared Redis store, refresh, callers.
fn replica_toml(r: &ReplicaConfig) -> String {
    format!(
        r#"
[store]
backend = "redis"
url_env = "REDIS_URL"
key_env = "GRANTMUX_STORE_KEY"
lock_lease = "{lease}"
[refresh]
ahead = "{ahead}"
backoff_min = "50ms"
backoff_max = "500ms"
[[caller]]
name = "user"
key_env = "USER_KEY"
grant = {{ client_id = "{CLIENT}", user_id = "{USER}" }}
[[caller]]
name = "s2s"
key_env = "S2S_KEY"
grant = {{ client_id = "{CLIENT}", account_id = "{ACCOUNT}" }}
[rate_limit]
{rate_limit}
"#,
        lease = r.lock_lease,
        ahead = r.ahead,
        rate_limit = r.rate_limit,
    )
}

// === impl Replica ===

impl Replica {
    /// Starts a replica with the store's and callers' variables, then `extra`.
    fn try_start(
        name: &str,
        config: &Path,
        redis_url: &str,
        failpoint: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Result<Self, Exited> {
        let mut env = vec![
            ("REDIS_URL", redis_url),
            ("GRANTMUX_STORE_KEY", STORE_KEY),
            ("USER_KEY", USER_KEY),
            ("S2S_KEY", S2S_KEY),
            ("GRANTMUX_FAILPOINT", failpoint.unwrap_or("")),
        ];
        env.extend_from_slice(extra);
        let process = Grantmux::try_start(config, &env)?;
        Ok(Self {
            name: name.to_owned(),
            proxy: process.proxy,
            admin: process.admin,
            process,
        })
    }

    /// Has the replica logged a line containing `text`?
    pub(crate) fn logged(&self, text: &str) -> bool {
        self.process.logged(text)
    }

    pub(crate) fn log(&self) -> Vec<String> {
        self.process.log()
    }

    /// Resumes a replica its failpoint stopped (SIGCONT).
    pub(crate) fn resume(&self) {
        self.process.signal("-CONT");
    }

    /// Waits until the kernel reports the process stopped (its failpoint fired).
    pub(crate) fn wait_stopped(&self) {
        wait_for(&format!("{} to stop at its failpoint", self.name), || {
            self.process.is_stopped()
        });
    }

    /// `GET /v2/users/me` through this replica with a caller key or virtual token.
    pub(crate) async fn me(&self, http: &Http, bearer: &str) -> (u16, Bytes) {
        let auth = format!("Bearer {bearer}");
        let url = format!("http://{}/v2/users/me", self.proxy);
        send(http, Method::GET, &url, &[("authorization", &auth)], "")
            .await
            .unwrap_or_else(|e| (0, Bytes::from(e)))
    }

    /// This replica's view of grant `id` from `GET /grants`, if it has one.
    pub(crate) async fn grant(&self, http: &Http, id: &str) -> Option<Value> {
        let url = format!("http://{}/grants", self.admin);
        let (status, body) = send(http, Method::GET, &url, &[], "").await.ok()?;
        assert_eq!(status, 200);
        let v: Value = serde_json::from_slice(&body).ok()?;
        v["grants"]
            .as_array()?
            .iter()
            .find(|g| g["id"] == id)
            .cloned()
    }

    /// The version of the token this replica would inject for `id` (0: none).
    pub(crate) async fn version(&self, http: &Http, id: &str) -> u64 {
        let grant = self.grant(http, id).await;
        grant.and_then(|g| g["version"].as_u64()).unwrap_or(0)
    }

    /// `POST /grants/{id}/refresh` on the admin listener. Admin accepts one per
    /// grant per 5 s (429 beyond that); replicas run on real time, so a 429 is
    /// waited out here rather than asserted on.
    pub(crate) async fn force_refresh(&self, http: &Http, id: &str) -> (u16, Value) {
        let url = format!("http://{}/grants/{id}/refresh", self.admin);
        let started = Instant::now();
        loop {
            let (status, body) = send(http, Method::POST, &url, &[], "")
                .await
                .expect("admin answers");
            if status != 429 || started.elapsed() > DEADLINE {
                return (status, serde_json::from_slice(&body).unwrap_or(Value::Null));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// `/readyz`: can this replica serve callers now?
    pub(crate) async fn readyz(&self, http: &Http) -> u16 {
        self.admin_status(http, "/readyz").await
    }

    /// `/readyz/store`: the store answers and holds every rotated token.
    pub(crate) async fn readyz_store(&self, http: &Http) -> u16 {
        self.admin_status(http, "/readyz/store").await
    }

    async fn admin_status(&self, http: &Http, path: &str) -> u16 {
        let url = format!("http://{}{path}", self.admin);
        send(http, Method::GET, &url, &[], "")
            .await
            .map_or(0, |(s, _)| s)
    }
}

// === impl Load ===

impl Load {
    /// `per_replica` callers on each replica, each calling `/v2/users/me` with
    /// `bearer` in a loop.
    pub(crate) fn start(
        http: &Http,
        replicas: &[&Replica],
        per_replica: usize,
        bearer: &str,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for replica in replicas {
            for _ in 0..per_replica {
                let (stop, ok, failures) = (stop.clone(), ok.clone(), failures.clone());
                let (http, bearer) = (http.clone(), bearer.to_owned());
                let (name, url) = (
                    replica.name.clone(),
                    format!("http://{}/v2/users/me", replica.proxy),
                );
                tasks.push(tokio::spawn(async move {
                    let auth = format!("Bearer {bearer}");
                    while !stop.load(Ordering::Relaxed) {
                        match send(&http, Method::GET, &url, &[("authorization", &auth)], "").await
                        {
                            Ok((200, _)) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            other => {
                                let what = match other {
                                    Ok((s, b)) => {
                                        format!("{name}: {s} {}", String::from_utf8_lossy(&b))
                                    }
                                    Err(e) => format!("{name}: {e}"),
                                };
                                failures.lock().expect("failures").push(what);
                            }
                        }
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

    /// Stops the callers; returns (successes, failure descriptions).
    pub(crate) async fn stop(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("caller task");
        }
        let failures = self.failures.lock().expect("failures").clone();
        (self.ok.load(Ordering::Relaxed), failures)
    }
}

// === helpers ===

/// Sends a request and reads the whole answer; an answer that has not begun
/// within the deadline is an error.
pub(crate) async fn send(
    http: &Http,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<(u16, Bytes), String> {
    let req = request(method, url, headers, body)?;
    let resp = tokio::time::timeout(DEADLINE, http.request(req))
        .await
        .map_err(|_| format!("no answer from {url} in {DEADLINE:?}"))?
        .map_err(|e| format!("{e:?}"))?;
    let (status, body) = read(resp).await?;
    Ok((status.as_u16(), body))
}

/// The claims of a virtual token (`gid`: the grant, `bid`: the binding), read
/// without verifying: the test only compares them.
pub(crate) fn claims(token: &str) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("a JWT-shaped token");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON payload")
}

/// Polls `done` (every 5 ms) until it holds; panics after the deadline.
pub(crate) fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The async form of [`wait_for`].
pub(crate) async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    mut done: impl FnMut() -> F,
) {
    let deadline = Instant::now() + DEADLINE;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A port in 20000..32000 that is free now. Linux hands out ephemeral ports
/// from 32768 up, so nothing else on this machine takes it by chance meanwhile.
fn free_port() -> u16 {
    use rand::Rng as _;
    loop {
        let port = rand::rng().random_range(20_000..32_000);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Milliseconds since the Unix epoch, the clock every replica reads.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
