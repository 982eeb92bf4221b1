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
            ProxyError::Token(TokenError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
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
            ProxyError::Token(e @ TokenError::Unavailable(_)) => (503, format!("grantmux: {e}")),
            ProxyError::Upstream(_) => (502, "grantmux: Zoom could not be reached.".to_owned()),
            ProxyError::UpstreamTimeout(_) => {
                (504, "grantmux: Zoom did not answer in time.".to_owned())
            }
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
