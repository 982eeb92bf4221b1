//! A grant's access token, held as the header it is sent in.
//!
//! Every forwarded call carries `Authorization: Bearer <token>`, and the grant
//! record keeps the token to store it. Holding the header's bytes once, and
//! reading the token as a view of them, keeps each grant to one copy of its
//! largest field (DESIGN §6: ≤ 2 KiB per grant).

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use http::HeaderValue;

const SCHEME: &[u8] = b"Bearer ";

/// A Zoom access token; empty before an S2S grant's first mint.
///
/// `Debug` prints `"..."`; the token leaves only through [`AccessToken::expose`]
/// and [`AccessToken::header`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AccessToken(
    /// Empty, or `Bearer ` followed by the token (which is UTF-8).
    Bytes,
);

// === impl AccessToken ===

impl AccessToken {
    pub fn new(token: &str) -> Self {
        if token.is_empty() {
            return Self::default();
        }
        let mut buf = BytesMut::with_capacity(SCHEME.len() + token.len());
        buf.put_slice(SCHEME);
        buf.put_slice(token.as_bytes());
        Self(buf.freeze())
    }

    /// The token itself.
    pub fn expose(&self) -> &str {
        self.0
            .get(SCHEME.len()..)
            .and_then(|token| std::str::from_utf8(token).ok())
            .unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Bearer <token>` as a sensitive header value sharing these bytes; `None`
    /// when empty, or when the token holds bytes no header may carry.
    pub fn header(&self) -> Option<HeaderValue> {
        if self.is_empty() {
            return None;
        }
        let mut value = HeaderValue::from_maybe_shared(self.0.clone()).ok()?;
        value.set_sensitive(true);
        Some(value)
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"...\"")
    }
}

/// Stored as the bare token, as before this type existed.
impl serde::Serialize for AccessToken {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.expose())
    }
}

impl<'de> serde::Deserialize<'de> for AccessToken {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = AccessToken;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an access token string")
            }
            // Copied straight from the input into the header buffer: no
            // intermediate `String` per grant while a store loads.
            fn visit_str<E: serde::de::Error>(self, token: &str) -> Result<AccessToken, E> {
                Ok(AccessToken::new(token))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_and_the_token_share_one_buffer() {
        let token = AccessToken::new("eyJabc.def");
        assert_eq!(token.expose(), "eyJabc.def");
        let header = token.header().expect("header");
        assert_eq!(header, "Bearer eyJabc.def");
        assert!(header.is_sensitive());
        assert_eq!(
            header.as_bytes().as_ptr(),
            token.0.as_ptr(),
            "copied, not shared"
        );
    }

    #[test]
    fn empty_has_no_header() {
        let token = AccessToken::new("");
        assert!(token.is_empty());
        assert_eq!(token.expose(), "");
        assert!(token.header().is_none());
        assert_eq!(token, AccessToken::default());
    }

    #[test]
    fn a_token_no_header_may_carry_gives_no_header() {
        assert!(AccessToken::new("abc\r\nx-injected: 1").header().is_none());
    }

    #[test]
    fn stores_as_the_bare_token_and_debug_redacts() {
        let token = AccessToken::new("eyJabc");
        let json = serde_json::to_string(&token).expect("serialize");
        assert_eq!(json, "\"eyJabc\"");
        let back: AccessToken = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, token);
        let escaped: AccessToken = serde_json::from_str("\"eyJ\\u0061\"").expect("parse");
        assert_eq!(escaped.expose(), "eyJa");
        assert_eq!(format!("{token:?}"), "\"...\"");
    }
}
