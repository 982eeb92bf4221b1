//! HTTPS for the sim: a throwaway CA made at start, and a leaf for `localhost` and
//! `127.0.0.1` signed by it. Clients trust the CA PEM written to the configured path.
//! [`TestCertificates`] hands the same kind of pair, as PEM, to tests.

use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

use super::SimError;

/// Generates the CA and leaf, writes the CA PEM to `ca_out` and returns the acceptor,
/// offering `h2` and `http/1.1` by ALPN, or only the latter.
pub(crate) async fn acceptor(ca_out: &Path, http1_only: bool) -> Result<TlsAcceptor, SimError> {
    let (ca_pem, chain, key) = generate()?;
    tokio::fs::write(ca_out, ca_pem)
        .await
        .map_err(|source| SimError::WriteCa {
            path: ca_out.to_owned(),
            source,
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = if http1_only {
        vec![b"http/1.1".to_vec()]
    } else {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    };
    Ok(TlsAcceptor::from(Arc::new(config)))
}

type Generated = (String, Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// CA PEM, leaf chain (leaf then CA) and the leaf's private key.
fn generate() -> Result<Generated, rcgen::Error> {
    let (ca_cert, leaf_cert, leaf_key) = certificates()?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let chain = vec![leaf_cert.der().clone(), ca_cert.der().clone()];
    Ok((ca_cert.pem(), chain, key))
}

/// A fresh throwaway CA and a leaf for `localhost` and `127.0.0.1` it signed, as
/// PEM: the kind of certificate the sim serves HTTPS with, for tests that give one
/// to another server (a TLS `redis-server`) and point a client at the CA.
pub struct TestCertificates {
    /// What a client must trust.
    pub ca_pem: String,
    /// What the server presents.
    pub leaf_pem: String,
    /// The leaf's private key (PKCS#8).
    pub leaf_key_pem: String,
}

impl TestCertificates {
    pub fn generate() -> Result<Self, rcgen::Error> {
        let (ca_cert, leaf_cert, leaf_key) = certificates()?;
        Ok(Self {
            ca_pem: ca_cert.pem(),
            leaf_pem: leaf_cert.pem(),
            leaf_key_pem: leaf_key.serialize_pem(),
        })
    }
}

/// Leaves the key out: a throwaway, but still a key.
impl std::fmt::Debug for TestCertificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCertificates")
            .field("ca_pem", &self.ca_pem)
            .field("leaf_pem", &self.leaf_pem)
            .finish_non_exhaustive()
    }
}

/// The CA, the leaf it signed and the leaf's key pair.
fn certificates() -> Result<(Certificate, Certificate, KeyPair), rcgen::Error> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "grantmux sim CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut leaf_params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf_params.use_authority_key_identifier_extension = true;
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = KeyPair::generate()?;
    let leaf_cert = leaf_params.signed_by(&leaf_key, &issuer)?;
    Ok((ca_cert, leaf_cert, leaf_key))
}
