//! grantmux's own certificate authority, for clients whose Zoom URLs are fixed in
//! code: they trust this CA (`NODE_EXTRA_CA_CERTS`, `REQUESTS_CA_BUNDLE`, ...) and
//! grantmux answers as `zoom.us` and `api.zoom.us` with leaves it signs.
//!
//! Trusting a CA is trusting it for every name, unless the CA says otherwise. This
//! one does: a critical Name Constraints extension permits only the configured
//! hosts (and, as RFC 5280 defines a dNSName subtree, their subdomains) and excludes
//! every IP address. So its key, if it leaked, could not impersonate a bank to the
//! clients that trust it; and [`Authority::leaf`] refuses any name outside the list
//! even before a client would.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DnType, ExtendedKeyUsagePurpose,
    GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose, NameConstraints,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

mod der;
mod files;
#[cfg(test)]
mod tests;

/// The CA's common name; also how a loaded CA is recognised as grantmux's own.
const CA_COMMON_NAME: &str = "grantmux interception CA";
/// Ten years: the CA is what clients are configured to trust, so it should
/// outlive the deployments that trust it.
const CA_LIFETIME: Duration = Duration::from_secs(3653 * 24 * 3600);
/// Certificates start this far in the past, so a client whose clock runs a little
/// behind grantmux's still accepts a leaf minted a moment ago.
const BACKDATE: Duration = Duration::from_secs(60);
/// The shortest leaf lifetime [`Authority::leaf`] accepts: shorter would have the
/// resolver mint on nearly every handshake.
pub const MIN_LEAF_LIFETIME: Duration = Duration::from_secs(60);
/// The longest leaf lifetime [`Authority::leaf`] accepts: the 398 days browsers
/// allow public leaves. grantmux renews its leaves itself, so long ones buy nothing.
pub const MAX_LEAF_LIFETIME: Duration = Duration::from_secs(398 * 24 * 3600);

/// grantmux's certificate authority for Zoom's names only.
pub struct Authority {
    /// Lowercase, sorted, deduplicated: the names the CA permits.
    hosts: Vec<String>,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    /// SHA-256 of the certificate, as `openssl x509 -fingerprint -sha256` prints it.
    fingerprint: String,
    /// The CA's name, key usages and signing key. Never printed: see `Debug`.
    issuer: Issuer<'static, KeyPair>,
}

/// What went wrong making, loading or using the CA. No variant carries key
/// material: errors from parsing a key file are dropped, not wrapped, because a
/// PEM decoder's message can quote the bytes it choked on.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("the interception CA needs at least one host")]
    NoHosts,
    #[error(
        "interception host {host:?} is not a DNS name of at least two labels \
         (no IP addresses, wildcards or bare top-level names)"
    )]
    InvalidHost { host: String },
    #[error("{host:?} is not one of the interception CA's hosts {hosts:?}")]
    HostNotPermitted { host: String, hosts: Vec<String> },
    #[error(
        "interception leaf lifetime {lifetime:?} is outside {MIN_LEAF_LIFETIME:?}..={MAX_LEAF_LIFETIME:?}"
    )]
    LeafLifetime { lifetime: Duration },
    #[error("the system clock is outside what a certificate can say")]
    Clock,
    #[error("making a certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("rustls refused a certificate or key grantmux made: {0}")]
    Tls(#[from] rustls::Error),
    #[error(
        "{present} exists but {missing} does not: the interception CA's certificate and key \
         go together; restore the missing one, or remove both to make a new CA"
    )]
    OneFileMissing { present: PathBuf, missing: PathBuf },
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: no PEM certificate that parses")]
    CertPem { path: PathBuf },
    #[error("{path}: no PEM private key grantmux can sign with (PKCS#8, ECDSA P-256 or similar)")]
    KeyPem { path: PathBuf },
    #[error("{cert_file}: not a CA certificate (basicConstraints cA is not true)")]
    NotACa { cert_file: PathBuf },
    #[error("{key_file} is not the key of the certificate in {cert_file}")]
    KeyMismatch {
        key_file: PathBuf,
        cert_file: PathBuf,
    },
    #[error(
        "{cert_file}: not an interception CA grantmux made (its subject is not \
         CN={CA_COMMON_NAME}); grantmux signs leaves only with a CA of its own"
    )]
    ForeignCa { cert_file: PathBuf },
    #[error(
        "{cert_file}: this CA's name constraints are not exactly the hosts {hosts:?}; \
         remove it and its key to make a new one (and give clients the new certificate)"
    )]
    HostsDiffer {
        cert_file: PathBuf,
        hosts: Vec<String>,
    },
    #[error("{cert_file}: a leaf from this CA does not verify under it: {source}")]
    SelfCheck {
        cert_file: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("no system root certificates could be loaded for the CA bundle ({detail})")]
    NoSystemRoots { detail: String },
}

/// A leaf as the resolver holds it: the chain and key rustls serves, and when it
/// stops being valid.
pub(super) struct Issued {
    pub(super) key: Arc<CertifiedKey>,
    pub(super) not_after: SystemTime,
}

// === impl Authority ===

impl Authority {
    /// A fresh CA (ECDSA P-256) whose critical Name Constraints permit only `hosts`.
    pub fn generate(hosts: &[String]) -> Result<Self, CaError> {
        let hosts = normalize_hosts(hosts)?;
        let mut params = ca_params(&hosts)?;
        let now = SystemTime::now();
        let until = now.checked_add(CA_LIFETIME).ok_or(CaError::Clock)?;
        set_validity(&mut params, now, until)?;
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Self::assemble(hosts, cert.der().clone(), params, key))
    }

    /// The CA certificate as PEM (what clients trust; safe to print or serve).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The names this CA may sign leaves for.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// The certificate's SHA-256 fingerprint, `AB:CD:...`, as
    /// `openssl x509 -noout -fingerprint -sha256` prints it.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// A leaf for `host` (one of the CA's hosts), valid from a minute ago until
    /// `lifetime` from now, with the chain [leaf, CA].
    pub fn leaf(&self, host: &str, lifetime: Duration) -> Result<CertifiedKey, CaError> {
        let issued = self.issue(host, SystemTime::now(), lifetime)?;
        Ok(Arc::unwrap_or_clone(issued.key))
    }

    /// [`Authority::leaf`] at `now`, keeping the expiry the resolver renews by.
    pub(super) fn issue(
        &self,
        host: &str,
        now: SystemTime,
        lifetime: Duration,
    ) -> Result<Issued, CaError> {
        let host = self.permitted(host)?;
        if !(MIN_LEAF_LIFETIME..=MAX_LEAF_LIFETIME).contains(&lifetime) {
            return Err(CaError::LeafLifetime { lifetime });
        }
        let not_after = now.checked_add(lifetime).ok_or(CaError::Clock)?;
        let mut params = leaf_params(host)?;
        set_validity(&mut params, now, not_after)?;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let chain = vec![cert.der().clone(), self.cert_der.clone()];
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = rustls::crypto::ring::default_provider();
        let key = CertifiedKey::from_der(chain, der, &provider)?;
        Ok(Issued {
            key: Arc::new(key),
            not_after,
        })
    }

    /// `host` as the CA holds it, if the CA may sign for it.
    fn permitted(&self, host: &str) -> Result<&str, CaError> {
        self.hosts
            .iter()
            .find(|h| h.eq_ignore_ascii_case(host))
            .map(String::as_str)
            .ok_or_else(|| CaError::HostNotPermitted {
                host: host.to_owned(),
                hosts: self.hosts.clone(),
            })
    }

    fn assemble(
        hosts: Vec<String>,
        cert_der: CertificateDer<'static>,
        params: CertificateParams,
        key: KeyPair,
    ) -> Self {
        Self {
            hosts,
            cert_pem: files::pem("CERTIFICATE", &cert_der),
            fingerprint: fingerprint(&cert_der),
            cert_der,
            issuer: Issuer::new(params, key),
        }
    }
}

/// Hosts and fingerprint only: the key never reaches a log.
impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("hosts", &self.hosts)
            .field("sha256", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// Lowercase, without a trailing dot, sorted and deduplicated (so the constraints,
/// and a loaded CA's check against them, do not depend on the configured order);
/// each a DNS name of two labels or more. A one-label constraint such as `us` would
/// let the CA vouch for a whole top-level domain.
fn normalize_hosts(hosts: &[String]) -> Result<Vec<String>, CaError> {
    let mut out: Vec<String> = Vec::with_capacity(hosts.len());
    for raw in hosts {
        let host = raw.trim().trim_end_matches('.').to_ascii_lowercase();
        let invalid = || CaError::InvalidHost { host: raw.clone() };
        let is_dns = rustls::pki_types::DnsName::try_from(host.as_str()).is_ok();
        let is_ip = host.parse::<std::net::IpAddr>().is_ok();
        if !is_dns || is_ip || host.contains('*') || !host.contains('.') {
            return Err(invalid());
        }
        out.push(host);
    }
    out.sort();
    out.dedup();
    if out.is_empty() {
        return Err(CaError::NoHosts);
    }
    Ok(out)
}

/// Everything about the CA certificate but its validity. Loading rebuilds these
/// from the hosts to sign with, and to check the stored certificate against.
fn ca_params(hosts: &[String]) -> Result<CertificateParams, CaError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, CA_COMMON_NAME);
    // pathlen 0: leaves only, never an intermediate that could sign further.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.name_constraints = Some(NameConstraints {
        permitted_subtrees: hosts
            .iter()
            .map(|h| GeneralSubtree::DnsName(h.clone()))
            .collect(),
        // A dNSName subtree says nothing about iPAddress names (RFC 5280 4.2.1.10),
        // so without these the CA could still vouch for any IP address.
        excluded_subtrees: vec![
            GeneralSubtree::IpAddress(CidrSubnet::from_v4_prefix([0; 4], 0)),
            GeneralSubtree::IpAddress(CidrSubnet::from_v6_prefix([0; 16], 0)),
        ],
    });
    Ok(params)
}

fn leaf_params(host: &str) -> Result<CertificateParams, CaError> {
    let mut params = CertificateParams::new(vec![host.to_owned()])?;
    params.distinguished_name.push(DnType::CommonName, host);
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    Ok(params)
}

/// Valid from a minute before `from` until `until`. rcgen takes
/// `time::OffsetDateTime`, a crate grantmux does not depend on; rcgen's own date for
/// the epoch plus a `std` duration reaches one without naming it.
fn set_validity(
    params: &mut CertificateParams,
    from: SystemTime,
    until: SystemTime,
) -> Result<(), CaError> {
    let from = from.checked_sub(BACKDATE).ok_or(CaError::Clock)?;
    let since_epoch = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_err(|_| CaError::Clock);
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + since_epoch(from)?;
    params.not_after = epoch + since_epoch(until)?;
    Ok(())
}

fn fingerprint(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}
