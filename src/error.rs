//! The proxy's error type and the one place it becomes an HTTP answer.
//!
//! Statuses follow who is at fault (as pingora's `fail_to_proxy`): the caller
//! (400, 401), Zoom (502, 504), or the token we cannot get (503). Bodies use
//! Zoom's own envelope `{"code":…,"message":…}` because Zoom clients parse it.
//! Internal detail is logged here, never sent.

use http::StatusCode;
use serde_json::json;

use crate::body::{self, Body};
use crate::grants::TokenError;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("request target names a host other than Zoom's")]
    ForeignTarget,
    #[error("CONNECT is not supported")]
    Connect,
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    #[error("reading the request body: {0}")]
    ClientBody(String),
    #[error("unknown or missing bearer token")]
    InvalidToken,
    #[error("the access token has expired")]
    ExpiredToken,
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The caller's streamed upload went this long without a byte moving.
    #[error("the request body stalled for {0:?}")]
    UploadStalled(std::time::Duration),
    #[error("upstream request failed: {0}")]
    Upstream(String),
    #[error("upstream did not answer within {0:?}")]
    UpstreamTimeout(std::time::Duration),
}

// === impl ProxyError ===

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::ForeignTarget
            | ProxyError::Connect
            | ProxyError::BadRequest(_)
            | ProxyError::ClientBody(_) => StatusCode::BAD_REQUEST,
            ProxyError::InvalidToken
            | ProxyError::ExpiredToken
            | ProxyError::Token(TokenError::Dead) => StatusCode::UNAUTHORIZED,
            ProxyError::Token(TokenError::Unavailable(_) | TokenError::Refused { .. }) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ProxyError::UploadStalled(_) => StatusCode::REQUEST_TIMEOUT,
            ProxyError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The answer the caller sees, in Zoom's error envelope. Logged once here.
    pub fn into_response(self) -> http::Response<Body> {
        let status = self.status();
        let (code, message) = match &self {
            // Zoom's own answers, so callers' existing 401 handling runs unchanged.
            ProxyError::InvalidToken | ProxyError::Token(TokenError::Dead) => {
                (124, "Invalid access token.".to_owned())
            }
            ProxyError::ExpiredToken => (124, "Access token is expired.".to_owned()),
            ProxyError::Token(e @ (TokenError::Unavailable(_) | TokenError::Refused { .. })) => {
                (503, format!("grantmux: {e}"))
            }
            ProxyError::Upstream(_) => (502, "grantmux: Zoom could not be reached.".to_owned()),
            ProxyError::UpstreamTimeout(_) => {
                (504, "grantmux: Zoom did not answer in time.".to_owned())
            }
            ProxyError::UploadStalled(_) => (
                408,
                "grantmux: the request body stopped arriving.".to_owned(),
            ),
            other => (400, format!("grantmux: {other}")),
        };
        match status {
            StatusCode::BAD_GATEWAY
            | StatusCode::GATEWAY_TIMEOUT
            | StatusCode::SERVICE_UNAVAILABLE => {
                tracing::warn!(error = %self, status = status.as_u16(), "request failed")
            }
            _ => tracing::debug!(error = %self, status = status.as_u16(), "request refused"),
        }
        body::json(status, &json!({ "code": code, "message": message }))
    }
}

/// Errors of the token endpoint callers see, answered in Zoom's OAuth shape
/// `{"reason":…,"error":…}` with Zoom's statuses (ZOOM.md §1.5).
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("invalid client credentials")]
    InvalidClient,
    #[error("unsupported grant type")]
    UnsupportedGrantType,
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// A refresh token that is not (or no longer) valid.
    #[error("invalid grant")]
    InvalidGrant,
    /// A token to revoke that is not ours.
    #[error("invalid token")]
    InvalidToken,
    /// Zoom refused the caller's own request (a code exchange, a legacy refresh):
    /// its answer is relayed as is.
    #[error("zoom refused the request: HTTP {status}")]
    Zoom { status: u16, body: bytes::Bytes },
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
}

impl OAuthError {
    pub fn into_response(self) -> http::Response<Body> {
        let (status, reason, error) = match &self {
            OAuthError::InvalidClient => (
                400,
                "Invalid client_id or client_secret".to_owned(),
                "invalid_client",
            ),
            OAuthError::UnsupportedGrantType => (
                400,
                "unsupported grant type".to_owned(),
                "unsupported_grant_type",
            ),
            OAuthError::InvalidRequest(reason) => (400, (*reason).to_owned(), "invalid_request"),
            OAuthError::InvalidGrant => (400, "Invalid Token!".to_owned(), "invalid_grant"),
            OAuthError::InvalidToken => (400, "Invalid Token!".to_owned(), "invalid_request"),
            OAuthError::Zoom { status, body } => {
                tracing::debug!(status, "relaying Zoom's refusal");
                let mut resp = http::Response::new(body::full(body.clone()));
                *resp.status_mut() =
                    StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST);
                resp.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json;charset=UTF-8"),
                );
                return resp;
            }
            OAuthError::Unavailable(reason) => (503, format!("grantmux: {reason}"), "server_error"),
            OAuthError::Store(e) => (503, format!("grantmux: {e}"), "server_error"),
        };
        if status >= 500 {
            tracing::warn!(error = %self, "token request failed");
        } else {
            tracing::debug!(error = %self, "token request refused");
        }
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
        // Zoom's field order: reason, then error.
        #[derive(serde::Serialize)]
        struct Body<'a> {
            reason: &'a str,
            error: &'a str,
        }
        body::json_of(
            status,
            &Body {
                reason: &reason,
                error,
            },
        )
    }
}
