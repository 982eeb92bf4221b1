//! The CA on disk: loaded and checked if its two files exist, made and written if
//! neither does; and the bundle of system roots plus the CA that clients reading
//! `SSL_CERT_FILE` need, since that variable replaces the system store.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine;
use rcgen::{KeyPair, PublicKeyData};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::RootCertStore;

use super::der::{self, OID_NAME_CONSTRAINTS};
use super::{ca_params, normalize_hosts, Authority, CaError};

// === impl Authority ===

impl Authority {
    /// Loads the CA from `cert_file` and `key_file` if both exist; generates one and
    /// writes both if neither does (the key created 0600). One without the other is
    /// an error naming both. A loaded CA must be a CA grantmux made for exactly
    /// `hosts`, with the key that matches it.
    pub fn load_or_create(
        cert_file: &Path,
        key_file: &Path,
        hosts: &[String],
    ) -> Result<Self, CaError> {
        let exists = |path: &Path| {
            path.try_exists().map_err(|source| CaError::Read {
                path: path.to_owned(),
                source,
            })
        };
        let missing = |present: &Path, missing: &Path| CaError::OneFileMissing {
            present: present.to_owned(),
            missing: missing.to_owned(),
        };
        match (exists(cert_file)?, exists(key_file)?) {
            (true, true) => Self::load(cert_file, key_file, hosts),
            (false, false) => {
                let ca = Self::generate(hosts)?;
                ca.write_new(cert_file, key_file)?;
                tracing::info!(
                    cert = %cert_file.display(),
                    sha256 = %ca.fingerprint,
                    hosts = ?ca.hosts,
                    "made a new interception CA; clients must trust this certificate",
                );
                Ok(ca)
            }
            (true, false) => Err(missing(cert_file, key_file)),
            (false, true) => Err(missing(key_file, cert_file)),
        }
    }

    /// Writes the platform's trusted roots, then this CA, to `path` as PEM; through a
    /// temporary file renamed into place, so a reader never sees half a bundle.
    pub fn export_bundle(&self, path: &Path) -> Result<(), CaError> {
        let native = rustls_native_certs::load_native_certs();
        for error in &native.errors {
            tracing::warn!(%error, "a system root could not be read for the CA bundle");
        }
        if native.certs.is_empty() {
            // webpki-roots holds trust anchors, not certificates, so it cannot stand
            // in here; a bundle of the CA alone would break every other TLS call.
            let detail = match native.errors.first() {
                Some(e) => e.to_string(),
                None => "the platform store is empty".to_owned(),
            };
            return Err(CaError::NoSystemRoots { detail });
        }
        let mut bundle = String::new();
        // Skipped: this CA, and any older grantmux CA, which the "system" store holds
        // when grantmux itself runs with SSL_CERT_FILE at a bundle it wrote before.
        let ours = der::parse(&self.cert_der).map(|p| p.subject.to_vec());
        let mut seen = HashSet::new();
        for cert in &native.certs {
            let subject = der::parse(cert).map(|p| p.subject);
            if subject.is_some() && subject == ours.as_deref() {
                continue;
            }
            if seen.insert(cert.as_ref()) {
                bundle.push_str(&pem("CERTIFICATE", cert));
            }
        }
        bundle.push_str(&self.cert_pem);
        create_parent(path)?;
        write_atomic(path, bundle.as_bytes())
    }

    fn load(cert_file: &Path, key_file: &Path, hosts: &[String]) -> Result<Self, CaError> {
        let hosts = normalize_hosts(hosts)?;
        let cert_der = read_cert(cert_file)?;
        let key = read_key(key_file)?;
        let params = ca_params(&hosts)?;
        check(cert_file, key_file, &cert_der, &key, &params, &hosts)?;
        let ca = Self::assemble(hosts, cert_der, params, key);
        ca.self_check(cert_file)?;
        tracing::info!(
            cert = %cert_file.display(),
            sha256 = %ca.fingerprint,
            "loaded the interception CA",
        );
        Ok(ca)
    }

    /// Mints a leaf and verifies it as a client trusting only this CA would: proof,
    /// before anything is served, that the loaded files sign leaves that work.
    fn self_check(&self, cert_file: &Path) -> Result<(), CaError> {
        let failed = |source| CaError::SelfCheck {
            cert_file: cert_file.to_owned(),
            source,
        };
        let host = self.hosts.first().ok_or(CaError::NoHosts)?;
        let leaf = self.leaf(host, super::MIN_LEAF_LIFETIME)?;
        let verifier = verifier_for(&self.cert_der).map_err(failed)?;
        let name = ServerName::try_from(host.as_str())
            .map_err(|_| CaError::InvalidHost { host: host.clone() })?;
        let end_entity = leaf.end_entity_cert()?;
        let intermediates = leaf.cert.get(1..).unwrap_or_default();
        verifier
            .verify_server_cert(end_entity, intermediates, &name, &[], UnixTime::now())
            .map_err(failed)?;
        Ok(())
    }

    /// Key first, created 0600 before a byte is written; then the certificate. If the
    /// certificate cannot be written the key goes too, so a retry starts clean rather
    /// than finding one file of two.
    fn write_new(&self, cert_file: &Path, key_file: &Path) -> Result<(), CaError> {
        create_parent(key_file)?;
        create_parent(cert_file)?;
        write_key(key_file, self.issuer.key().serialize_pem().as_bytes())?;
        if let Err(e) = write_atomic(cert_file, self.cert_pem.as_bytes()) {
            let _ = fs::remove_file(key_file);
            return Err(e);
        }
        Ok(())
    }
}

/// The checks a loaded CA must pass, each with its own error: a CA, its key, made
/// by grantmux, for exactly these hosts. The last two compare bytes with a
/// certificate made now from the same key and hosts.
fn check(
    cert_file: &Path,
    key_file: &Path,
    cert_der: &[u8],
    key: &KeyPair,
    params: &rcgen::CertificateParams,
    hosts: &[String],
) -> Result<(), CaError> {
    let cert_file_owned = || cert_file.to_owned();
    let loaded = der::parse(cert_der).ok_or_else(|| CaError::CertPem {
        path: cert_file_owned(),
    })?;
    if !loaded.is_ca() {
        return Err(CaError::NotACa {
            cert_file: cert_file_owned(),
        });
    }
    if loaded.spki != key.subject_public_key_info() {
        return Err(CaError::KeyMismatch {
            key_file: key_file.to_owned(),
            cert_file: cert_file_owned(),
        });
    }
    let model = params.self_signed(key)?;
    // Cannot fail for a certificate rcgen just wrote; an error all the same.
    let expected = der::parse(model.der()).ok_or(rcgen::Error::CouldNotParseCertificate)?;
    if loaded.subject != expected.subject {
        return Err(CaError::ForeignCa {
            cert_file: cert_file_owned(),
        });
    }
    if loaded.extension(OID_NAME_CONSTRAINTS) != expected.extension(OID_NAME_CONSTRAINTS) {
        return Err(CaError::HostsDiffer {
            cert_file: cert_file_owned(),
            hosts: hosts.to_vec(),
        });
    }
    Ok(())
}

/// A server verifier trusting `ca` alone.
pub(super) fn verifier_for(
    ca: &CertificateDer<'_>,
) -> Result<Arc<WebPkiServerVerifier>, rustls::Error> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))
}

fn read_cert(path: &Path) -> Result<CertificateDer<'static>, CaError> {
    let bytes = fs::read(path).map_err(|source| CaError::Read {
        path: path.to_owned(),
        source,
    })?;
    CertificateDer::from_pem_slice(&bytes).map_err(|_| CaError::CertPem {
        path: path.to_owned(),
    })
}

/// The key, with any parse error dropped: see [`CaError`].
fn read_key(path: &Path) -> Result<KeyPair, CaError> {
    let text = fs::read_to_string(path).map_err(|source| CaError::Read {
        path: path.to_owned(),
        source,
    })?;
    warn_if_shared(path);
    KeyPair::from_pem(&text).map_err(|_| CaError::KeyPem {
        path: path.to_owned(),
    })
}

/// A key others can read is worth a warning, not a refusal: Kubernetes mounts
/// secrets 0644 unless told otherwise, and the pod is the boundary there.
fn warn_if_shared(path: &Path) {
    if let Ok(meta) = fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                key = %path.display(),
                mode = format_args!("{mode:o}"),
                "the interception CA key is readable by other users",
            );
        }
    }
}

fn create_parent(path: &Path) -> Result<(), CaError> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            fs::create_dir_all(dir).map_err(|source| CaError::Write {
                path: dir.to_owned(),
                source,
            })
        }
        _ => Ok(()),
    }
}

/// Created new with mode 0600, so the key is never readable by others, not even
/// between a write and a chmod; and never over an existing file.
fn write_key(path: &Path, pem: &[u8]) -> Result<(), CaError> {
    let write = || -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        file.write_all(pem)?;
        file.sync_all()
    };
    write().map_err(|source| CaError::Write {
        path: path.to_owned(),
        source,
    })
}

/// Through a temporary file beside `path`, renamed over it.
fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), CaError> {
    let temp = temp_beside(path);
    let write = || -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    };
    write().map_err(|source| {
        let _ = fs::remove_file(&temp);
        CaError::Write {
            path: path.to_owned(),
            source,
        }
    })
}

/// `.name.tmp.<pid>.<nanos>` in the same directory, so the rename stays on one
/// file system and two writers do not share a temporary file.
fn temp_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp.{}.{nanos}", std::process::id()))
}

/// `der` as a PEM block with `label`, 64 columns, LF line ends.
pub(super) fn pem(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    // Base64 is ASCII, so every 64-byte chunk is valid UTF-8.
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
