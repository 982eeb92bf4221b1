//! Virtual tokens: what callers hold instead of Zoom's tokens.
//!
//! They are JWT-shaped (`header.payload.signature`, base64url) so libraries
//! that decode Zoom's JWTs for `exp` keep working, signed with HMAC-SHA256 by
//! grantmux, and worthless at Zoom. The header's `kid` marks them as ours, so
//! a tampered one is refused here instead of being forwarded to Zoom.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::secret::Secret;

const KID: &str = "grantmux-v1";
const HEADER: &str = r#"{"alg":"HS256","typ":"JWT","kid":"grantmux-v1"}"#;

/// Access or refresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Access,
    Refresh,
}

/// The payload of a virtual token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The grant id (`GrantKey::id`).
    pub gid: String,
    /// The binding id.
    pub bid: String,
    pub typ: Kind,
    pub iat: u64,
    /// Access tokens only: seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// Random, so two tokens minted in the same second differ.
    pub jti: String,
}

/// Signs and verifies virtual tokens.
#[derive(Clone)]
pub struct Signer {
    /// HMAC keyed once; each use clones the keyed state instead of re-keying.
    mac: Hmac<Sha256>,
    /// `HEADER` in base64url: every token we sign starts with exactly this.
    header_b64: String,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not one of ours at all (a real Zoom token, or garbage).
    #[error("not a grantmux token")]
    Foreign,
    /// Ours by its header, but the signature or payload is wrong.
    #[error("grantmux token with a bad signature or payload")]
    Tampered,
}

#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    kid: Option<String>,
}

// === impl Signer ===

impl Signer {
    pub fn new(key: [u8; 32]) -> Self {
        // HMAC takes keys of any length; a 32-byte key cannot fail.
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(&key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        Self {
            mac,
            header_b64: B64.encode(HEADER),
        }
    }

    pub fn random() -> Self {
        Self::new(rand::random())
    }

    pub fn sign(&self, claims: &Claims) -> Secret {
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        let signing_input = format!("{}.{}", self.header_b64, B64.encode(payload));
        let sig = self.mac(signing_input.as_bytes());
        Secret::new(format!("{signing_input}.{}", B64.encode(sig)))
    }

    /// Checks the signature and decodes the claims. Expiry is the caller's to check.
    pub fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(VerifyError::Foreign);
        };
        // Fast path: our exact header. Otherwise decode it: a token that names our
        // `kid` under another header was altered, and must not go to Zoom as if real.
        if header != self.header_b64 {
            return Err(if is_ours(header) {
                VerifyError::Tampered
            } else {
                VerifyError::Foreign
            });
        }
        let sig = B64.decode(sig).map_err(|_| VerifyError::Tampered)?;
        let signing_input = &token[..header.len() + 1 + payload.len()];
        let mut mac = self.hmac();
        mac.update(signing_input.as_bytes());
        // `verify_slice` compares in constant time.
        mac.verify_slice(&sig).map_err(|_| VerifyError::Tampered)?;
        let payload = B64.decode(payload).map_err(|_| VerifyError::Tampered)?;
        serde_json::from_slice(&payload).map_err(|_| VerifyError::Tampered)
    }

    fn mac(&self, input: &[u8]) -> Vec<u8> {
        let mut mac = self.hmac();
        mac.update(input);
        mac.finalize().into_bytes().to_vec()
    }

    fn hmac(&self) -> Hmac<Sha256> {
        self.mac.clone()
    }
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(...)")
    }
}

fn is_ours(header_b64: &str) -> bool {
    B64.decode(header_b64)
        .ok()
        .and_then(|h| serde_json::from_slice::<Header>(&h).ok())
        .and_then(|h| h.kid)
        .is_some_and(|kid| kid == KID)
}

/// A random URL-safe id (binding ids, `jti`).
pub fn random_id() -> String {
    B64.encode(rand::random::<[u8; 12]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            gid: "app/user:u1".into(),
            bid: "b1".into(),
            typ: Kind::Access,
            iat: 100,
            exp: Some(3700),
            jti: random_id(),
        }
    }

    #[test]
    fn round_trips() {
        let s = Signer::random();
        let t = s.sign(&claims());
        assert_eq!(t.expose().split('.').count(), 3);
        assert_eq!(s.verify(t.expose()), Ok(claims_with_jti(&s, t.expose())));
    }

    fn claims_with_jti(s: &Signer, t: &str) -> Claims {
        s.verify(t).expect("valid")
    }

    #[test]
    fn refuses_tampering_and_other_keys() {
        let s = Signer::random();
        let t = s.sign(&claims());
        let other = Signer::random();
        assert_eq!(other.verify(t.expose()), Err(VerifyError::Tampered));
        let mut parts: Vec<String> = t.expose().split('.').map(str::to_owned).collect();
        let mut forged = claims();
        forged.gid = "app/user:someone-else".into();
        parts[1] = B64.encode(serde_json::to_vec(&forged).expect("json"));
        assert_eq!(s.verify(&parts.join(".")), Err(VerifyError::Tampered));
    }

    #[test]
    fn zoom_tokens_are_foreign() {
        let s = Signer::random();
        let zoom_like = format!(
            "{}.{}.sig",
            B64.encode(r#"{"alg":"HS512","v":"2.0","kid":"abc"}"#),
            B64.encode("{}")
        );
        assert_eq!(s.verify(&zoom_like), Err(VerifyError::Foreign));
        assert_eq!(s.verify("opaque"), Err(VerifyError::Foreign));
    }
}
