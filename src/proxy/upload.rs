//! A caller's streamed upload, watched: `zoom.response_timeout` runs from the
//! moment its last byte went to Zoom, and an upload that stops moving is cut
//! off after `proxy.upload_stall_timeout` of silence, however long it is.
//!
//! Timing the whole exchange instead would cut a slow but steady 3 MB upload
//! mid-body with a 504, and leave a stalled one open for the full timeout.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::body::BoxError;
use crate::error::ProxyError;
use crate::moved::LastMoved;

/// How far an upload has got: when a byte last moved, and whether it ended.
#[derive(Debug)]
pub(super) struct Progress {
    /// When the last frame was read.
    moved: LastMoved,
    done: AtomicBool,
    /// Wakes [`Progress::overdue`] when the upload ends.
    ended: Notify,
}

pin_project! {
    /// A request body that reports its [`Progress`] as it is read.
    pub(super) struct Upload<B> {
        #[pin]
        inner: B,
        progress: Arc<Progress>,
    }
}

// === impl Progress ===

impl Progress {
    /// Returns the error to answer with once the upload stalls for `stall`, or
    /// Zoom has not answered `response` after its end. Never returns otherwise.
    pub(super) async fn overdue(&self, stall: Duration, response: Duration) -> ProxyError {
        loop {
            if self.done.load(Ordering::Acquire) {
                tokio::time::sleep_until(self.moved.at() + response).await;
                return ProxyError::UpstreamTimeout(response);
            }
            let ended = self.ended.notified();
            let deadline = self.moved.at() + stall;
            if Instant::now() >= deadline {
                return ProxyError::UploadStalled(stall);
            }
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {}
                () = ended => {}
            }
        }
    }

    fn end(&self) {
        self.moved.note();
        if !self.done.swap(true, Ordering::AcqRel) {
            self.ended.notify_one();
        }
    }
}

// === impl Upload ===

impl<B> Upload<B> {
    pub(super) fn new(inner: B) -> (Self, Arc<Progress>) {
        let progress = Arc::new(Progress {
            moved: LastMoved::new(),
            done: AtomicBool::new(false),
            ended: Notify::new(),
        });
        let upload = Self {
            inner,
            progress: progress.clone(),
        };
        (upload, progress)
    }
}

impl<B> HttpBody for Upload<B>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let frame = this.inner.poll_frame(cx);
        match &frame {
            Poll::Ready(Some(Ok(_))) => this.progress.moved.note(),
            Poll::Ready(None) => this.progress.end(),
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        frame.map(|f| f.map(|f| f.map_err(Into::into)))
    }

    /// hyper stops polling a body that says it has ended, so this is where the
    /// end of a body with a known length is seen.
    fn is_end_stream(&self) -> bool {
        let end = self.inner.is_end_stream();
        if end {
            self.progress.end();
        }
        end
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
