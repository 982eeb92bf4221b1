//! What the OAuth endpoints share: parameter parsing and HTTP Basic client auth.

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::HeaderMap;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::config::SimApp;
use super::state::Shared;

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

/// The app named by `Authorization: Basic base64(client_id:client_secret)`.
pub(crate) fn client_auth<'a>(shared: &'a Shared, headers: &HeaderMap) -> Option<&'a SimApp> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (client_id, secret) = decoded.split_once(':')?;
    shared.authenticate(client_id, secret)
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}
