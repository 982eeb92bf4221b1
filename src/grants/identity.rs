//! Whose tokens Zoom just issued, and how a presented credential is remembered.

use super::model::Issued;
use super::source::TokenSource;
use base64::Engine as _;

/// The Zoom user an access token belongs to: `GET /v2/users/me`, or, for an
/// app without that scope, the `uid` claim of Zoom's JWT. `None` when neither
/// says (opaque tokens while `/v2/users/me` fails).
pub(super) async fn user_of(source: &dyn TokenSource, issued: &Issued) -> Option<String> {
    match source.whoami(&issued.access_token).await {
        Some(id) => Some(id),
        None => jwt_claim(issued.access_token.expose(), "uid"),
    }
}

/// Hex SHA-256: how a presented code or legacy token is remembered, never in clear.
pub fn hash(token: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One string claim of a JWT's payload, read without verifying (Zoom signs it, not us).
fn jwt_claim(token: &str, name: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value.get(name)?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_uid_from_a_jwt_and_nothing_from_an_opaque_token() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"uid":"u-7"}"#);
        assert_eq!(
            jwt_claim(&format!("h.{payload}.s"), "uid").as_deref(),
            Some("u-7")
        );
        assert_eq!(jwt_claim("opaque-token", "uid"), None);
        assert_eq!(jwt_claim(&format!("h.{payload}.s"), "aid"), None);
    }

    #[test]
    fn hashes_are_hex_sha256() {
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
