//! Zoom-shaped answers: OAuth errors `{reason, error}`, API errors `{code, message}`,
//! and JSON bodies with the key order Zoom uses (structs, not `serde_json::Value`,
//! whose map would sort the keys).

use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use serde::Serialize;

use crate::body::{self, Body};

/// Zoom's content type on both hosts.
const JSON: &str = "application/json;charset=UTF-8";

#[derive(Serialize)]
struct OAuthError<'a> {
    reason: &'a str,
    error: &'a str,
}

#[derive(Serialize)]
struct ApiError<'a> {
    code: u32,
    message: &'a str,
}

/// `value` as a JSON answer with `status`.
pub(crate) fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    // These are plain structs and `Value`s; serialising them cannot fail.
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let mut resp = Response::new(body::full(bytes));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
    resp
}

/// A token- or authorize-endpoint error.
pub(crate) fn oauth_error(status: StatusCode, reason: &str, error: &str) -> Response<Body> {
    json(status, &OAuthError { reason, error })
}

/// A REST API error.
pub(crate) fn api_error(status: StatusCode, code: u32, message: &str) -> Response<Body> {
    json(status, &ApiError { code, message })
}

/// 204 with no body, as Zoom answers PATCH and DELETE.
pub(crate) fn no_content() -> Response<Body> {
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp
}

/// The common OAuth errors, each used from more than one endpoint.
pub(crate) fn invalid_client() -> Response<Body> {
    oauth_error(
        StatusCode::BAD_REQUEST,
        "Invalid client_id or client_secret",
        "invalid_client",
    )
}

pub(crate) fn unsupported_grant_type() -> Response<Body> {
    oauth_error(
        StatusCode::BAD_REQUEST,
        "unsupported grant type",
        "unsupported_grant_type",
    )
}

pub(crate) fn not_found() -> Response<Body> {
    api_error(StatusCode::NOT_FOUND, 404, "Not found")
}

/// `x-zm-trackingid`, on every answer so callers can log it like Zoom's.
pub(crate) fn tracking_id() -> HeaderValue {
    let rid: [u8; 16] = rand::random();
    let hex: String = rid.iter().map(|b| format!("{b:02X}")).collect();
    HeaderValue::try_from(format!("v=2.0;clid=sim;rid=WEB_{hex}"))
        .unwrap_or_else(|_| HeaderValue::from_static("v=2.0;clid=sim"))
}
