//! The HTTP clients to Zoom: rustls with the `ring` provider, pooled keep-alive,
//! HTTP/2 where Zoom offers it by ALPN.
//!
//! API calls go through [`OriginPool`], built for their one origin; the token
//! endpoint, called a few times an hour, through hyper-util's pooled client.
//! Both trust the same roots: webpki's, the system's, and `zoom.ca_file`; both
//! find Zoom's addresses through the one [`Resolver`] (DNS directly when
//! `listen.tls` is on, see `resolve.rs`), and both verify Zoom's certificate
//! against the host name, never the address. Plain `http://` is only reachable
//! for loopback hosts, which config validation enforces.

pub mod dns;
mod h1;
mod pool;
mod resolve;

pub use self::dns::{DnsError, DnsResolver};
pub use self::h1::H1Error;
pub use self::pool::{OriginPool, PoolError};
pub use self::resolve::{nameservers, Resolver, ResolverSetupError, RESOLV_CONF};

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::body::Body;

/// The token endpoint's pooled client.
pub type UpstreamClient = Client<HttpsConnector<HttpConnector<Resolver>>, Body>;

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("zoom.ca_file {path}: {source}")]
    CaFile {
        path: String,
        source: rustls_pki_types::pem::Error,
    },
    #[error("zoom.ca_file {path}: no certificate accepted: {reason}")]
    CaCert { path: String, reason: String },
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("zoom.api_url {0}: no host to connect to")]
    Origin(String),
}

/// The TLS client settings shared by both clients (ALPN is set by each).
pub fn tls_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsSetupError> {
    let roots = roots(ca_file)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// Builds the token endpoint's client. hyper-rustls takes the TLS server name
/// from the URI's host, whatever `resolver` answers.
pub fn client(
    tls: &rustls::ClientConfig,
    connect_timeout: Duration,
    resolver: Resolver,
) -> UpstreamClient {
    let mut http = HttpConnector::new_with_resolver(resolver);
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    let https = HttpsConnectorBuilder::new()
        .with_tls_config(tls.clone())
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(256)
        .build(https)
}

fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, TlsSetupError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    // The system store may be absent in slim images; webpki's roots still apply.
    let native = rustls_native_certs::load_native_certs();
    let (added, _ignored) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(added, "system root certificates loaded");
    if let Some(path) = ca_file {
        let shown = path.display().to_string();
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|source| TlsSetupError::CaFile {
                path: shown.clone(),
                source,
            })?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| TlsSetupError::CaFile {
                path: shown.clone(),
                source,
            })?;
        if certs.is_empty() {
            return Err(TlsSetupError::CaCert {
                path: shown,
                reason: "the file holds no PEM certificate".into(),
            });
        }
        for cert in certs {
            roots.add(cert).map_err(|e| TlsSetupError::CaCert {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
        }
    }
    Ok(roots)
}

/// An error with its cause chain: a TLS verification failure sits several sources deep.
pub fn describe_error(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
