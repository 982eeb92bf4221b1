//! A Redis primary, one replica and three Sentinels of the test's own, on
//! loopback ports below the ephemeral range; and the faults a test plays on
//! them: `kill -9` of the primary, a frozen replica, a cut replication link.
//!
//! Every node demands the password the `tests/redis` Redis demands, so the URL
//! grantmux gets holds a secret. Everything is killed on drop.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub(crate) use crate::redis_support::REDIS_PASSWORD;

/// The name the Sentinels know the primary by (`store.sentinel_master`).
pub(crate) const MASTER: &str = "grantmux";
/// Sentinel calls a node down after this long without an answer.
const DOWN_AFTER_MS: u64 = 1000;
/// Sentinel's failover timeout; a failed failover is retried after twice this.
const FAILOVER_TIMEOUT_MS: u64 = 5000;
/// Quorum: Sentinels that must agree the primary is down.
const QUORUM: usize = 2;
const SENTINELS: usize = 3;
/// How long a node, a Sentinel or the topology may take to come up.
const START_BOUND: Duration = Duration::from_secs(30);
/// How long Sentinel may take to promote a replica: a failover aborted for
/// want of a good replica is retried after twice the failover timeout.
pub(crate) const FAILOVER_BOUND: Duration = Duration::from_secs(30);
/// Time given to one command on a node of our own.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// One `redis-server` holding data (a primary or a replica), with its config
/// file (Sentinel rewrites it on a failover) in a folder of its own.
pub(crate) struct Node {
    pub(crate) port: u16,
    dir: TempDir,
    child: Option<Child>,
}

/// One `redis-server --sentinel`, its config file in a folder of its own.
pub(crate) struct Sentinel {
    pub(crate) port: u16,
    dir: TempDir,
    child: Option<Child>,
}

/// A primary, its replica and three Sentinels monitoring them as [`MASTER`].
/// `primary` and `standby` are named for their roles at the start: after a
/// failover `standby` is the primary.
pub(crate) struct Ha {
    pub(crate) primary: Node,
    pub(crate) standby: Node,
    pub(crate) sentinels: Vec<Sentinel>,
}

// === impl Ha ===

impl Ha {
    /// Starts the primary, then its replica and waits until the replica is in
    /// sync, then the Sentinels, and waits until each knows the replica and
    /// the other two Sentinels: only then can they agree on a failover.
    pub(crate) fn start() -> Self {
        let primary = Node::start(None);
        let standby = Node::start(Some(primary.port));
        wait("the replica to sync with the primary", START_BOUND, || {
            standby.info_field("replication", "master_link_status") == Some("up".into())
        });
        let sentinels = (0..SENTINELS)
            .map(|_| Sentinel::start(primary.port))
            .collect();
        let ha = Self {
            primary,
            standby,
            sentinels,
        };
        wait(
            "every Sentinel to know its peers and the replica",
            START_BOUND,
            || ha.sentinels.iter().all(Sentinel::ready),
        );
        ha
    }

    /// `store.sentinels`: every Sentinel's `host:port`, as a TOML array.
    pub(crate) fn sentinels_toml(&self) -> String {
        let addrs: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("\"127.0.0.1:{}\"", s.port))
            .collect();
        format!("[{}]", addrs.join(", "))
    }

    /// The primary's port as the Sentinels report it, once they all agree.
    pub(crate) fn agreed_primary(&self) -> Option<u16> {
        let mut ports = self.sentinels.iter().map(Sentinel::primary);
        let first = ports.next()??;
        ports.all(|p| p == Some(first)).then_some(first)
    }

    /// Polls (every 10 ms) until every Sentinel names a primary other than
    /// `old`; returns its port and the time since `since`. Panics past
    /// [`FAILOVER_BOUND`], with what the Sentinels logged.
    pub(crate) fn wait_for_new_primary(&self, old: u16, since: Instant) -> (u16, Duration) {
        let deadline = Instant::now() + FAILOVER_BOUND;
        loop {
            if let Some(port) = self.agreed_primary().filter(|p| *p != old) {
                return (port, since.elapsed());
            }
            assert!(
                Instant::now() < deadline,
                "no Sentinel failover from port {old} within {FAILOVER_BOUND:?}; \
                 Sentinels logged:\n{}",
                self.sentinel_logs()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A partition as the primary sees it: the replica frozen (SIGSTOP) and
    /// its link closed by the primary, so that nothing the primary writes from
    /// now on reaches it. Freezing alone is not enough: what the primary sends
    /// a frozen replica waits in the replica's socket buffer and is applied the
    /// moment it wakes. The replica cannot reconnect while frozen.
    pub(crate) fn partition_standby(&self) {
        self.standby.freeze();
        let killed: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("replica")
            .query(&mut self.primary.connection())
            .expect("CLIENT KILL TYPE replica");
        assert_eq!(killed, 1, "the primary had one replica link to close");
    }

    /// Everything each Sentinel logged, for a failure's message.
    pub(crate) fn sentinel_logs(&self) -> String {
        self.sentinels
            .iter()
            .map(|s| format!("--- sentinel {} ---\n{}", s.port, s.log()))
            .collect()
    }
}

// === impl Node ===

impl Node {
    /// A node on a free port: a primary, or a replica of `replica_of`.
    pub(crate) fn start(replica_of: Option<u16>) -> Self {
        let mut node = Self {
            port: 0,
            dir: tempfile::tempdir().expect("tempdir"),
            child: None,
        };
        for _ in 0..20 {
            node.port = free_port();
            if node.spawn(replica_of) {
                return node;
            }
        }
        panic!("redis-server did not start on any of 20 ports");
    }

    /// Starts again on the same port, empty, as a replica of `primary`: a
    /// crashed node brought back, as its new primary's replica.
    pub(crate) fn restart_as_replica_of(&mut self, primary: u16) {
        assert!(
            self.spawn(Some(primary)),
            "redis-server did not restart on port {}",
            self.port
        );
    }

    /// Writes the config and spawns Redis; waits until it answers. `false` if
    /// it exited instead (the port was taken).
    fn spawn(&mut self, replica_of: Option<u16>) -> bool {
        assert!(self.child.is_none(), "redis-server is still running");
        let config = self.dir.path().join("redis.conf");
        std::fs::write(&config, node_config(self.port, self.dir.path(), replica_of))
            .expect("redis.conf written");
        let child = spawn_redis(&config, false);
        self.child = Some(child);
        let (port, ours) = (self.port, self.dir.path().canonicalize().ok());
        let serves_ours = || {
            let dir: Option<Vec<String>> = node_connection(port).and_then(|mut c| {
                redis::cmd("CONFIG")
                    .arg("GET")
                    .arg("dir")
                    .query(&mut c)
                    .ok()
            });
            dir.and_then(|d| d.into_iter().nth(1))
                .is_some_and(|d| Some(PathBuf::from(d)) == ours)
        };
        started(&mut self.child, self.port, serves_ours)
    }

    /// SIGKILL: a crashed node. Nothing it has not sent is kept.
    pub(crate) fn kill(&mut self) {
        kill(&mut self.child);
    }

    /// SIGSTOP: the node neither answers nor acknowledges anything.
    pub(crate) fn freeze(&self) {
        signal(&self.child, "-STOP");
    }

    /// SIGCONT.
    pub(crate) fn thaw(&self) {
        signal(&self.child, "-CONT");
    }

    /// The version this node holds for grant `id` (0: none), read directly
    /// (a replica serves reads).
    pub(crate) fn stored_version(&self, id: &str) -> u64 {
        self.hget(&format!("grantmux:grant:{{{id}}}"), "v")
            .map_or(0, |v| v.parse().expect("a numeric version"))
    }

    /// `HGET key field` on this node.
    pub(crate) fn hget(&self, key: &str, field: &str) -> Option<String> {
        redis::cmd("HGET")
            .arg(key)
            .arg(field)
            .query(&mut self.connection())
            .expect("HGET")
    }

    /// How many clients are subscribed to `channel` on this node.
    pub(crate) fn subscribers(&self, channel: &str) -> u64 {
        let answer: Vec<(String, u64)> = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(channel)
            .query(&mut self.connection())
            .expect("PUBSUB NUMSUB");
        answer.first().map_or(0, |(_, n)| *n)
    }

    /// A field of `INFO section` (`role`, `master_link_status`, ...), if the
    /// node answers.
    pub(crate) fn info_field(&self, section: &str, field: &str) -> Option<String> {
        let mut conn = self.try_connection()?;
        let info: String = redis::cmd("INFO").arg(section).query(&mut conn).ok()?;
        info_value(&info, field)
    }

    /// A synchronous connection, with timeouts so that a frozen node fails
    /// the test rather than hanging it.
    pub(crate) fn connection(&self) -> redis::Connection {
        self.try_connection()
            .unwrap_or_else(|| panic!("redis-server on port {} answers", self.port))
    }

    fn try_connection(&self) -> Option<redis::Connection> {
        node_connection(self.port)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        signal(&self.child, "-CONT");
        self.kill();
    }
}

// === impl Sentinel ===

impl Sentinel {
    /// A Sentinel on a free port monitoring the primary on `primary`.
    fn start(primary: u16) -> Self {
        let mut sentinel = Self {
            port: 0,
            dir: tempfile::tempdir().expect("tempdir"),
            child: None,
        };
        for _ in 0..20 {
            sentinel.port = free_port();
            if sentinel.spawn(primary) {
                return sentinel;
            }
        }
        panic!("redis-server --sentinel did not start on any of 20 ports");
    }

    fn spawn(&mut self, primary: u16) -> bool {
        let config = self.dir.path().join("sentinel.conf");
        std::fs::write(
            &config,
            sentinel_config(self.port, self.dir.path(), primary),
        )
        .expect("sentinel.conf written");
        self.child = Some(spawn_redis(&config, true));
        // Ours, not another test's Sentinel holding the port: INFO names our file.
        let (port, ours) = (self.port, config.canonicalize().ok());
        let serves_ours = || {
            let info: Option<String> = sentinel_connection(port)
                .and_then(|mut c| redis::cmd("INFO").arg("server").query(&mut c).ok());
            info.and_then(|i| info_value(&i, "config_file"))
                .is_some_and(|f| Some(PathBuf::from(f)) == ours)
        };
        started(&mut self.child, self.port, serves_ours)
    }

    /// `SENTINEL get-master-addr-by-name`: the port of the primary this
    /// Sentinel names now (None: no answer).
    pub(crate) fn primary(&self) -> Option<u16> {
        let mut conn = self.connection()?;
        let addr: Option<(String, String)> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(MASTER)
            .query(&mut conn)
            .ok()?;
        addr.and_then(|(_, port)| port.parse().ok())
    }

    /// Knows both other Sentinels and one replica that is neither down nor
    /// cut off from the primary.
    fn ready(&self) -> bool {
        let Some(mut conn) = self.connection() else {
            return false;
        };
        let master = |c: &mut redis::Connection| -> Option<Vec<String>> {
            redis::cmd("SENTINEL")
                .arg("MASTER")
                .arg(MASTER)
                .query(c)
                .ok()
        };
        let replicas = |c: &mut redis::Connection| -> Option<Vec<Vec<String>>> {
            redis::cmd("SENTINEL")
                .arg("REPLICAS")
                .arg(MASTER)
                .query(c)
                .ok()
        };
        let (Some(master), Some(replicas)) = (master(&mut conn), replicas(&mut conn)) else {
            return false;
        };
        let peers = pair(&master, "num-other-sentinels") == Some(&(SENTINELS - 1).to_string());
        let replica_ok = replicas.len() == 1
            && pair(&replicas[0], "flags") == Some(&"slave".to_owned())
            && pair(&replicas[0], "master-link-status") == Some(&"ok".to_owned());
        peers && replica_ok
    }

    fn connection(&self) -> Option<redis::Connection> {
        sentinel_connection(self.port)
    }

    /// What this Sentinel logged.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sentinel.log")).unwrap_or_default()
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

// === helpers ===

fn node_config(port: u16, dir: &Path, replica_of: Option<u16>) -> String {
    let replica = replica_of.map_or(String::new(), |p| format!("replicaof 127.0.0.1 {p}\n"));
    format!(
        "port {port}\nbind 127.0.0.1\ndir \"{dir}\"\nlogfile \"{log}\"\n\
         requirepass \"{REDIS_PASSWORD}\"\nmasterauth \"{REDIS_PASSWORD}\"\n\
         save \"\"\nappendonly no\n\
         # A full sync starts at once (Redis 7 waits 5 s for more replicas).\n\
         repl-diskless-sync yes\nrepl-diskless-sync-delay 0\n{replica}",
        dir = dir.display(),
        log = dir.join("redis.log").display(),
    )
}

fn sentinel_config(port: u16, dir: &Path, primary: u16) -> String {
    format!(
        "port {port}\nbind 127.0.0.1\ndir \"{dir}\"\nlogfile \"{log}\"\n\
         sentinel resolve-hostnames no\n\
         sentinel monitor {MASTER} 127.0.0.1 {primary} {QUORUM}\n\
         sentinel auth-pass {MASTER} {REDIS_PASSWORD}\n\
         sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n\
         sentinel failover-timeout {MASTER} {FAILOVER_TIMEOUT_MS}\n",
        dir = dir.display(),
        log = dir.join("sentinel.log").display(),
    )
}

fn spawn_redis(config: &Path, sentinel: bool) -> Child {
    let mut command = Command::new("redis-server");
    command.arg(config);
    if sentinel {
        command.arg("--sentinel");
    }
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server runs (apt-get install redis-server)")
}

/// Waits until `serves_ours`; `false` (and the child reaped) if it exited first.
fn started(child: &mut Option<Child>, port: u16, serves_ours: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + START_BOUND;
    loop {
        let exited = child
            .as_mut()
            .map(|c| c.try_wait().ok().flatten().is_some());
        if exited != Some(false) {
            *child = None;
            return false;
        }
        if serves_ours() {
            return true;
        }
        assert!(
            Instant::now() < deadline,
            "redis-server on port {port} never answered"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn node_connection(port: u16) -> Option<redis::Connection> {
    connect(&format!("redis://:{REDIS_PASSWORD}@127.0.0.1:{port}/0"))
}

/// Sentinels demand no password.
fn sentinel_connection(port: u16) -> Option<redis::Connection> {
    connect(&format!("redis://127.0.0.1:{port}/"))
}

fn connect(url: &str) -> Option<redis::Connection> {
    let client = redis::Client::open(url).ok()?;
    let conn = client.get_connection_with_timeout(IO_TIMEOUT).ok()?;
    conn.set_read_timeout(Some(IO_TIMEOUT)).ok()?;
    conn.set_write_timeout(Some(IO_TIMEOUT)).ok()?;
    Some(conn)
}

fn kill(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn signal(child: &Option<Child>, signal: &str) {
    if let Some(child) = child {
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal}");
    }
}

/// `field:value` from INFO text.
fn info_value(info: &str, field: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_owned())
}

/// The value after `key` in a flat key, value, key, value ... answer.
fn pair<'a>(flat: &'a [String], key: &str) -> Option<&'a String> {
    flat.chunks(2)
        .find(|kv| kv[0] == key)
        .and_then(|kv| kv.get(1))
}

/// Polls `done` every 10 ms; panics with `what` past `bound`.
pub(crate) fn wait(what: &str, bound: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + bound;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out ({bound:?}) waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A port in 20000..32000 that is free now: below Linux's ephemeral range
/// (32768 up), so no outgoing connection takes it meanwhile.
fn free_port() -> u16 {
    use rand::Rng as _;
    loop {
        let port = rand::rng().random_range(20_000..32_000);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
