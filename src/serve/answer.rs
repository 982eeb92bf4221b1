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
use std::sync::{Arc, Mutex, MutexGuard};
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
/// At that size glibc serves the box from its slow path (`_int_malloc`), not
/// from its per-thread cache, so the box comes from the listener's [`Rooms`]
/// and goes back there when the answer is dropped. The handler's future is
/// dropped as soon as it has answered.
pub(super) struct Answer<F> {
    /// `None` inside once the handler has answered; `None` outside only
    /// while the answer is dropped.
    answer: Option<Pin<Box<Option<F>>>>,
    in_flight: Option<InFlight>,
    rooms: Arc<Rooms<F>>,
}

/// Boxes of ended answers, for the listener's next ones. At most
/// [`MAX_ROOMS`] are kept, whatever the number of connections: a connection
/// that idles holds none.
pub(super) struct Rooms<F> {
    spare: Mutex<Vec<Pin<Box<Option<F>>>>>,
}

/// About as many answers as a busy sidecar has in flight at once; 64 of the
/// proxy's are under 300 KiB.
const MAX_ROOMS: usize = 64;

/// A response body that ends its request when hyper drops it.
#[derive(Debug)]
pub(super) struct Tracked {
    body: Body,
    _in_flight: Option<InFlight>,
}

// === impl Answer ===

impl<F> Answer<F> {
    /// `answer`, in a box from `rooms` if one is spare.
    #[cfg(test)]
    pub(super) fn new(answer: F, in_flight: InFlight, rooms: &Arc<Rooms<F>>) -> Self {
        Self::making(|| answer, in_flight, rooms)
    }

    /// The answer `make` returns, made in a box from `rooms` if one is
    /// spare. The box is taken first so that the future is written straight
    /// into it: one made before, and moved in, is copied whole (kilobytes)
    /// once more.
    #[inline]
    pub(super) fn making(
        make: impl FnOnce() -> F,
        in_flight: InFlight,
        rooms: &Arc<Rooms<F>>,
    ) -> Self {
        let answer = match rooms.take() {
            Some(mut room) => {
                room.set(Some(make()));
                room
            }
            None => Box::pin(Some(make())),
        };
        Self {
            answer: Some(answer),
            in_flight: Some(in_flight),
            rooms: rooms.clone(),
        }
    }

    /// Drops the handler's future, whether it answered or not.
    fn end(&mut self) {
        if let Some(answer) = &mut self.answer {
            answer.set(None);
        }
    }
}

impl<F> Drop for Answer<F> {
    fn drop(&mut self) {
        // The handler goes before the lock is taken: its drop may take locks
        // of its own.
        self.end();
        if let Some(room) = self.answer.take() {
            self.rooms.give(room);
        }
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
        let running = this.answer.as_mut().and_then(|a| a.as_mut().as_pin_mut());
        let Some(answer) = running else {
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

// === impl Rooms ===

impl<F> Rooms<F> {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            spare: Mutex::new(Vec::new()),
        })
    }

    fn take(&self) -> Option<Pin<Box<Option<F>>>> {
        self.lock().pop()
    }

    fn give(&self, room: Pin<Box<Option<F>>>) {
        let mut spare = self.lock();
        if spare.len() < MAX_ROOMS {
            spare.push(room);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Pin<Box<Option<F>>>>> {
        // Nothing panics while holding it; a poisoned list is still a list.
        self.spare.lock().unwrap_or_else(|p| p.into_inner())
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

    async fn handler(guard: Option<Dropped>) -> Result<Response<Body>, Infallible> {
        let _guard = guard;
        Ok(Response::new(body::empty()))
    }

    fn box_at<F>(answer: &Answer<F>) -> Option<*const Option<F>> {
        answer.answer.as_deref().map(std::ptr::from_ref)
    }

    #[tokio::test]
    async fn an_answer_drops_its_handler_once_answered_and_its_box_serves_the_next() {
        let (activity, rooms) = (Activity::new(), Rooms::new());
        let dropped = Arc::new(AtomicBool::new(false));
        let guard = Some(Dropped(dropped.clone()));
        let mut first = Answer::new(handler(guard), activity.request(), &rooms);
        let response = (&mut first).await;
        assert!(dropped.load(Ordering::SeqCst), "kept past its answer");
        drop(response);
        let was = box_at(&first);
        drop(first);
        let second = Answer::new(handler(None), activity.request(), &rooms);
        assert_eq!(box_at(&second), was, "a new box for the next answer");
        assert!(second.await.is_ok());
    }

    #[tokio::test]
    async fn an_answer_dropped_unanswered_drops_its_handler_and_no_more_than_max_rooms_are_kept() {
        let (activity, rooms) = (Activity::new(), Rooms::new());
        let dropped = Arc::new(AtomicBool::new(false));
        let guard = Some(Dropped(dropped.clone()));
        drop(Answer::new(handler(guard), activity.request(), &rooms));
        assert!(dropped.load(Ordering::SeqCst));
        let answers: Vec<_> = (0..MAX_ROOMS + 8)
            .map(|_| Answer::new(handler(None), activity.request(), &rooms))
            .collect();
        assert!(rooms.lock().is_empty());
        drop(answers);
        assert_eq!(rooms.lock().len(), MAX_ROOMS);
    }
}
