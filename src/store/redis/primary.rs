//! Where the Redis primary is: the host of `store.url`, or the one the
//! Sentinels name, followed through failovers.
//!
//! Every command takes the current connection from here ([`Primary::conn`]),
//! so that after a failover the next command goes to the new primary. A
//! failover moves the primary to a new *epoch*: what was learned under the
//! old one (a lock lease, the change subscription) is not trusted under the
//! new one until it has been taken again, since asynchronous replication may
//! not have carried it over.
//!
//! With Sentinel, a task asks the Sentinels every [`FOLLOW_EVERY`] which
//! primary they name for `store.sentinel_master`, and checks with `ROLE` that
//! the node agrees before switching: a Sentinel that has not caught up yet
//! must not send writes to a demoted node.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::unavailable;
use crate::config::Sentinel;
use crate::secret::Secret;
use crate::store::StoreError;

/// How often the Sentinels are asked where the primary is.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// A Sentinel that does not answer within this is skipped for the next.
const SENTINEL_TIMEOUT: Duration = Duration::from_millis(500);

/// The primary and its connections. Cheap to clone.
#[derive(Clone)]
pub struct Primary {
    inner: Arc<Inner>,
}

struct Inner {
    link: ArcSwap<Link>,
    /// The URL's credentials, TLS and database, for whichever host is primary.
    base: ConnectionInfo,
    sentinel: Option<Sentinel>,
    epochs: watch::Sender<u64>,
    follower: Mutex<Option<JoinHandle<()>>>,
}

/// The connections to one primary.
struct Link {
    epoch: u64,
    /// When this process switched to this primary; `None` for the first.
    since: Option<std::time::Instant>,
    /// `host:port`, for logs.
    addr: String,
    client: Client,
    /// Shared by every command.
    conn: ConnectionManager,
    /// Writes that wait for replicas (`WAIT`) go on a connection of their own:
    /// Redis blocks the whole connection while a `WAIT` waits, and the lock
    /// and reads must not stall behind a replica that does not answer.
    acked: ConnectionManager,
}

// === impl Primary ===

impl Primary {
    /// Connects to the primary `url` names, or the one `sentinel` names.
    pub async fn open(url: &Secret, sentinel: Option<&Sentinel>) -> Result<Self, StoreError> {
        // Never show the URL or the parser's text about it: it may hold a password.
        let base = url.expose().into_connection_info().map_err(|e| {
            StoreError::Unavailable(format!(
                "store.url is not a usable Redis URL ({:?})",
                e.kind()
            ))
        })?;
        let info = match sentinel {
            None => base.clone(),
            Some(sentinel) => locate(&base, sentinel).await?,
        };
        let link = connect(info, 0).await?;
        tracing::info!(primary = %link.addr, sentinel = sentinel.is_some(), "redis primary");
        let (epochs, _) = watch::channel(0);
        let this = Self {
            inner: Arc::new(Inner {
                link: ArcSwap::from_pointee(link),
                base,
                sentinel: sentinel.cloned(),
                epochs,
                follower: Mutex::new(None),
            }),
        };
        if this.inner.sentinel.is_some() {
            let follower = tokio::spawn(follow(Arc::downgrade(&this.inner)));
            *this.inner.lock_follower() = Some(follower);
        }
        Ok(this)
    }

    /// The connection every command uses, to the primary as last known.
    pub fn conn(&self) -> ConnectionManager {
        self.inner.link.load().conn.clone()
    }

    /// The connection for writes followed by `WAIT`.
    pub fn acked(&self) -> ConnectionManager {
        self.inner.link.load().acked.clone()
    }

    /// A client for the primary, for connections of their own (pub/sub).
    pub fn client(&self) -> Client {
        self.inner.link.load().client.clone()
    }

    /// Failovers followed since start.
    pub fn epoch(&self) -> u64 {
        self.inner.link.load().epoch
    }

    /// Whether this process followed a failover less than `window` ago.
    pub fn moved_within(&self, window: Duration) -> bool {
        let link = self.inner.link.load();
        link.since.is_some_and(|since| since.elapsed() < window)
    }

    /// What is left of `window` since this process followed a failover.
    pub fn unsettled_for(&self, window: Duration) -> Duration {
        let link = self.inner.link.load();
        link.since.map_or(Duration::ZERO, |since| {
            window.saturating_sub(since.elapsed())
        })
    }

    /// Changes with each failover followed.
    pub fn epochs(&self) -> watch::Receiver<u64> {
        self.inner.epochs.subscribe()
    }
}

impl std::fmt::Debug for Primary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let link = self.inner.link.load();
        f.debug_struct("Primary")
            .field("addr", &link.addr)
            .field("epoch", &link.epoch)
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn lock_follower(&self) -> std::sync::MutexGuard<'_, Option<JoinHandle<()>>> {
        self.follower.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(follower) = self.lock_follower().take() {
            follower.abort();
        }
    }
}

/// Asks the Sentinels where the primary is, now and then, and switches when
/// they name another node that confirms it is primary. Ends with the store.
async fn follow(inner: std::sync::Weak<Inner>) {
    let mut every = tokio::time::interval(FOLLOW_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let Some(sentinel) = &inner.sentinel else {
            return;
        };
        let info = match locate(&inner.base, sentinel).await {
            Ok(info) => info,
            Err(error) => {
                tracing::debug!(%error, "cannot ask the Sentinels for the primary");
                continue;
            }
        };
        let current = inner.link.load();
        if addr_of(&info) == current.addr {
            continue;
        }
        let epoch = current.epoch + 1;
        match connect(info, epoch).await {
            Ok(link) => {
                tracing::warn!(from = %current.addr, to = %link.addr, epoch, "redis primary moved (Sentinel failover); following");
                inner.link.store(Arc::new(link));
                inner.epochs.send_replace(epoch);
            }
            Err(error) => {
                tracing::warn!(%error, "the Sentinels name a new primary that cannot be reached yet");
            }
        }
    }
}

/// The primary the first Sentinel that answers names, once it confirms with
/// `ROLE` that it is primary.
async fn locate(base: &ConnectionInfo, sentinel: &Sentinel) -> Result<ConnectionInfo, StoreError> {
    let mut last = String::from("no Sentinel listed");
    for addr in &sentinel.addrs {
        match ask(base, addr, &sentinel.master).await {
            Ok(info) => return Ok(info),
            Err(error) => last = format!("{addr}: {error}"),
        }
    }
    Err(StoreError::Unavailable(format!(
        "redis: no Sentinel names a primary for {:?} ({last})",
        sentinel.master
    )))
}

async fn ask(
    base: &ConnectionInfo,
    sentinel: &str,
    master: &str,
) -> Result<ConnectionInfo, String> {
    let (host, port) = split_addr(sentinel).ok_or("not host:port")?;
    let asked = async {
        // Sentinels take no password here; TLS follows the URL's scheme.
        let info = base
            .clone()
            .set_addr(with_host(base, host, port))
            .set_redis_settings(redis::RedisConnectionInfo::default());
        let mut conn = Client::open(info)?
            .get_multiplexed_async_connection()
            .await?;
        let named: Option<(String, u16)> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(master)
            .query_async(&mut conn)
            .await?;
        let Some((host, port)) = named else {
            return Ok(None);
        };
        let primary = base.clone().set_addr(with_host(base, &host, port));
        let mut node = Client::open(primary.clone())?
            .get_multiplexed_async_connection()
            .await?;
        let role: redis::Value = redis::cmd("ROLE").query_async(&mut node).await?;
        Ok::<_, redis::RedisError>(is_primary(&role).then_some(primary))
    };
    match tokio::time::timeout(SENTINEL_TIMEOUT, asked).await {
        Err(_) => Err("no answer in time".into()),
        Ok(Err(error)) => Err(unavailable(error).to_string()),
        Ok(Ok(None)) => Err("names no primary that confirms it is one".into()),
        Ok(Ok(Some(info))) => Ok(info),
    }
}

/// `ROLE`'s first element is `master` on a primary.
fn is_primary(role: &redis::Value) -> bool {
    let redis::Value::Array(parts) = role else {
        return false;
    };
    matches!(parts.first(), Some(redis::Value::BulkString(b)) if b == b"master")
}

/// `base`'s address kind (plain or TLS) at `host:port`.
fn with_host(base: &ConnectionInfo, host: &str, port: u16) -> ConnectionAddr {
    match base.addr() {
        ConnectionAddr::TcpTls { insecure, .. } => ConnectionAddr::TcpTls {
            host: host.to_owned(),
            port,
            insecure: *insecure,
            tls_params: None,
        },
        _ => ConnectionAddr::Tcp(host.to_owned(), port),
    }
}

fn split_addr(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    Some((
        host.trim_start_matches('[').trim_end_matches(']'),
        port.parse().ok()?,
    ))
}

fn addr_of(info: &ConnectionInfo) -> String {
    match info.addr() {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
            format!("{host}:{port}")
        }
        ConnectionAddr::Unix(path) => path.display().to_string(),
        _ => "?".to_owned(),
    }
}

/// The connections to the primary at `info`, for `epoch`. Set to fail fast:
/// while Redis is down a refresh must not wait long for a lock it cannot
/// get, and `/readyz` must answer.
async fn connect(info: ConnectionInfo, epoch: u64) -> Result<Link, StoreError> {
    let addr = addr_of(&info);
    let client = Client::open(info).map_err(unavailable)?;
    let manager = || {
        ConnectionManager::new_with_config(
            client.clone(),
            ConnectionManagerConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(RESPONSE_TIMEOUT))
                .set_number_of_retries(1)
                .set_min_delay(Duration::from_millis(50))
                .set_max_delay(Duration::from_secs(1)),
        )
    };
    let conn = manager().await.map_err(unavailable)?;
    let acked = manager().await.map_err(unavailable)?;
    Ok(Link {
        epoch,
        since: (epoch > 0).then(std::time::Instant::now),
        addr,
        client,
        conn,
        acked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_addresses_and_roles_are_read_strictly() {
        assert_eq!(split_addr("10.0.0.1:26379"), Some(("10.0.0.1", 26379)));
        assert_eq!(split_addr("[::1]:26379"), Some(("::1", 26379)));
        assert_eq!(split_addr("sentinel-0.sentinel:x"), None);
        let master = redis::Value::Array(vec![redis::Value::BulkString(b"master".to_vec())]);
        let replica = redis::Value::Array(vec![redis::Value::BulkString(b"slave".to_vec())]);
        assert!(is_primary(&master));
        assert!(!is_primary(&replica));
    }

    #[test]
    fn a_sentinel_named_primary_keeps_the_urls_credentials_and_tls() {
        let base = "rediss://:pw@ignored:6380/2"
            .into_connection_info()
            .expect("url");
        let primary = base.clone().set_addr(with_host(&base, "10.0.0.9", 6379));
        assert_eq!(addr_of(&primary), "10.0.0.9:6379");
        assert!(matches!(primary.addr(), ConnectionAddr::TcpTls { .. }));
        assert_eq!(primary.redis_settings().password(), Some("pw"));
        assert_eq!(primary.redis_settings().db(), 2);
    }
}
