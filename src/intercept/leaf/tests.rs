//! Leaves by SNI over a real in-process TLS handshake, and renewal at a third left,
//! driven by an explicit `now` instead of sleeping.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::RootCertStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::*;

const HOUR: Duration = Duration::from_secs(3600);

fn mins(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}

fn authority() -> Arc<Authority> {
    let hosts = ["zoom.us".to_owned(), "api.zoom.us".to_owned()];
    Arc::new(Authority::generate(&hosts).expect("generate"))
}

fn resolver(lifetime: Duration) -> LeafResolver {
    LeafResolver::new(authority(), lifetime).expect("resolver")
}

fn current(resolver: &LeafResolver, host: &str) -> Arc<Issued> {
    let slot = resolver
        .slots
        .iter()
        .find(|s| s.host == host)
        .expect("slot");
    slot.leaf.load_full()
}

#[test]
fn renew_if_due_replaces_a_leaf_with_under_a_third_left_and_keeps_a_fresh_one() {
    let start = SystemTime::now();
    let resolver = resolver(HOUR);
    let (apex, api) = (
        current(&resolver, "zoom.us"),
        current(&resolver, "api.zoom.us"),
    );

    // 21 minutes left of 60: more than a third; nothing changes.
    assert_eq!(resolver.renew_if_due(start + mins(39)).expect("renew"), 0);
    assert!(Arc::ptr_eq(&apex, &current(&resolver, "zoom.us")));

    // Age one leaf only: zoom.us is now 45 minutes into its hour, api.zoom.us fresh.
    let aged = resolver.ca.issue("zoom.us", start - mins(45), HOUR);
    let slot = resolver
        .slots
        .iter()
        .find(|s| s.host == "zoom.us")
        .expect("slot");
    slot.leaf.store(Arc::new(aged.expect("aged leaf")));
    let aged = current(&resolver, "zoom.us");

    assert_eq!(resolver.renew_if_due(start).expect("renew"), 1);
    let renewed = current(&resolver, "zoom.us");
    assert!(!Arc::ptr_eq(&aged, &renewed), "the aged leaf was replaced");
    assert_ne!(aged.key.cert[0], renewed.key.cert[0]);
    assert!(renewed.not_after >= start + HOUR - Duration::from_secs(1));
    assert!(
        Arc::ptr_eq(&api, &current(&resolver, "api.zoom.us")),
        "the fresh one was kept"
    );
    // The replacement is itself fresh: asking again at the same time changes nothing.
    assert_eq!(resolver.renew_if_due(start).expect("renew"), 0);
}

#[test]
fn a_handshake_past_the_mark_gets_a_new_leaf_and_an_expired_one_is_replaced() {
    let start = SystemTime::now();
    let resolver = resolver(HOUR);
    let first = resolver.leaf_for("api.zoom.us", start).expect("leaf");
    let same = resolver.leaf_for("API.ZOOM.US", start + mins(30));
    assert!(Arc::ptr_eq(&first, &same.expect("leaf")));
    let later = resolver.leaf_for("api.zoom.us", start + mins(41));
    assert!(
        !Arc::ptr_eq(&first, &later.expect("leaf")),
        "renewed with 19 of 60 minutes left"
    );
    // Long after everything expired (a suspended process): renewed on first use.
    let much_later = start + 10 * HOUR;
    let revived = resolver.leaf_for("zoom.us", much_later).expect("leaf");
    assert!(current(&resolver, "zoom.us").not_after > much_later);
    assert!(Arc::ptr_eq(&revived, &current(&resolver, "zoom.us").key));
    assert!(resolver.leaf_for("example.com", start).is_none());
    assert!(resolver.leaf_for("", start).is_none());
}

#[test]
fn new_refuses_a_lifetime_the_ca_refuses() {
    let result = LeafResolver::new(authority(), Duration::from_secs(1));
    assert!(
        matches!(result, Err(CaError::LeafLifetime { .. })),
        "{result:?}"
    );
}

#[test]
fn debug_shows_hosts_and_expiry_not_keys() {
    let printed = format!("{:?}", resolver(HOUR));
    assert!(
        printed.contains("api.zoom.us") && printed.contains("not_after"),
        "{printed}"
    );
    assert!(!printed.contains("PRIVATE"), "{printed}");
}

// --- handshakes ---

struct Client {
    sni: bool,
    alpn: Vec<&'static [u8]>,
}

/// A handshake over an in-memory pipe: grantmux's `server_config` on one end, a
/// client trusting only the CA on the other. Returns the client's negotiated ALPN,
/// or the client's error and the server's.
async fn handshake(name: &str, client: Client) -> Result<Option<Vec<u8>>, String> {
    let ca = authority();
    let resolver = Arc::new(LeafResolver::new(Arc::clone(&ca), HOUR).expect("resolver"));
    let acceptor = TlsAcceptor::from(server_config(resolver).expect("server config"));

    let mut roots = RootCertStore::empty();
    let ca_der = CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).expect("CA PEM");
    roots.add(ca_der).expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.enable_sni = client.sni;
    config.alpn_protocols = client.alpn.iter().map(|p| p.to_vec()).collect();
    let connector = TlsConnector::from(Arc::new(config));
    let server_name = ServerName::try_from(name.to_owned()).expect("name");

    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let server = async move {
        let mut tls = acceptor.accept(server_io).await?;
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await?;
        tls.write_all(&byte).await?;
        tls.shutdown().await
    };
    let client = async move {
        let mut tls = connector.connect(server_name, client_io).await?;
        tls.write_all(b"x").await?;
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await?;
        Ok::<_, std::io::Error>(tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec))
    };
    match tokio::join!(client, server) {
        (Ok(alpn), Ok(())) => Ok(alpn),
        (client, server) => Err(format!("client: {client:?}; server: {server:?}")),
    }
}

#[tokio::test]
async fn a_handshake_as_api_zoom_us_succeeds_and_negotiates_h2() {
    let h2 = Client {
        sni: true,
        alpn: vec![b"h2", b"http/1.1"],
    };
    assert_eq!(handshake("api.zoom.us", h2).await, Ok(Some(b"h2".to_vec())));
    let h1 = Client {
        sni: true,
        alpn: vec![b"http/1.1"],
    };
    assert_eq!(
        handshake("zoom.us", h1).await,
        Ok(Some(b"http/1.1".to_vec()))
    );
}

/// What rustls says when the resolver offers nothing: the failure is ours, not
/// the client's verification.
const NO_LEAF: &str = "no server certificate chain resolved";

#[tokio::test]
async fn a_handshake_for_another_name_or_without_sni_fails() {
    let other = handshake(
        "example.com",
        Client {
            sni: true,
            alpn: vec![b"h2"],
        },
    )
    .await;
    println!("example.com: {other:?}");
    assert!(other.is_err_and(|e| e.contains(NO_LEAF)));
    // No SNI: the client still checks for api.zoom.us, but the server has no name
    // to pick a leaf by.
    let no_sni = handshake(
        "api.zoom.us",
        Client {
            sni: false,
            alpn: vec![b"h2"],
        },
    )
    .await;
    println!("no SNI: {no_sni:?}");
    assert!(no_sni.is_err_and(|e| e.contains(NO_LEAF)));
}
