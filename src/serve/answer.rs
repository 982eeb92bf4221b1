//! Each request's answer, holding the request in flight until hyper has taken
//! its response body to the end.
//!
//! The watchdog (`idle.rs`) and parking (`park.rs`) both need to know when an
//! exchange is over. A handler's future ends when the response head is ready,
//! which for a streamed body is long before the exchange is; hyper drops the
//! body as it encodes the end of the message. So the request's [`InFlight`]
//! rides in the body.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::Response;
use http_body::{Frame, SizeHint};

use super::idle::InFlight;
use crate::body::{Body, BoxError};

/// A handler's future, boxed: hyper keeps the service's future in a slot of
/// its connection for as long as the connection lives, and moves each
/// request's future into it. A handler future is kilobytes (the proxy's about
/// 8 KiB); a box is a pointer, allocated per request and freed with it.
pub(super) struct Answer<F> {
    answer: Pin<Box<F>>,
    in_flight: Option<InFlight>,
}

/// A response body that ends its request when hyper drops it.
#[derive(Debug)]
pub(super) struct Tracked {
    body: Body,
    _in_flight: Option<InFlight>,
}

// === impl Answer ===

impl<F> Answer<F> {
    pub(super) fn new(answer: F, in_flight: InFlight) -> Self {
        Self {
            answer: Box::pin(answer),
            in_flight: Some(in_flight),
        }
    }
}

impl<F> Future for Answer<F>
where
    F: Future<Output = Result<Response<Body>, Infallible>>,
{
    type Output = Result<Response<Tracked>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Ok(response) = ready!(self.answer.as_mut().poll(cx));
        let in_flight = self.in_flight.take();
        Poll::Ready(Ok(response.map(|body| Tracked {
            body,
            _in_flight: in_flight,
        })))
    }
}

// === impl Tracked ===

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
