//! The body of a request as handlers receive it.
//!
//! hyper's `Incoming` has no constructor outside hyper, and a request that
//! `inline.rs` reads without hyper has no body to carry. So handlers take
//! this type: hyper's body, or none.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};

/// A request's body: hyper's stream, or empty (a request read inline, which
/// takes that path only when its head announces no body).
#[derive(Debug)]
pub struct Incoming(Kind);

#[derive(Debug)]
enum Kind {
    Hyper(hyper::body::Incoming),
    Empty,
}

// === impl Incoming ===

impl Incoming {
    pub(super) fn empty() -> Self {
        Self(Kind::Empty)
    }
}

impl From<hyper::body::Incoming> for Incoming {
    fn from(body: hyper::body::Incoming) -> Self {
        Self(Kind::Hyper(body))
    }
}

impl http_body::Body for Incoming {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match &mut self.0 {
            Kind::Hyper(body) => Pin::new(body).poll_frame(cx),
            Kind::Empty => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Hyper(body) => body.is_end_stream(),
            Kind::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Hyper(body) => body.size_hint(),
            Kind::Empty => SizeHint::with_exact(0),
        }
    }
}
