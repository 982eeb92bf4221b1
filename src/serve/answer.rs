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
/// 4 KiB); a box is a pointer.
///
/// The future is dropped as soon as it has answered, so the box can serve the
/// connection's next request ([`Room`]): at that size glibc serves the block
/// from its slow path, not from its per-thread cache.
pub(super) struct Answer<F> {
    /// `None` once the handler has answered.
    answer: Pin<Box<Option<F>>>,
    in_flight: Option<InFlight>,
}

/// The box of an answer that has ended, kept by a connection that serves its
/// requests itself (`inline.rs`) for its next request while it is busy.
pub(super) struct Room<F>(Pin<Box<Option<F>>>);

/// A response body that ends its request when hyper drops it.
#[derive(Debug)]
pub(super) struct Tracked {
    body: Body,
    _in_flight: Option<InFlight>,
}

// === impl Answer ===

impl<F> Answer<F> {
    /// `answer`, in `room` if one is given, else in a box of its own.
    pub(super) fn new(answer: F, in_flight: InFlight, room: Option<Room<F>>) -> Self {
        let answer = match room {
            Some(Room(mut room)) => {
                room.set(Some(answer));
                room
            }
            None => Box::pin(Some(answer)),
        };
        Self {
            answer,
            in_flight: Some(in_flight),
        }
    }

    /// Drops the handler's future, whether it answered or not (its caller
    /// hung up).
    pub(super) fn end(&mut self) {
        self.answer.set(None);
    }

    /// Its box, emptied, for the connection's next request.
    pub(super) fn into_room(mut self) -> Room<F> {
        self.end();
        Room(self.answer)
    }
}

impl<F> Future for Answer<F>
where
    F: Future<Output = Result<Response<Body>, Infallible>>,
{
    type Output = Result<Response<Tracked>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        // Polled again after it answered: nothing more comes.
        let Some(answer) = this.answer.as_mut().as_pin_mut() else {
            return Poll::Pending;
        };
        let Ok(response) = ready!(answer.poll(cx));
        this.end();
        let in_flight = this.in_flight.take();
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::body;
    use crate::serve::idle::Activity;

    /// Set when the handler's future is dropped.
    struct Dropped(Arc<AtomicBool>);

    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn an_answer_drops_its_handler_once_answered_and_hands_its_box_on() {
        let activity = Activity::new();
        let dropped = Arc::new(AtomicBool::new(false));
        let handler = |guard: Option<Dropped>| async move {
            let _guard = guard;
            Ok::<_, Infallible>(Response::new(body::empty()))
        };
        let mut first = Answer::new(
            handler(Some(Dropped(dropped.clone()))),
            activity.request(),
            None,
        );
        let response = (&mut first).await;
        assert!(dropped.load(Ordering::SeqCst), "kept past its answer");
        drop(response);
        let box_at = |answer: &Answer<_>| std::ptr::from_ref(&*answer.answer) as usize;
        let was = box_at(&first);
        let second = Answer::new(handler(None), activity.request(), Some(first.into_room()));
        assert_eq!(box_at(&second), was, "a new box for the next request");
        assert!(second.await.is_ok());
    }
}
