//! Whose tokens Zoom just issued, and how a presented credential is remembered.

use super::model::{Grant, Issued};
use super::source::TokenSource;
use super::Subject;
use crate::secret::Secret;
use base64::Engine as _;

/// Who an access token belongs to: the Zoom user, and the Zoom account that
/// user belongs to (whose rate-limit budgets every user of it shares).
/// Neither is a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub user_id: String,
    /// `None` when Zoom did not say (an answer without `account_id` and an
    /// opaque token); the user's grant then keeps any account it already knew.
    pub account_id: Option<String>,
}

/// The identity behind an access token: `GET /v2/users/me`, or, for an app
/// without that scope, the `uid` and `aid` claims of Zoom's JWT. `None` when
/// neither names the user (opaque tokens while `/v2/users/me` fails).
pub(super) async fn identify(source: &dyn TokenSource, issued: &Issued) -> Option<Identity> {
    let token = issued.access_token.expose();
    let mut identity = match source.whoami(&issued.access_token).await {
        Some(identity) => identity,
        None => Identity {
            user_id: jwt_claim(token, "uid")?,
            account_id: None,
        },
    };
    if identity.account_id.is_none() {
        identity.account_id = jwt_claim(token, "aid").filter(|id| !id.is_empty());
    }
    Some(identity)
}

/// Fills in the account of a user grant that does not know it yet (a record
/// stored before grants kept their account) from the `aid` claim of the token
/// it was just rotated to: no call to Zoom. Opaque tokens leave it unknown.
pub(super) fn learn_account(record: &mut Grant, access_token: &Secret) {
    if matches!(record.key.subject, Subject::User(_)) && record.account_id.is_none() {
        record.account_id = jwt_claim(access_token.expose(), "aid").filter(|id| !id.is_empty());
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
