//! What the interception listeners share, built once at start: the CA, the
//! exported bundle, and the TLS config that answers as Zoom's hosts; and the
//! check that Zoom's upstream is not grantmux itself.

use std::net::SocketAddr;
use std::sync::Arc;

use super::{server_config, Authority, CaError, LeafResolver};
use crate::config::Config;
use crate::upstream::Resolver;

/// The CA and the TLS config both interception listeners use.
#[derive(Debug)]
pub struct Interception {
    pub authority: Arc<Authority>,
    pub tls: Arc<rustls::ServerConfig>,
}

/// Zoom's upstream, as configured, is one of grantmux's own listeners: every
/// forwarded call would come back to grantmux (typically `/etc/hosts` or
/// `hostAliases` pointing Zoom's names here).
#[derive(Debug, thiserror::Error)]
#[error(
    "{key} ({host}) resolves {} to {addr}, which is grantmux's own {listener} listener: \
     every call to Zoom would loop back here. Point {key} at Zoom's real address, or {}",
    if *.via_dns { "through DNS" } else { "through this host's resolver" },
    if *.via_dns {
        "ask nameservers that answer with Zoom's real address (zoom.dns_servers)"
    } else {
        "keep Zoom's names out of this host's /etc/hosts (use listen.forward_proxy), or \
         turn on listen.tls, with which grantmux resolves them through DNS instead"
    }
)]
pub struct UpstreamLoop {
    pub key: &'static str,
    pub host: String,
    pub addr: SocketAddr,
    pub listener: &'static str,
    /// Resolved through DNS directly, not the system resolver.
    pub via_dns: bool,
}

// === impl Interception ===

impl Interception {
    /// Loads (or creates once) the CA the config names, writes the bundle if
    /// asked, and mints the leaves.
    pub fn start(config: &Config) -> Result<Self, CaError> {
        let intercept = &config.intercept;
        let authority = Arc::new(match &intercept.ca {
            Some(files) => Authority::load_or_create(&files.cert, &files.key, &intercept.hosts)?,
            None => {
                tracing::warn!(
                    "interception CA generated in memory (memory store): callers must trust a new CA after every restart"
                );
                Authority::generate(&intercept.hosts)?
            }
        });
        if let Some(path) = &intercept.ca_bundle_export {
            authority.export_bundle(path)?;
            tracing::info!(path = %path.display(), "wrote the CA bundle (platform roots + grantmux's CA)");
        }
        let resolver = Arc::new(LeafResolver::new(
            authority.clone(),
            intercept.leaf_lifetime,
        )?);
        let tls = server_config(resolver)?;
        Ok(Self { authority, tls })
    }
}

/// Refuses a config whose Zoom upstream resolves to one of `listeners`, through
/// `resolver`: the one grantmux connects with (the system's, `/etc/hosts`
/// included, or DNS directly, which bypasses it). A name that does not resolve
/// is not refused: it cannot be a loop.
pub async fn check_upstream(
    config: &Config,
    listeners: &[(&'static str, SocketAddr)],
    resolver: &Resolver,
) -> Result<(), UpstreamLoop> {
    let via_dns = matches!(resolver, Resolver::Dns(_));
    for (key, uri) in [
        ("zoom.api_url", &config.zoom.api_url),
        ("zoom.oauth_url", &config.zoom.oauth_url),
    ] {
        let Some(host) = uri.host() else { continue };
        let default_port = if uri.scheme_str() == Some("http") {
            80
        } else {
            443
        };
        let port = uri.port_u16().unwrap_or(default_port);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addrs = match resolver.lookup(host, port).await {
            Ok(addrs) => addrs,
            Err(error) => {
                tracing::debug!(key, host, %error, "not resolved; no loop to check");
                continue;
            }
        };
        for addr in addrs {
            if let Some((listener, _)) = listeners.iter().find(|(_, l)| serves(*l, addr)) {
                return Err(UpstreamLoop {
                    key,
                    host: host.to_owned(),
                    addr,
                    listener,
                    via_dns,
                });
            }
        }
    }
    Ok(())
}

/// Whether a connection to `addr` would reach a listener bound to `listener`.
fn serves(listener: SocketAddr, addr: SocketAddr) -> bool {
    listener.port() == addr.port()
        && (listener.ip() == addr.ip()
            || (listener.ip().is_unspecified()
                && (addr.ip().is_loopback() || addr.ip().is_unspecified())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(api: &str) -> Config {
        let mut c = Config::for_upstream(api.parse().expect("uri"), Vec::new());
        c.zoom.oauth_url = "https://zoom.us".parse().expect("uri");
        c
    }

    const SYSTEM: &Resolver = &Resolver::System;

    #[tokio::test]
    async fn an_upstream_that_is_a_listener_is_refused() {
        let c = config("http://127.0.0.1:8443");
        let tls: SocketAddr = "0.0.0.0:8443".parse().expect("addr");
        let err = check_upstream(&c, &[("tls", tls)], SYSTEM)
            .await
            .expect_err("a loop");
        assert_eq!((err.key, err.listener), ("zoom.api_url", "tls"));
        assert!(err.to_string().contains("loop back"), "{err}");
        // `localhost` goes through the resolver, as a hosts-file entry would.
        let c = config("http://localhost:8443");
        let err = check_upstream(&c, &[("tls", tls)], SYSTEM)
            .await
            .expect_err("a loop");
        assert!(err.to_string().contains("this host's resolver"), "{err}");
    }

    #[tokio::test]
    async fn another_port_or_address_is_no_loop() {
        let c = config("http://127.0.0.1:9000");
        let tls: SocketAddr = "127.0.0.1:8443".parse().expect("addr");
        assert!(check_upstream(&c, &[("tls", tls)], SYSTEM).await.is_ok());
        let elsewhere: SocketAddr = "10.9.9.9:9000".parse().expect("addr");
        assert!(check_upstream(&c, &[("proxy", elsewhere)], SYSTEM)
            .await
            .is_ok());
    }
}
