//! The leaves grantmux serves as Zoom's hosts, picked by SNI, and the rustls
//! server config that serves them.
//!
//! Every host's leaf is minted at start, so the first handshake does no signing. A
//! leaf is renewed by the first handshake that finds less than a third of its life
//! left (near linkerd's refresh at 70%): no background task to own, and a renewal
//! that fails leaves the old leaf in service, with that third to try again in.

use std::sync::{Arc, Mutex, TryLockError};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::ca::{Authority, CaError, Issued};

#[cfg(test)]
mod tests;

/// Picks the leaf by SNI among the CA's hosts. A handshake without SNI, or for
/// another name, gets no certificate, so it fails.
pub struct LeafResolver {
    ca: Arc<Authority>,
    lifetime: Duration,
    /// One slot per host, fixed at construction.
    slots: Vec<Slot>,
    /// Held while minting, taken with `try_lock`: of a burst of handshakes that
    /// all find a leaf due, one mints and the rest serve the current leaf, which
    /// still has a third of its life. A std mutex, as nothing awaits under it.
    renewing: Mutex<()>,
}

struct Slot {
    host: String,
    /// Read by every handshake and replaced whole on renewal: `ArcSwap`, so the
    /// read is one atomic load and never waits on a renewal.
    leaf: ArcSwap<Issued>,
}

/// A rustls `ServerConfig` (ring, safe default versions, no client auth) serving
/// `resolver`'s leaves, offering ALPN `h2` then `http/1.1`.
pub fn server_config(resolver: Arc<LeafResolver>) -> Result<Arc<rustls::ServerConfig>, CaError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

// === impl LeafResolver ===

impl LeafResolver {
    /// Mints a leaf of `lifetime` for each of the CA's hosts.
    pub fn new(ca: Arc<Authority>, lifetime: Duration) -> Result<Self, CaError> {
        let now = SystemTime::now();
        let slots = ca
            .hosts()
            .iter()
            .map(|host| {
                Ok(Slot {
                    host: host.clone(),
                    leaf: ArcSwap::from_pointee(ca.issue(host, now, lifetime)?),
                })
            })
            .collect::<Result<_, CaError>>()?;
        Ok(Self {
            ca,
            lifetime,
            slots,
            renewing: Mutex::new(()),
        })
    }

    /// Renews every leaf with less than a third of its lifetime left at `now`;
    /// returns how many it replaced. Handshakes call this per host; it is public
    /// so that a caller (or a test) can renew at a time of its choosing.
    pub fn renew_if_due(&self, now: SystemTime) -> Result<usize, CaError> {
        let mut renewed = 0;
        for slot in &self.slots {
            renewed += usize::from(self.renew_slot(slot, now)?);
        }
        Ok(renewed)
    }

    /// The leaf for `host` as a handshake at `now` would get it: renewed first if due.
    pub(super) fn leaf_for(&self, host: &str, now: SystemTime) -> Option<Arc<CertifiedKey>> {
        let slot = self
            .slots
            .iter()
            .find(|s| s.host.eq_ignore_ascii_case(host))?;
        if let Err(error) = self.renew_slot(slot, now) {
            // The current leaf stays in service; it is valid for a while yet.
            tracing::warn!(host = %slot.host, %error, "renewing an interception leaf failed");
        }
        Some(Arc::clone(&slot.leaf.load().key))
    }

    /// Whether it replaced the slot's leaf.
    fn renew_slot(&self, slot: &Slot, now: SystemTime) -> Result<bool, CaError> {
        if !self.is_due(&slot.leaf.load(), now) {
            return Ok(false);
        }
        let _minting = match self.renewing.try_lock() {
            Ok(guard) => guard,
            // The guarded value is `()`: a panic under it broke nothing.
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return Ok(false),
        };
        // Whoever held the lock before may have just renewed this very leaf.
        if !self.is_due(&slot.leaf.load(), now) {
            return Ok(false);
        }
        let fresh = self.ca.issue(&slot.host, now, self.lifetime)?;
        slot.leaf.store(Arc::new(fresh));
        tracing::debug!(host = %slot.host, "renewed the interception leaf");
        Ok(true)
    }

    /// Less than a third of the lifetime left (or none at all).
    fn is_due(&self, leaf: &Issued, now: SystemTime) -> bool {
        let left = leaf.not_after.duration_since(now).unwrap_or(Duration::ZERO);
        left < self.lifetime / 3
    }
}

impl ResolvesServerCert for LeafResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = client_hello.server_name() else {
            tracing::debug!("TLS handshake without SNI: no interception leaf to offer");
            return None;
        };
        let leaf = self.leaf_for(name, SystemTime::now());
        if leaf.is_none() {
            tracing::debug!(
                sni = name,
                "TLS handshake for a name grantmux does not intercept"
            );
        }
        leaf
    }
}

/// Hosts, lifetime and each leaf's expiry; no certificate bytes, no keys.
impl std::fmt::Debug for LeafResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let expiries: Vec<(&str, SystemTime)> = self
            .slots
            .iter()
            .map(|s| (s.host.as_str(), s.leaf.load().not_after))
            .collect();
        f.debug_struct("LeafResolver")
            .field("ca", &self.ca)
            .field("lifetime", &self.lifetime)
            .field("not_after", &expiries)
            .finish_non_exhaustive()
    }
}
