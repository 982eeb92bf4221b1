//! How grantmux finds Zoom's addresses: the system resolver by default, DNS
//! directly ([`DnsResolver`]) whenever `listen.tls` is on or `zoom.dns_servers`
//! is set.
//!
//! `listen.tls` exists for clients sent to grantmux by `/etc/hosts` or
//! `hostAliases`; the system resolver reads that same file, so with the
//! listener on, grantmux asks DNS instead: `zoom.dns_servers`, else the
//! `nameserver` lines of `/etc/resolv.conf`. Without it nothing changes:
//! getaddrinfo, hosts file first, as every other program on the host.
//!
//! Both clients to Zoom and the start-up loop check take the one [`Resolver`],
//! so the check sees the addresses a connect would use.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use tower_service::Service;

use super::dns::DnsResolver;
use crate::config::Config;

/// Where nameservers come from when `zoom.dns_servers` is not set.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";
const DNS_PORT: u16 = 53;

/// The resolver both clients to Zoom use.
#[derive(Clone, Debug)]
pub enum Resolver {
    /// getaddrinfo: `/etc/hosts`, then DNS, as `nsswitch.conf` says.
    System,
    /// DNS only, bypassing `/etc/hosts`.
    Dns(DnsResolver),
}

#[derive(Debug, thiserror::Error)]
pub enum ResolverSetupError {
    #[error(
        "listen.tls is set, so grantmux resolves Zoom's hosts through DNS, bypassing \
         /etc/hosts, but cannot read {path} for its nameservers: {source}; set zoom.dns_servers"
    )]
    ResolvConf { path: String, source: io::Error },
    #[error(
        "listen.tls is set, so grantmux resolves Zoom's hosts through DNS, bypassing \
         /etc/hosts, but {path} has no usable nameserver line; set zoom.dns_servers"
    )]
    NoServers { path: String },
}

// === impl Resolver ===

impl Resolver {
    /// The resolver `config` calls for, reading `/etc/resolv.conf` if it needs to.
    pub fn for_config(config: &Config) -> Result<Self, ResolverSetupError> {
        Self::choose(config, RESOLV_CONF, || std::fs::read_to_string(RESOLV_CONF))
    }

    /// [`Resolver::for_config`], with `resolv_conf` reading the file at `path`.
    fn choose(
        config: &Config,
        path: &str,
        resolv_conf: impl FnOnce() -> io::Result<String>,
    ) -> Result<Self, ResolverSetupError> {
        if !config.zoom.dns_servers.is_empty() {
            return Ok(Self::Dns(DnsResolver::new(config.zoom.dns_servers.clone())));
        }
        // With IP-literal upstreams there is nothing to resolve, and no need
        // for a nameserver.
        if config.listen.tls.is_none() || !names_a_host(config) {
            return Ok(Self::System);
        }
        let text = resolv_conf().map_err(|source| ResolverSetupError::ResolvConf {
            path: path.to_owned(),
            source,
        })?;
        let servers = nameservers(&text);
        if servers.is_empty() {
            return Err(ResolverSetupError::NoServers {
                path: path.to_owned(),
            });
        }
        Ok(Self::Dns(DnsResolver::new(servers)))
    }

    /// The nameservers asked, when DNS is used directly.
    pub fn dns_servers(&self) -> Option<&[SocketAddr]> {
        match self {
            Self::System => None,
            Self::Dns(dns) => Some(dns.servers()),
        }
    }

    /// The addresses of `host` (no brackets needed) with `port`.
    pub async fn lookup(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        match self {
            Self::System => Ok(tokio::net::lookup_host((host, port)).await?.collect()),
            Self::Dns(dns) => dns
                .lookup(host)
                .await
                .map(|ips| {
                    ips.into_iter()
                        .map(|ip| SocketAddr::new(ip, port))
                        .collect()
                })
                .map_err(io::Error::other),
        }
    }
}

/// hyper-util's `HttpConnector` resolves through a `Service<Name>`: the token client's.
/// It never asks about an IP literal, and sets the port itself.
impl Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        match self {
            // Exactly what `HttpConnector::new()` does.
            Self::System => {
                let resolving = GaiResolver::new().call(name);
                Box::pin(async move { Ok(resolving.await?.collect::<Vec<_>>().into_iter()) })
            }
            Self::Dns(_) => {
                let dns = self.clone();
                Box::pin(async move { Ok(dns.lookup(name.as_str(), 0).await?.into_iter()) })
            }
        }
    }
}

/// Whether either Zoom URL names a host rather than an IP address.
fn names_a_host(config: &Config) -> bool {
    [&config.zoom.api_url, &config.zoom.oauth_url]
        .into_iter()
        .filter_map(|uri| uri.host())
        .any(|host| {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            bare.parse::<IpAddr>().is_err()
        })
}

/// The `nameserver` lines of a resolv.conf, port 53. An address that does not
/// parse (an IPv6 one with a `%zone`, say) is skipped.
pub fn nameservers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("nameserver"), Some(addr)) => match addr.parse::<IpAddr>() {
                    Ok(ip) => Some(SocketAddr::new(ip, DNS_PORT)),
                    Err(_) => {
                        tracing::debug!(addr, "resolv.conf: nameserver skipped");
                        None
                    }
                },
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str, tls: Option<&str>, dns: &[&str]) -> Config {
        let mut c = Config::for_upstream(url.parse().expect("uri"), Vec::new());
        c.listen.tls = tls.map(|a| a.parse().expect("addr"));
        c.zoom.dns_servers = dns.iter().map(|a| a.parse().expect("addr")).collect();
        c
    }

    fn servers(r: &Resolver) -> Option<Vec<String>> {
        r.dns_servers()
            .map(|s| s.iter().map(ToString::to_string).collect())
    }

    const CONF: &str = "# k8s\nsearch default.svc.cluster.local svc.cluster.local\n\
                        nameserver 10.96.0.10\nnameserver fe80::1%eth0\n\
                        options ndots:5\nnameserver ::1\n";

    #[test]
    fn nameserver_lines_are_read_with_port_53() {
        assert_eq!(
            nameservers(CONF),
            vec![
                "10.96.0.10:53".parse::<SocketAddr>().expect("addr"),
                "[::1]:53".parse().expect("addr")
            ]
        );
        assert!(nameservers("search x\n#nameserver 1.1.1.1\n").is_empty());
    }

    #[test]
    fn system_resolution_unless_the_tls_listener_or_dns_servers_are_set() {
        let unread = || -> io::Result<String> { panic!("resolv.conf read") };
        let plain = config("https://api.zoom.us", None, &[]);
        let r = Resolver::choose(&plain, "rc", unread).expect("resolver");
        assert!(servers(&r).is_none());
        // Nothing to resolve: no nameserver needed.
        let literal = config("https://10.1.2.3", Some("127.0.0.1:443"), &[]);
        let r = Resolver::choose(&literal, "rc", unread).expect("resolver");
        assert!(servers(&r).is_none());
        let explicit = config("https://api.zoom.us", None, &["127.0.0.1:5353"]);
        let r = Resolver::choose(&explicit, "rc", unread).expect("resolver");
        assert_eq!(servers(&r), Some(vec!["127.0.0.1:5353".to_owned()]));
    }

    #[test]
    fn the_tls_listener_alone_takes_the_servers_of_resolv_conf() {
        let c = config("https://api.zoom.us", Some("0.0.0.0:443"), &[]);
        let r = Resolver::choose(&c, "rc", || Ok(CONF.to_owned())).expect("resolver");
        assert_eq!(
            servers(&r),
            Some(vec!["10.96.0.10:53".to_owned(), "[::1]:53".to_owned()])
        );
        let err = Resolver::choose(&c, "rc", || Ok("search x\n".to_owned())).expect_err("none");
        assert!(matches!(err, ResolverSetupError::NoServers { .. }), "{err}");
        assert!(err.to_string().contains("zoom.dns_servers"), "{err}");
        let err = Resolver::choose(&c, "rc", || Err(io::ErrorKind::NotFound.into()))
            .expect_err("unreadable");
        assert!(err.to_string().contains("zoom.dns_servers"), "{err}");
    }
}
