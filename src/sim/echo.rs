//! What the sim saw of an API request, and the `/v2/_echo/*` route that answers with it.
//!
//! Proxy tests compare what they sent with what arrived. The body is hashed as it
//! streams, so a 50 MiB upload costs a hash, not 50 MiB of memory.

use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::request::Parts;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::reply;
use crate::body::Body;
use crate::serve::Incoming;

/// Request headers with this prefix come back as response headers without it.
const ECHO_SET_PREFIX: &str = "x-echo-set-";

/// One API request as received: every header in order, the body as length and hash.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// In received order for distinct names; repeated names are grouped at their first
    /// position (that is how `http::HeaderMap` keeps them).
    pub headers: Vec<(String, String)>,
    pub body_len: u64,
    /// Lowercase hex SHA-256 of the body.
    pub body_sha256: String,
}

/// A body as read: its record fields, plus the bytes if they fit `keep`.
pub(crate) struct ReadBody {
    pub len: u64,
    pub sha256: String,
    pub bytes: Option<Bytes>,
}

/// Reads `body` to the end, hashing every frame and keeping at most `keep` bytes.
/// A body that breaks off midway is recorded as far as it got.
pub(crate) async fn read_body(mut body: Incoming, keep: usize) -> ReadBody {
    let mut hasher = Sha256::new();
    let mut len = 0u64;
    let mut kept = Some(BytesMut::new());
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        hasher.update(&data);
        len += data.len() as u64;
        kept = kept.filter(|k| k.len() + data.len() <= keep);
        if let Some(k) = kept.as_mut() {
            k.extend_from_slice(&data);
        }
    }
    ReadBody {
        len,
        sha256: hex(&hasher.finalize()),
        bytes: kept.map(BytesMut::freeze),
    }
}

// === impl RecordedRequest ===

impl RecordedRequest {
    pub(crate) fn new(parts: &Parts, body: &ReadBody) -> Self {
        let headers = parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        Self {
            method: parts.method.as_str().to_owned(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            headers,
            body_len: body.len,
            body_sha256: body.sha256.clone(),
        }
    }

    /// The echo answer: this record as JSON, plus any `x-echo-set-*` headers.
    pub(crate) fn echo(&self) -> Response<Body> {
        let mut resp = reply::json(StatusCode::OK, self);
        for (name, value) in &self.headers {
            let Some(name) = name.strip_prefix(ECHO_SET_PREFIX) else {
                continue;
            };
            let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value))
            else {
                continue;
            };
            resp.headers_mut().append(name, value);
        }
        resp
    }
}

/// Lowercase hex, as Zoom writes digests and signatures.
pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
