//! HS512 JWTs shaped like Zoom's 2025 (ver 10) tokens.
//!
//! The simulator decides whether a token is live by looking it up in its state; the
//! signature only lets it recognise its own expired tokens after they were purged,
//! so "Access token is expired." survives housekeeping.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha512;

type HmacSha512 = Hmac<Sha512>;

/// `type` claim values (Zoom's real numbering is not public; these only need to differ).
pub(crate) const TYPE_REFRESH: u8 = 1;
pub(crate) const TYPE_ACCESS: u8 = 3;

/// Signs and checks the sim's tokens with one random per-instance key.
pub(crate) struct Signer {
    key: [u8; 64],
    kid: String,
}

/// The claims of a sim token. Field names are Zoom's.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Claims {
    pub aud: String,
    pub uid: String,
    pub ver: u8,
    pub auid: String,
    pub nbf: u64,
    pub code: String,
    pub iss: String,
    pub gno: u8,
    pub exp: u64,
    #[serde(rename = "type")]
    pub kind: u8,
    pub iat: u64,
    pub aid: String,
    pub jti: String,
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    v: &'static str,
    kid: &'a str,
}

// === impl Signer ===

impl Signer {
    pub(crate) fn new() -> Self {
        Self {
            key: rand::random(),
            kid: random_id(16),
        }
    }

    pub(crate) fn sign(&self, claims: &Claims) -> String {
        let header = Header {
            alg: "HS512",
            v: "2.0",
            kid: &self.kid,
        };
        let mut token = encode_json(&header);
        token.push('.');
        token.push_str(&encode_json(claims));
        let sig = self.mac(token.as_bytes()).finalize().into_bytes();
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(sig));
        token
    }

    /// The claims of a token this signer made, or `None` for anything else.
    pub(crate) fn verify(&self, token: &str) -> Option<Claims> {
        let (signed, sig) = token.rsplit_once('.')?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        self.mac(signed.as_bytes()).verify_slice(&sig).ok()?;
        let (_, payload) = signed.split_once('.')?;
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
    }

    fn mac(&self, data: &[u8]) -> HmacSha512 {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <HmacSha512 as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(data);
        mac
    }
}

/// A random URL-safe identifier of `bytes` random bytes.
pub(crate) fn random_id(bytes: usize) -> String {
    let raw: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    URL_SAFE_NO_PAD.encode(raw)
}

fn encode_json<T: Serialize>(value: &T) -> String {
    // Serialising these plain structs cannot fail; an empty object keeps the type total.
    let json = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    URL_SAFE_NO_PAD.encode(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            aud: "https://oauth.zoom.us".into(),
            uid: "u".into(),
            ver: 10,
            auid: "a".into(),
            nbf: 1,
            code: "c".into(),
            iss: "zm:cid:x".into(),
            gno: 0,
            exp: 2,
            kind: TYPE_ACCESS,
            iat: 1,
            aid: "acc".into(),
            jti: "j".into(),
        }
    }

    #[test]
    fn signs_and_verifies_own_tokens_only() {
        let signer = Signer::new();
        let token = signer.sign(&claims());
        assert_eq!(token.split('.').count(), 3);
        assert_eq!(signer.verify(&token).map(|c| c.uid), Some("u".into()));
        assert!(Signer::new().verify(&token).is_none());
        assert!(signer.verify("a.b.c").is_none());
    }
}
