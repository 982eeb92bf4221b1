//! What the OAuth endpoints share: parameter parsing and HTTP Basic client auth.

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::{BodyExt, Limited};

use super::config::SimApp;
use super::reply;
use super::state::Shared;
use crate::body::Body;
use crate::serve::Incoming;

/// Token-endpoint bodies are a few hundred bytes; anything larger is not a client.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// Token- or revoke-endpoint parameters, merged from the query string and the body.
#[derive(Debug, Default)]
pub(crate) struct Params {
    values: HashMap<String, String>,
    /// The body was declared JSON, which Zoom refuses as "unsupported grant type".
    pub json_body: bool,
}

// === impl Params ===

impl Params {
    /// Body values win over query values; the query counts only if `allow_query`.
    pub(crate) fn parse(
        headers: &HeaderMap,
        query: Option<&str>,
        body: &[u8],
        allow_query: bool,
    ) -> Self {
        let mut values = HashMap::new();
        if allow_query {
            values.extend(query_pairs(query));
        }
        let json_body = content_type(headers).starts_with("application/json");
        // Any non-JSON body is read as a form: curl without -H sends form data anyway.
        if !json_body {
            values.extend(form_urlencoded::parse(body).into_owned());
        }
        Self { values, json_body }
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}

/// The query string as owned pairs (empty when absent).
pub(crate) fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// Reads a small request body; an oversized or broken body reads as empty, which
/// then fails as missing parameters rather than as a special case.
pub(crate) async fn read_form(body: Incoming) -> Bytes {
    match Limited::new(body, MAX_FORM_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    }
}

/// Why a token or revoke request's client was refused.
pub(crate) enum ClientRefused {
    /// Missing, unknown or wrong credentials: `invalid_client`.
    Invalid,
    /// Basic and form credentials both sent, and they differ: `invalid_request`
    /// (RFC 6749 §2.3.1).
    Disagree,
}

/// The app a request authenticates as, as Zoom accepts it (ZOOM.md §1.1):
/// HTTP Basic, `client_id` + `client_secret` in the form, or both when they
/// agree; a public client sends its `client_id` alone.
pub(crate) fn client<'a>(
    shared: &'a Shared,
    headers: &HeaderMap,
    params: &Params,
) -> Result<&'a SimApp, ClientRefused> {
    let basic = match headers.get(AUTHORIZATION) {
        Some(value) => Some(basic(value).ok_or(ClientRefused::Invalid)?),
        None => None,
    };
    let form_id = params.get("client_id").filter(|v| !v.is_empty());
    let form_secret = params.get("client_secret").filter(|v| !v.is_empty());
    match (basic, form_id, form_secret) {
        (Some((id, secret)), form_id, form_secret) => {
            if form_id.is_some_and(|f| f != id) || form_secret.is_some_and(|f| f != secret) {
                return Err(ClientRefused::Disagree);
            }
            shared
                .authenticate(&id, &secret)
                .ok_or(ClientRefused::Invalid)
        }
        (None, Some(id), Some(secret)) => shared
            .authenticate(id, secret)
            .ok_or(ClientRefused::Invalid),
        (None, Some(id), None) => shared
            .apps
            .iter()
            .find(|a| a.public && a.client_id == id)
            .ok_or(ClientRefused::Invalid),
        (None, None, _) => Err(ClientRefused::Invalid),
    }
}

// === impl ClientRefused ===

impl ClientRefused {
    pub(crate) fn reply(&self) -> Response<Body> {
        match self {
            ClientRefused::Invalid => reply::invalid_client(),
            // UNCONFIRMED: Zoom's reason text for disagreeing credentials.
            ClientRefused::Disagree => reply::oauth_error(
                StatusCode::BAD_REQUEST,
                "Client credentials in the header and the body differ.",
                "invalid_request",
            ),
        }
    }
}

/// `Basic base64(client_id:client_secret)`, decoded.
fn basic(value: &http::HeaderValue) -> Option<(String, String)> {
    let (scheme, encoded) = value.to_str().ok()?.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (client_id, secret) = decoded.split_once(':')?;
    Some((client_id.to_owned(), secret.to_owned()))
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}
