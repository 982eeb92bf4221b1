//! The proxy's and the token endpoint's error types, and the one place they
//! become HTTP answers.
//!
//! Each error names who is at fault ([`Fault`], as pingora's `fail_to_proxy`):
//! the caller (400, 401), Zoom (502, 504), the store or the token we cannot get
//! (503). Each fault has one fixed message, in Zoom's envelopes:
//! `{"code":…,"message":…}` on the API, `{"reason":…,"error":…}` on the token
//! endpoint, because Zoom clients parse them. The cause's own text is logged
//! here, once, and never sent.

use std::borrow::Cow;

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
    /// The request's rate-limit budget had no slot in time, or Zoom closed it
    /// for the day: answered locally in Zoom's 429 shape.
    #[error("rate limited: {0}")]
    RateLimited(#[from] crate::ratelimit::Refusal),
}

// === impl ProxyError ===

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        self.fault().status()
    }

    /// Who is at fault. Zoom's own 401 answers are the caller's fault: a token
    /// Zoom would refuse too.
    pub fn fault(&self) -> Fault {
        match self {
            ProxyError::ForeignTarget => {
                Fault::BadRequest("the request target names a host other than Zoom's")
            }
            ProxyError::Connect => Fault::BadRequest("CONNECT is not supported"),
            ProxyError::BadRequest(rule) => Fault::BadRequest(rule),
            ProxyError::ClientBody(_) => Fault::BadRequest("the request body could not be read"),
            ProxyError::InvalidToken => Fault::InvalidToken,
            ProxyError::ExpiredToken => Fault::ExpiredToken,
            ProxyError::Token(TokenError::Dead) => Fault::GrantDead,
            ProxyError::Token(TokenError::Unavailable(_) | TokenError::Refused { .. }) => {
                Fault::NoToken
            }
            ProxyError::Upstream(_) => Fault::ZoomUnreachable,
            ProxyError::UpstreamTimeout(_) => Fault::ZoomTimeout,
            ProxyError::UploadStalled(_) => Fault::UploadStalled,
            ProxyError::RateLimited(_) => Fault::RateLimited,
        }
    }

    /// The answer the caller sees, in Zoom's error envelope. Logged once here.
    pub fn into_response(self) -> http::Response<Body> {
        let fault = self.fault();
        let status = fault.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, status = status.as_u16(), "request failed");
        } else {
            tracing::debug!(error = %self, status = status.as_u16(), "request refused");
        }
        if let ProxyError::RateLimited(refusal) = self {
            // Zoom's own 429, headers and all, so callers' backoff runs unchanged.
            return refusal.into_response();
        }
        let (code, message) = fault.api_answer();
        body::json(status, &json!({ "code": code, "message": message }))
    }
}

/// Errors of the token endpoint callers see, answered in Zoom's OAuth shape
/// `{"reason":…,"error":…}` with Zoom's statuses (ZOOM.md §1.5).
///
/// The `String` fields are detail for the log, never for the caller.
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
    /// A call to Zoom's token endpoint on the caller's behalf failed: no
    /// connection, a timeout, a 5xx or an unreadable answer.
    #[error("zoom token endpoint unavailable: {0}")]
    ZoomUnavailable(String),
    /// The grant has no valid token and cannot get one now (refresh failing,
    /// the user's identity not yet known, a task that ended abnormally).
    #[error("no token: {0}")]
    NoToken(String),
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
}

impl OAuthError {
    /// Who is at fault; `None` for Zoom's own refusal, which is relayed as is.
    pub fn fault(&self) -> Option<Fault> {
        Some(match self {
            OAuthError::InvalidClient => Fault::InvalidClient,
            OAuthError::UnsupportedGrantType => Fault::UnsupportedGrantType,
            OAuthError::InvalidRequest(rule) => Fault::BadRequest(rule),
            OAuthError::InvalidGrant => Fault::GrantDead,
            OAuthError::InvalidToken => Fault::InvalidToken,
            OAuthError::Zoom { .. } => return None,
            OAuthError::ZoomUnavailable(_) => Fault::ZoomUnreachable,
            OAuthError::NoToken(_) => Fault::NoToken,
            OAuthError::Store(_) => Fault::StoreUnavailable,
        })
    }

    pub fn into_response(self) -> http::Response<Body> {
        let Some(fault) = self.fault() else {
            return self.relay_zoom();
        };
        let (status, reason, error) = fault.oauth_answer();
        if status.is_server_error() {
            tracing::warn!(error = %self, status = status.as_u16(), "token request failed");
        } else {
            tracing::debug!(error = %self, status = status.as_u16(), "token request refused");
        }
        // Zoom's field order: reason, then error.
        #[derive(serde::Serialize)]
        struct Body<'a> {
            reason: &'a str,
            error: &'a str,
        }
        body::json_of(status, &Body { reason, error })
    }

    /// Zoom's refusal of the caller's own request, status and body as Zoom sent them.
    fn relay_zoom(self) -> http::Response<Body> {
        let OAuthError::Zoom { status, body } = self else {
            unreachable!("only Zoom's refusal is relayed");
        };
        tracing::debug!(status, "relaying Zoom's refusal");
        let mut resp = http::Response::new(body::full(body));
        *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json;charset=UTF-8"),
        );
        resp
    }
}

/// Why `POST /webhooks/zoom` refused a delivery. Zoom reads only the
/// status: it delivers a 5xx again later, and gives up on a 4xx.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("method not allowed")]
    Method,
    #[error("not found")]
    NotFound,
    #[error("unreadable or oversized body")]
    Body,
    #[error("signature refused: {0}")]
    Signature(#[from] crate::webhooks::signature::BadSignature),
    /// Signed with one app's secret, naming another app.
    #[error("the event names another app than the one whose secret signed it")]
    OtherApp,
    #[error("not a Zoom event")]
    NotAnEvent,
    #[error("URL validation without a plainToken")]
    NoPlainToken,
    /// The wipe or the fan-out did not reach the store: Zoom must deliver again.
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
}

impl WebhookError {
    pub fn fault(&self) -> Fault {
        match self {
            WebhookError::Method => Fault::MethodNotAllowed,
            WebhookError::NotFound => Fault::NotFound,
            WebhookError::Body => Fault::BadRequest("the body is unreadable or too large"),
            WebhookError::NotAnEvent => Fault::BadRequest("the body is not a Zoom event"),
            WebhookError::NoPlainToken => Fault::BadRequest("the validation has no plainToken"),
            WebhookError::Signature(_) | WebhookError::OtherApp => Fault::BadSignature,
            WebhookError::Store(_) => Fault::StoreUnavailable,
        }
    }

    /// Zoom's API envelope, logged once here.
    pub fn into_response(self) -> http::Response<Body> {
        let fault = self.fault();
        let status = fault.status();
        if status.is_server_error() {
            tracing::error!(error = %self, status = status.as_u16(), "webhook not taken; Zoom will deliver again");
        } else {
            tracing::warn!(error = %self, status = status.as_u16(), "webhook refused");
        }
        let (code, message) = fault.api_answer();
        body::json(status, &json!({ "code": code, "message": message }))
    }
}

/// Who is at fault for a failed request: the one map from internal errors to
/// what callers see. Every message is fixed text: a cause's own `Display`
/// (OS errors, store errors, file paths) goes to the log only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The caller broke a rule; the text names the rule, never internal detail.
    BadRequest(&'static str),
    /// Bad app credentials at the token endpoint.
    InvalidClient,
    /// A `grant_type` the token endpoint does not serve.
    UnsupportedGrantType,
    /// A bearer or token that is not ours (or was tampered with).
    InvalidToken,
    /// A virtual access token past its expiry.
    ExpiredToken,
    /// Zoom no longer accepts the grant: the user must authorize again.
    GrantDead,
    /// Zoom could not be reached, or its answer could not be read.
    ZoomUnreachable,
    /// Zoom did not answer within `zoom.response_timeout`.
    ZoomTimeout,
    /// The grant store could not be read or written.
    StoreUnavailable,
    /// No valid access token, and none can be had right now.
    NoToken,
    /// The caller's streamed upload stopped moving (`proxy.upload_stall_timeout`).
    UploadStalled,
    /// Zoom's rate limit, answered locally (see `ratelimit::Refusal`).
    RateLimited,
    /// A webhook no configured secret token signed, or signed too long ago.
    BadSignature,
    MethodNotAllowed,
    NotFound,
}

pub const ZOOM_UNREACHABLE: &str = "grantmux: Zoom could not be reached.";
pub const ZOOM_TIMEOUT: &str = "grantmux: Zoom did not answer in time.";
pub const STORE_UNAVAILABLE: &str = "grantmux: the grant store is unavailable; try again shortly.";
pub const UPLOAD_STALLED: &str = "grantmux: the request body stopped arriving.";
pub const NO_TOKEN: &str =
    "grantmux: no valid Zoom access token is available right now; try again shortly.";

// === impl Fault ===

impl Fault {
    /// The status on the API; the token endpoint's differs (see `oauth_answer`).
    pub fn status(self) -> StatusCode {
        match self {
            Fault::BadRequest(_) | Fault::InvalidClient | Fault::UnsupportedGrantType => {
                StatusCode::BAD_REQUEST
            }
            Fault::InvalidToken | Fault::ExpiredToken | Fault::GrantDead | Fault::BadSignature => {
                StatusCode::UNAUTHORIZED
            }
            Fault::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Fault::NotFound => StatusCode::NOT_FOUND,
            Fault::ZoomUnreachable => StatusCode::BAD_GATEWAY,
            Fault::ZoomTimeout => StatusCode::GATEWAY_TIMEOUT,
            Fault::StoreUnavailable | Fault::NoToken => StatusCode::SERVICE_UNAVAILABLE,
            Fault::UploadStalled => StatusCode::REQUEST_TIMEOUT,
            Fault::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The fixed text for each fault: the OAuth `reason`, and the API
    /// `message` where Zoom has no text of its own.
    fn text(self) -> &'static str {
        match self {
            Fault::BadRequest(rule) => rule,
            Fault::InvalidClient => "Invalid client_id or client_secret",
            Fault::UnsupportedGrantType => "unsupported grant type",
            Fault::InvalidToken | Fault::ExpiredToken | Fault::GrantDead => "Invalid Token!",
            Fault::ZoomUnreachable => ZOOM_UNREACHABLE,
            Fault::ZoomTimeout => ZOOM_TIMEOUT,
            Fault::StoreUnavailable => STORE_UNAVAILABLE,
            Fault::NoToken => NO_TOKEN,
            Fault::UploadStalled => UPLOAD_STALLED,
            Fault::RateLimited => {
                "You have reached the maximum per-second rate limit for this API. Try again later."
            }
            Fault::BadSignature => "Invalid signature.",
            Fault::MethodNotAllowed => "Method not allowed.",
            Fault::NotFound => "Not found.",
        }
    }

    /// The API's `{"code":…,"message":…}`: Zoom's own 401s, so callers'
    /// existing 401 handling runs unchanged.
    fn api_answer(self) -> (u16, Cow<'static, str>) {
        match self {
            Fault::InvalidToken | Fault::GrantDead => (124, "Invalid access token.".into()),
            Fault::ExpiredToken => (124, "Access token is expired.".into()),
            Fault::BadRequest(rule) => (400, format!("grantmux: {rule}").into()),
            other => (other.status().as_u16(), other.text().into()),
        }
    }

    /// The token endpoint's `(status, reason, error)`, Zoom's own where Zoom
    /// has one (ZOOM.md §1.5): a token it refuses is a 400 there, not a 401.
    fn oauth_answer(self) -> (StatusCode, &'static str, &'static str) {
        let status = match self {
            Fault::InvalidToken | Fault::ExpiredToken | Fault::GrantDead => StatusCode::BAD_REQUEST,
            other => other.status(),
        };
        let error = match self {
            Fault::InvalidClient => "invalid_client",
            Fault::UnsupportedGrantType => "unsupported_grant_type",
            Fault::GrantDead => "invalid_grant",
            Fault::BadRequest(_)
            | Fault::InvalidToken
            | Fault::ExpiredToken
            | Fault::UploadStalled
            | Fault::RateLimited
            | Fault::BadSignature
            | Fault::MethodNotAllowed
            | Fault::NotFound => "invalid_request",
            Fault::ZoomUnreachable
            | Fault::ZoomTimeout
            | Fault::StoreUnavailable
            | Fault::NoToken => "server_error",
        };
        (status, self.text(), error)
    }
}
