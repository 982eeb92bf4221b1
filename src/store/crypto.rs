//! Encryption at rest for the file store: the 256-bit store key and AES-256-GCM sealing.
//!
//! A sealed record is `[FORMAT_V1][96-bit random nonce][ciphertext + 128-bit tag]`.
//! The caller passes associated data (the grant id) so that a record copied under
//! another key fails to open instead of silently becoming someone else's grant.

use std::fmt;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;

/// First byte of every sealed record, so that a later format can coexist.
const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const KEY_LEN: usize = 32;
/// [`StoreKey::derive`] label of the virtual-token signing key, for every backend:
/// a Redis store and a file store under one key sign alike.
pub(super) const SIGNING_KEY_LABEL: &[u8] = b"grantmux virtual-token signing key v1";

/// The 32-byte store key. `Debug` never prints it.
#[derive(Clone)]
pub struct StoreKey([u8; KEY_LEN]);

/// A ready AES-256-GCM cipher under one [`StoreKey`]. `Debug` never prints the key.
#[derive(Clone)]
pub struct Cipher(Aes256Gcm);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("a store key is 32 bytes written as standard base64 or 64 hex digits; got {0} characters of neither")]
    Malformed(usize),
}

/// A record that does not open: wrong key, wrong associated data, or damaged bytes.
/// AES-GCM cannot tell these apart, by design.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("record does not decrypt (another key, or damaged)")]
pub struct OpenError;

// === impl StoreKey ===

impl StoreKey {
    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        Self(Aes256Gcm::generate_key(OsRng).into())
    }

    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// Parses 32 bytes written as standard base64 (padded) or as 64 hex digits.
    /// Surrounding whitespace (a trailing newline in a key file) is ignored.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        let bytes = if text.len() == 2 * KEY_LEN {
            decode_hex(text)
        } else {
            base64::engine::general_purpose::STANDARD.decode(text).ok()
        };
        bytes
            .and_then(|b| <[u8; KEY_LEN]>::try_from(b).ok())
            .map(Self)
            .ok_or(KeyError::Malformed(text.len()))
    }

    /// The key as standard base64, the form written to a generated key file.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }

    /// A separate key for another purpose (HMAC-SHA256 of `label`), so the
    /// virtual-token signing key lives with the store key without being it.
    pub fn derive(&self, label: &[u8]) -> [u8; KEY_LEN] {
        use hmac::Mac as _;
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(label);
        mac.finalize().into_bytes().into()
    }

    pub fn cipher(&self) -> Cipher {
        Cipher(Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.0)))
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreKey(...)")
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    digits
        .chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

// === impl Cipher ===

impl Cipher {
    /// Encrypts `plaintext` under a fresh random nonce, bound to `aad`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = self
            .0
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            // aes-gcm only fails for messages over 64 GiB; a grant is a few hundred bytes.
            .unwrap_or_else(|_| unreachable!("AES-GCM plaintext too long"));
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Decrypts a record made by [`Cipher::seal`] with the same `aad`.
    pub fn open(&self, aad: &[u8], record: &[u8]) -> Result<Vec<u8>, OpenError> {
        let (format, rest) = record.split_first().ok_or(OpenError)?;
        if *format != FORMAT_V1 || rest.len() < NONCE_LEN + TAG_LEN {
            return Err(OpenError);
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        self.0
            .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad })
            .map_err(|_| OpenError)
    }
}

impl Cipher {
    /// A grant as stored by every backend: its JSON, sealed with its id as the
    /// associated data, so a record cannot be moved under another grant's id.
    pub fn seal_grant(&self, grant: &crate::grants::Grant) -> Result<Vec<u8>, super::StoreError> {
        let id = grant.key.id();
        let json = serde_json::to_vec(grant)
            .map_err(|e| super::StoreError::Corrupt(format!("encoding grant {id}: {e}")))?;
        Ok(self.seal(id.as_bytes(), &json))
    }

    /// Opens a record stored under `id`; `place` names the store in errors.
    pub fn open_grant(
        &self,
        place: &str,
        id: &str,
        sealed: &[u8],
    ) -> Result<crate::grants::Grant, super::StoreError> {
        let corrupt =
            |what: String| super::StoreError::Corrupt(format!("{place}: grant {id}: {what}"));
        let json = self
            .open(id.as_bytes(), sealed)
            .map_err(|e| corrupt(e.to_string()))?;
        let grant: crate::grants::Grant =
            serde_json::from_slice(&json).map_err(|e| corrupt(format!("undecodable: {e}")))?;
        if grant.key.id() != id {
            return Err(corrupt(format!("record holds grant {}", grant.key.id())));
        }
        Ok(grant)
    }
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cipher(AES-256-GCM, key: ...)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn parses_hex_and_base64_to_the_same_key() {
        let hex = StoreKey::parse(HEX).expect("hex");
        let b64 = StoreKey::parse(&format!("{}\n", hex.to_base64())).expect("base64");
        assert_eq!(hex.0, b64.0);
        assert_eq!(hex.0[31], 0x1f);
    }

    #[test]
    fn rejects_short_long_and_garbage_keys() {
        assert!(matches!(
            StoreKey::parse("abcd"),
            Err(KeyError::Malformed(4))
        ));
        assert!(StoreKey::parse(&HEX[..62]).is_err());
        assert!(StoreKey::parse(&HEX.replace('0', "g")).is_err());
        assert!(
            StoreKey::parse(&base64::engine::general_purpose::STANDARD.encode([7u8; 31])).is_err()
        );
    }

    #[test]
    fn debug_never_prints_the_key() {
        let key = StoreKey::parse(HEX).expect("hex");
        for text in [format!("{key:?}"), format!("{:?}", key.cipher())] {
            assert!(
                !text.contains("0001") && !text.contains(&key.to_base64()),
                "{text}"
            );
        }
    }

    #[test]
    fn seal_open_round_trip_and_binding() {
        let cipher = StoreKey::generate().cipher();
        let sealed = cipher.seal(b"id-1", b"secret");
        assert_eq!(cipher.open(b"id-1", &sealed).as_deref(), Ok(&b"secret"[..]));
        assert_eq!(cipher.open(b"id-2", &sealed), Err(OpenError));
        assert_eq!(
            StoreKey::generate().cipher().open(b"id-1", &sealed),
            Err(OpenError)
        );
        let mut flipped = sealed.clone();
        flipped[20] ^= 1;
        assert_eq!(cipher.open(b"id-1", &flipped), Err(OpenError));
        assert_eq!(cipher.open(b"id-1", &sealed[..10]), Err(OpenError));
        assert_ne!(
            cipher.seal(b"id-1", b"secret"),
            sealed,
            "nonces must differ"
        );
    }
}
