//! Zoom's webhook signature (`ZOOM.md` §3): `x-zm-signature: v0=<hex>`, the
//! HMAC-SHA256 of `v0:{x-zm-request-timestamp}:{raw body}` keyed with the
//! app's Secret Token; and the URL validation answer, the HMAC of `plainToken`.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::clock::UnixMillis;

type HmacSha256 = Hmac<Sha256>;

/// Why a delivery's signature is not accepted. The text is logged, never sent.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadSignature {
    #[error("no x-zm-signature or x-zm-request-timestamp header")]
    Missing,
    #[error("x-zm-request-timestamp is not a number of seconds")]
    Timestamp,
    #[error("the timestamp is {0:?} away from our clock, beyond the tolerance")]
    Stale(Duration),
    #[error("x-zm-signature is not v0=<hex>")]
    Malformed,
    #[error("the signature matches no configured app's secret token")]
    NoMatch,
}

/// The signature headers of one delivery, as sent.
#[derive(Debug, Clone, Copy)]
pub struct Signed<'a> {
    pub signature: Option<&'a str>,
    pub timestamp: Option<&'a str>,
}

impl Signed<'_> {
    /// Checks the timestamp against `now_ms` and the signature against each
    /// secret in turn (constant-time per comparison). Returns the index of
    /// the secret that signed `body`.
    pub fn verify<'s>(
        &self,
        body: &[u8],
        secrets: impl IntoIterator<Item = &'s [u8]>,
        now_ms: UnixMillis,
        tolerance: Duration,
    ) -> Result<usize, BadSignature> {
        let (Some(signature), Some(timestamp)) = (self.signature, self.timestamp) else {
            return Err(BadSignature::Missing);
        };
        let seconds: u64 = timestamp
            .trim()
            .parse()
            .map_err(|_| BadSignature::Timestamp)?;
        let skew = Duration::from_millis(seconds.saturating_mul(1000).abs_diff(now_ms));
        if skew > tolerance {
            return Err(BadSignature::Stale(skew));
        }
        let sent = signature
            .trim()
            .strip_prefix("v0=")
            .and_then(decode_hex)
            .ok_or(BadSignature::Malformed)?;
        secrets
            .into_iter()
            .position(|secret| {
                signed_mac(secret, timestamp.trim(), body)
                    .verify_slice(&sent)
                    .is_ok()
            })
            .ok_or(BadSignature::NoMatch)
    }
}

/// `v0=<hex>` for `body` sent at `timestamp` (seconds): how Zoom signs, and
/// how the simulator and tests sign as Zoom.
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mac = signed_mac(secret, timestamp, body);
    format!("v0={}", hex(&mac.finalize().into_bytes()))
}

/// The HMAC over Zoom's signed message, `v0:{timestamp}:{body}`: one
/// definition for signing and verifying.
fn signed_mac(secret: &[u8], timestamp: &str, body: &[u8]) -> HmacSha256 {
    let mut mac = keyed(secret);
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    mac
}

/// The URL validation challenge's `encryptedToken`: hex HMAC of `plainToken`.
pub fn encrypted_token(secret: &[u8], plain_token: &str) -> String {
    let mut mac = keyed(secret);
    mac.update(plain_token.as_bytes());
    hex(&mac.finalize().into_bytes())
}

fn keyed(secret: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length; this cannot fail.
    <HmacSha256 as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_MS: u64 = 1_739_923_528_000;
    const FIVE_MIN: Duration = Duration::from_secs(300);

    fn signed<'a>(sig: &'a str, ts: &'a str) -> Signed<'a> {
        Signed {
            signature: Some(sig),
            timestamp: Some(ts),
        }
    }

    #[test]
    fn a_zoom_signature_verifies_with_the_app_that_made_it() {
        let body = br#"{"event":"meeting.created"}"#;
        let sig = sign(b"second", "1739923528", body);
        let secrets: [&[u8]; 2] = [b"first", b"second"];
        let found = signed(&sig, "1739923528").verify(body, secrets, NOW_MS, FIVE_MIN);
        assert_eq!(found, Ok(1));
    }

    #[test]
    fn the_known_vector_matches() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog"), RFC 4231 style.
        assert_eq!(
            encrypted_token(b"key", "The quick brown fox jumps over the lazy dog"),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn a_changed_body_stale_timestamp_or_garbage_is_refused() {
        let body = br#"{"event":"meeting.created"}"#;
        let sig = sign(b"s", "1739923528", body);
        let secrets = || [b"s".as_slice()];
        let tampered = br#"{"event":"meeting.deleted"}"#;
        assert_eq!(
            signed(&sig, "1739923528").verify(tampered, secrets(), NOW_MS, FIVE_MIN),
            Err(BadSignature::NoMatch)
        );
        let late = NOW_MS + 301_000;
        assert!(matches!(
            signed(&sig, "1739923528").verify(body, secrets(), late, FIVE_MIN),
            Err(BadSignature::Stale(_))
        ));
        assert_eq!(
            signed("v0=zz", "1739923528").verify(body, secrets(), NOW_MS, FIVE_MIN),
            Err(BadSignature::Malformed)
        );
        assert_eq!(
            signed(&sig, "soon").verify(body, secrets(), NOW_MS, FIVE_MIN),
            Err(BadSignature::Timestamp)
        );
        let missing = Signed {
            signature: None,
            timestamp: Some("1"),
        };
        assert_eq!(
            missing.verify(body, secrets(), NOW_MS, FIVE_MIN),
            Err(BadSignature::Missing)
        );
    }
}
