//! Reading a token or revoke request: the client's credentials and the
//! parameters, from the headers, the query string and the form body.
//!
//! Pure (no I/O, no config), so it can be fuzzed and unit-tested alone; the
//! endpoint checks the credentials against the configured apps afterwards.

use std::collections::HashMap;

use base64::Engine as _;
use http::{header, HeaderMap};
use subtle::ConstantTimeEq;

use crate::error::OAuthError;
use crate::secret::Secret;

/// The parameters of a request, credentials removed.
pub type Params = HashMap<String, String>;

/// Who the request says it comes from. Nothing here has been checked against an
/// app yet.
#[derive(Debug, PartialEq, Eq)]
pub enum Credentials {
    /// A client ID with its secret: HTTP Basic, the form body (Zoom accepts
    /// `client_secret_post`, as every passport-oauth2 strategy sends), or both.
    Confidential { client_id: String, secret: Secret },
    /// A client ID alone, as a public (PKCE) client sends it.
    Public { client_id: String },
}

/// A token or revoke request, read but not yet authenticated.
#[derive(Debug)]
pub struct TokenRequest {
    pub credentials: Credentials,
    /// Query and form parameters, the form's winning; never `client_id` or
    /// `client_secret`, so they cannot be forwarded anywhere by accident.
    pub params: Params,
    /// The body was declared JSON, which Zoom answers with "unsupported grant
    /// type" (ZOOM.md §1.1). Kept apart so the client is authenticated first.
    pub json_body: bool,
}

// === impl Credentials ===

impl Credentials {
    pub fn client_id(&self) -> &str {
        match self {
            Credentials::Confidential { client_id, .. } | Credentials::Public { client_id } => {
                client_id
            }
        }
    }
}

// === impl TokenRequest ===

impl TokenRequest {
    /// Reads a request's credentials and parameters.
    ///
    /// Credentials may come as HTTP Basic, in the form (`client_id` and
    /// `client_secret`), or both; when both, they must agree (RFC 6749 §2.3.1
    /// forbids two methods; clients that send `client_id` in the body beside
    /// Basic are common and harmless, so agreement is what counts).
    pub fn parse(
        headers: &HeaderMap,
        query: Option<&str>,
        body: &[u8],
    ) -> Result<Self, OAuthError> {
        let basic = basic_credentials(headers)?;
        let json_body = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("json"));
        let mut params: Params = query
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        if !json_body {
            params.extend(form_urlencoded::parse(body).into_owned());
        }
        let form_id = params.remove("client_id").filter(|v| !v.is_empty());
        let form_secret = params.remove("client_secret").filter(|v| !v.is_empty());
        let credentials = match (basic, form_id, form_secret) {
            (Some((id, secret)), form_id, form_secret) => {
                let id_differs = form_id.is_some_and(|f| f != id);
                let secret_differs = form_secret
                    .is_some_and(|f| !bool::from(f.as_bytes().ct_eq(secret.expose().as_bytes())));
                if id_differs || secret_differs {
                    return Err(OAuthError::InvalidRequest(
                        "client credentials in the Authorization header and the body differ",
                    ));
                }
                Credentials::Confidential {
                    client_id: id,
                    secret,
                }
            }
            (None, Some(client_id), Some(secret)) => Credentials::Confidential {
                client_id,
                secret: Secret::new(secret),
            },
            (None, Some(client_id), None) => Credentials::Public { client_id },
            (None, None, _) => return Err(OAuthError::InvalidClient),
        };
        Ok(Self {
            credentials,
            params,
            json_body,
        })
    }
}

/// `Authorization: Basic base64(client_id:client_secret)`, if the header is
/// there. A header that is there but unreadable is `invalid_client`, as at Zoom.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, Secret)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let encoded = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, rest)| rest.trim())
        .ok_or(OAuthError::InvalidClient)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| OAuthError::InvalidClient)?;
    let decoded = String::from_utf8(decoded).map_err(|_| OAuthError::InvalidClient)?;
    let (client_id, secret) = decoded.split_once(':').ok_or(OAuthError::InvalidClient)?;
    if client_id.is_empty() {
        return Err(OAuthError::InvalidClient);
    }
    Ok(Some((client_id.to_owned(), Secret::new(secret))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(id: &str, secret: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let v = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        h.insert(
            header::AUTHORIZATION,
            format!("Basic {v}").parse().expect("header"),
        );
        h
    }

    fn confidential(id: &str, secret: &str) -> Credentials {
        Credentials::Confidential {
            client_id: id.into(),
            secret: Secret::new(secret),
        }
    }

    #[test]
    fn basic_alone() {
        let r = TokenRequest::parse(&basic("app", "s3"), None, b"grant_type=refresh_token")
            .expect("parses");
        assert_eq!(r.credentials, confidential("app", "s3"));
        assert_eq!(r.params["grant_type"], "refresh_token");
    }

    #[test]
    fn secret_in_the_body_is_taken_and_never_kept_as_a_parameter() {
        let r = TokenRequest::parse(
            &HeaderMap::new(),
            None,
            b"grant_type=authorization_code&code=c&client_id=app&client_secret=s3",
        )
        .expect("parses");
        assert_eq!(r.credentials, confidential("app", "s3"));
        assert!(!r.params.contains_key("client_secret"));
        assert!(!r.params.contains_key("client_id"));
    }

    #[test]
    fn both_methods_must_agree() {
        let agree =
            TokenRequest::parse(&basic("app", "s3"), None, b"client_id=app&client_secret=s3");
        assert_eq!(agree.expect("agree").credentials, confidential("app", "s3"));
        for body in [&b"client_id=other"[..], b"client_id=app&client_secret=nope"] {
            let err = TokenRequest::parse(&basic("app", "s3"), None, body).expect_err("differ");
            assert!(matches!(err, OAuthError::InvalidRequest(_)), "{err:?}");
        }
    }

    #[test]
    fn client_id_alone_is_a_public_client() {
        let r = TokenRequest::parse(&HeaderMap::new(), None, b"client_id=pub&code_verifier=v")
            .expect("parses");
        assert_eq!(
            r.credentials,
            Credentials::Public {
                client_id: "pub".into()
            }
        );
    }

    #[test]
    fn missing_or_unreadable_credentials_are_invalid_client() {
        let mut garbled = HeaderMap::new();
        garbled.insert(header::AUTHORIZATION, "Basic !!!".parse().expect("header"));
        for (headers, body) in [
            (HeaderMap::new(), &b"grant_type=refresh_token"[..]),
            (HeaderMap::new(), b"client_secret=s3"),
            (garbled, b""),
            (basic("", "s3"), b""),
        ] {
            let err = TokenRequest::parse(&headers, None, body).expect_err("no client");
            assert!(matches!(err, OAuthError::InvalidClient), "{err:?}");
        }
    }

    #[test]
    fn a_json_body_is_flagged_not_read() {
        let mut h = basic("app", "s3");
        h.insert(
            header::CONTENT_TYPE,
            "application/json".parse().expect("header"),
        );
        let r = TokenRequest::parse(&h, Some("grant_type=refresh_token"), b"{\"a\":1}")
            .expect("parses");
        assert!(r.json_body);
        assert_eq!(r.params.len(), 1);
    }
}
