//! Failure injection: latency, 503s, dropped connections, and answers held back.
//!
//! `serve` wants an infallible service, so a "reset" is a response whose body fails
//! on its first poll. hyper has then only buffered the head, never flushed it, and
//! closes the connection: the client sees EOF (or a reset, if it still had request
//! bytes in flight) and no response at all.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body::Frame;

use super::config::Faults;
use super::reply;
use crate::body::{self, Body, BoxError};

/// What [`inject`] picked for this request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Injected {
    Error,
    Reset,
}

/// Sleeps the configured latency (real time: it models the network, not token time),
/// then rolls for a reset, then for an error.
pub(crate) async fn inject(faults: &Faults) -> Option<Injected> {
    if !faults.latency.is_zero() {
        tokio::time::sleep(faults.latency).await;
    }
    if Faults::roll(faults.reset_rate) {
        Some(Injected::Reset)
    } else if Faults::roll(faults.error_rate) {
        Some(Injected::Error)
    } else {
        None
    }
}

/// Sleeps the configured answer delay (real time), after the request was handled:
/// the state change is done, only the answer is late.
pub(crate) async fn delay_answer(faults: &Faults) {
    if !faults.answer_delay.is_zero() {
        tokio::time::sleep(faults.answer_delay).await;
    }
}

/// An answer that never reaches the client: the connection is dropped instead.
pub(crate) fn reset() -> Response<Body> {
    Response::new(body::stream(ResetBody))
}

/// The token endpoint's injected failure.
pub(crate) fn token_unavailable() -> Response<Body> {
    reply::oauth_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "Service unavailable",
        "server_error",
    )
}

/// The REST API's injected failure.
pub(crate) fn api_unavailable() -> Response<Body> {
    reply::api_error(
        StatusCode::SERVICE_UNAVAILABLE,
        503,
        "Service temporarily unavailable (injected).",
    )
}

/// A body that fails at once, making hyper abort the connection.
struct ResetBody;

#[derive(Debug, thiserror::Error)]
#[error("connection reset injected by the simulator")]
struct InjectedReset;

impl http_body::Body for ResetBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Poll::Ready(Some(Err(Box::new(InjectedReset))))
    }
}
