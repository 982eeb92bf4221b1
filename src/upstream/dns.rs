//! A small DNS stub resolver for Zoom's hosts: A and AAAA queries straight to
//! nameservers, never through `/etc/hosts`.
//!
//! With `listen.tls`, clients reach grantmux because `/etc/hosts` (or Kubernetes
//! `hostAliases`, which write it for the whole pod) points `zoom.us` and
//! `api.zoom.us` at grantmux. The system resolver (getaddrinfo) reads that same
//! file, so grantmux would call itself; asking DNS reaches the real Zoom.
//!
//! What it does, and what it leaves out:
//! - Every name is absolute: no `search` list, no `ndots` (Zoom's names are
//!   public). `localhost` too is asked of DNS rather than answered locally.
//! - Each query carries a fresh random id and goes out on a socket connected
//!   to the server asked, so the kernel drops datagrams from anyone else. A
//!   packet that is not the answer (another id, another question, malformed) is
//!   dropped and the wait goes on, as far as the timeout.
//! - A truncated (TC) answer is asked again over TCP, of the same server.
//! - Servers are tried in order, [`TIMEOUT`] each, the whole list [`ROUNDS`]
//!   times. NXDOMAIN is final; SERVFAIL, REFUSED or silence moves on.
//! - An answer is cached for its TTL, at most [`MAX_CACHE_TTL`]; failures are not.
//! - No EDNS and no DNSSEC: an answer is as trustworthy as the path to the
//!   nameserver, as with the system resolver. TLS to Zoom still verifies the name.
//!
//! Everything is logged at debug: names and addresses only, nothing secret.

mod wire;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use self::wire::{Answer, Name, Query, RecordType, RCODE_NOERROR, RCODE_NXDOMAIN};

/// How long one server gets to answer one query (UDP, or the whole TCP exchange).
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// How many times the whole server list is tried.
pub const ROUNDS: usize = 2;
/// The longest an answer is reused, whatever its TTL.
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(300);
/// grantmux resolves two names; this bounds the cache against anything else.
const MAX_CACHED_NAMES: usize = 64;
/// Room for any datagram a server sends without EDNS (512) and then some.
const MAX_UDP_ANSWER: usize = 4096;

/// Resolves names through the nameservers it was given. Clones share the cache.
#[derive(Clone, Debug)]
pub struct DnsResolver {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    servers: Vec<SocketAddr>,
    timeout: Duration,
    /// Read once per new connection to Zoom and written after a lookup: short
    /// critical sections with no `.await` inside, so a std mutex.
    cache: Mutex<HashMap<Name, Cached>>,
}

#[derive(Debug)]
struct Cached {
    addrs: Vec<IpAddr>,
    until: Instant,
}

/// Addresses of one type and the smallest TTL among them and their CNAMEs.
#[derive(Debug)]
struct Found {
    addrs: Vec<IpAddr>,
    ttl: u32,
}

/// Why a name has no address.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("\"{0}\" is not a DNS name")]
    BadName(String),
    #[error("{name}: no nameserver to ask")]
    NoServers { name: String },
    #[error("{name}: no such name (NXDOMAIN from {server})")]
    NotFound { name: String, server: SocketAddr },
    #[error("{name}: DNS holds no A or AAAA record for it")]
    NoAddress { name: String },
    #[error("{name}: no nameserver answered ({tries} tries); the last: {last}")]
    Unanswered {
        name: String,
        tries: usize,
        last: ServerError,
    },
}

/// What went wrong asking one server once.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{server}: no answer within {after:?}{}", dropped_note(.dropped.as_deref()))]
    Timeout {
        server: SocketAddr,
        after: Duration,
        /// Why the last packet received was not taken as the answer.
        dropped: Option<String>,
    },
    #[error("{server}: {source}")]
    Io {
        server: SocketAddr,
        source: io::Error,
    },
    #[error("{server}: answered RCODE {rcode}{}", rcode_name(*.rcode))]
    Rcode { server: SocketAddr, rcode: u8 },
    #[error("{server}: a malformed answer over TCP: {reason}")]
    Malformed { server: SocketAddr, reason: String },
    #[error("{server}: the answer was truncated over TCP too")]
    Truncated { server: SocketAddr },
}

// === impl DnsResolver ===

impl DnsResolver {
    /// A resolver asking `servers`, in order.
    pub fn new(servers: Vec<SocketAddr>) -> Self {
        Self::with_timeout(servers, TIMEOUT)
    }

    /// [`DnsResolver::new`] with `timeout` per server and query (tests).
    pub fn with_timeout(servers: Vec<SocketAddr>, timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                servers,
                timeout,
                cache: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn servers(&self) -> &[SocketAddr] {
        &self.inner.servers
    }

    /// The addresses of `host`: IPv4 first, then IPv6. An IP literal (with or
    /// without brackets) is its own answer, without a query.
    pub async fn lookup(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let name = Name::parse(bare).map_err(|_| DnsError::BadName(host.to_owned()))?;
        if let Some(addrs) = self.inner.cached(&name) {
            tracing::debug!(%name, ?addrs, "DNS answer from the cache");
            return Ok(addrs);
        }
        let (v4, v6) = tokio::join!(
            self.query(&name, RecordType::A),
            self.query(&name, RecordType::Aaaa)
        );
        let found = merge(&name, v4, v6)?;
        tracing::debug!(%name, addrs = ?found.addrs, ttl = found.ttl, "DNS answer");
        self.inner.remember(name, &found);
        Ok(found.addrs)
    }

    /// One record type, asked of each server in turn until one answers.
    async fn query(&self, name: &Name, rtype: RecordType) -> Result<Found, DnsError> {
        let mut last = None;
        let mut tries = 0;
        for _ in 0..ROUNDS {
            for &server in &self.inner.servers {
                tries += 1;
                let query = Query {
                    id: rand::random(),
                    name: name.clone(),
                    rtype,
                };
                tracing::debug!(%server, %name, ?rtype, "DNS query");
                let error = match self.exchange(server, &query).await {
                    Ok(answer) if answer.rcode == RCODE_NOERROR => {
                        return Ok(Found {
                            addrs: answer.addrs,
                            ttl: answer.ttl,
                        })
                    }
                    Ok(answer) if answer.rcode == RCODE_NXDOMAIN => {
                        return Err(DnsError::NotFound {
                            name: name.to_string(),
                            server,
                        })
                    }
                    Ok(answer) => ServerError::Rcode {
                        server,
                        rcode: answer.rcode,
                    },
                    Err(error) => error,
                };
                tracing::debug!(%error, "DNS server failed; trying the next");
                last = Some(error);
            }
        }
        let name = name.to_string();
        Err(match last {
            Some(last) => DnsError::Unanswered { name, tries, last },
            None => DnsError::NoServers { name },
        })
    }

    /// One query to one server: over UDP, and again over TCP if truncated.
    async fn exchange(&self, server: SocketAddr, query: &Query) -> Result<Answer, ServerError> {
        let answer = self.udp(server, query).await?;
        if !answer.truncated {
            return Ok(answer);
        }
        tracing::debug!(%server, "DNS answer truncated; asking again over TCP");
        let answer = self.tcp(server, query).await?;
        if answer.truncated {
            return Err(ServerError::Truncated { server });
        }
        Ok(answer)
    }

    async fn udp(&self, server: SocketAddr, query: &Query) -> Result<Answer, ServerError> {
        let io = |source| ServerError::Io { server, source };
        let local = match server {
            SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
        };
        let socket = UdpSocket::bind(local).await.map_err(io)?;
        // Connected: the kernel drops datagrams from anyone but `server`.
        socket.connect(server).await.map_err(io)?;
        socket.send(&query.encode()).await.map_err(io)?;
        let deadline = tokio::time::Instant::now() + self.inner.timeout;
        let mut buf = vec![0u8; MAX_UDP_ANSWER];
        let mut dropped = None;
        loop {
            let Ok(received) = tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await
            else {
                return Err(ServerError::Timeout {
                    server,
                    after: self.inner.timeout,
                    dropped,
                });
            };
            let len = received.map_err(io)?;
            match query.decode(&buf[..len]) {
                Ok(answer) => return Ok(answer),
                Err(error) => {
                    tracing::debug!(%server, %error, "dropped a DNS packet that is not the answer");
                    dropped = Some(error.to_string());
                }
            }
        }
    }

    /// RFC 1035 §4.2.2: each message prefixed with its length in two bytes.
    async fn tcp(&self, server: SocketAddr, query: &Query) -> Result<Answer, ServerError> {
        let exchange = async {
            let mut stream = TcpStream::connect(server).await?;
            let packet = query.encode();
            // A query is one name and a few fixed fields: far below 64 KiB.
            let len = u16::try_from(packet.len()).map_err(io::Error::other)?;
            let mut framed = Vec::with_capacity(packet.len() + 2);
            framed.extend(len.to_be_bytes());
            framed.extend(packet);
            stream.write_all(&framed).await?;
            let mut len = [0u8; 2];
            stream.read_exact(&mut len).await?;
            let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
            stream.read_exact(&mut answer).await?;
            Ok(answer)
        };
        let packet = match tokio::time::timeout(self.inner.timeout, exchange).await {
            Ok(Ok(packet)) => packet,
            Ok(Err(source)) => return Err(ServerError::Io { server, source }),
            Err(_) => {
                return Err(ServerError::Timeout {
                    server,
                    after: self.inner.timeout,
                    dropped: None,
                })
            }
        };
        // A connection is to the server asked: anything but the answer is an error.
        query.decode(&packet).map_err(|e| ServerError::Malformed {
            server,
            reason: e.to_string(),
        })
    }
}

/// Both families' results as one: an address of either kind is an answer, and
/// a failure is reported only when nothing was found.
fn merge(
    name: &Name,
    v4: Result<Found, DnsError>,
    v6: Result<Found, DnsError>,
) -> Result<Found, DnsError> {
    match (v4, v6) {
        (Ok(mut v4), Ok(v6)) => {
            if v4.addrs.is_empty() && v6.addrs.is_empty() {
                return Err(DnsError::NoAddress {
                    name: name.to_string(),
                });
            }
            v4.ttl = v4.ttl.min(v6.ttl);
            v4.addrs.extend(v6.addrs);
            Ok(v4)
        }
        (Ok(found), Err(error)) | (Err(error), Ok(found)) if !found.addrs.is_empty() => {
            tracing::debug!(%error, "one address family failed; using the other");
            Ok(found)
        }
        (Ok(_), Err(error)) | (Err(error), Ok(_)) | (Err(error), Err(_)) => Err(error),
    }
}

fn dropped_note(dropped: Option<&str>) -> String {
    dropped.map_or_else(String::new, |why| {
        format!("; dropped a packet that was not the answer: {why}")
    })
}

fn rcode_name(rcode: u8) -> &'static str {
    match rcode {
        1 => " (FORMERR)",
        2 => " (SERVFAIL)",
        4 => " (NOTIMP)",
        5 => " (REFUSED)",
        _ => "",
    }
}

// === impl Inner ===

impl Inner {
    fn cache_lock(&self) -> MutexGuard<'_, HashMap<Name, Cached>> {
        // Nothing panics while holding it; a poisoned cache is still a cache.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cached(&self, name: &Name) -> Option<Vec<IpAddr>> {
        let now = Instant::now();
        let cache = self.cache_lock();
        cache
            .get(name)
            .filter(|c| c.until > now)
            .map(|c| c.addrs.clone())
    }

    fn remember(&self, name: Name, found: &Found) {
        let ttl = Duration::from_secs(found.ttl.into()).min(MAX_CACHE_TTL);
        if ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut cache = self.cache_lock();
        cache.retain(|_, c| c.until > now);
        if cache.len() < MAX_CACHED_NAMES {
            cache.insert(
                name,
                Cached {
                    addrs: found.addrs.clone(),
                    until: now + ttl,
                },
            );
        }
    }
}
