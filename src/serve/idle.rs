//! Cuts off connections that hold a slot without using it.
//!
//! hyper's HTTP/1 `header_read_timeout` starts only once bytes of a request
//! head arrive, and HTTP/2 has no such timer, so a connection that sends
//! nothing, a partial HTTP/2 preface, or an idle HTTP/2 connection would keep
//! one of `max_connections` forever: enough of them and every caller gets 503.
//! So every connection has a watchdog from accept: when no request is in flight
//! and nothing has been written for `header_read_timeout`, it is closed.
//!
//! Reads do not count as activity, so a client dripping a request head a byte
//! at a time gains nothing (hyper's own HTTP/1 timer bounds the head, this one
//! the gap before it). Writes do, so a response body still streaming out after
//! its request's future ended is not cut while it moves.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::moved::LastMoved;

/// What one connection is doing: requests in flight, and when it last did
/// something (a write, or a request ending).
#[derive(Debug)]
pub(crate) struct Activity {
    in_flight: AtomicUsize,
    /// Requests that have ended, their responses handed over in full.
    exchanges: AtomicUsize,
    /// The socket's last write or flush was left pending: bytes still wait.
    write_blocked: AtomicBool,
    /// Times the connection gave hyper's buffers back (`park.rs`).
    parks: AtomicUsize,
    moved: LastMoved,
    /// Wakes the watchdog when a request ends.
    ended: Notify,
    /// Tunnels holding the connection past hyper (a `CONNECT` taken over).
    tunnels: AtomicUsize,
    tunnel_ended: Notify,
    /// The watchdog closed the connection: tunnels must end.
    cut: AtomicBool,
    cut_notify: Notify,
}

/// One request in flight on a connection; ends it when dropped.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

/// A handler's hold on a connection it took over from hyper (a `CONNECT`
/// tunnel): while it lives, the connection keeps its slot and its idle
/// watchdog. Dropping it ends the hold.
#[derive(Debug)]
pub struct Tunnel(Arc<Activity>);

/// A connection's activity, in each request's extensions on a listener whose
/// handlers may take connections over ([`super::ServerLimits::tunnels`]).
#[derive(Clone, Debug)]
pub struct ConnectionActivity(pub(super) Arc<Activity>);

pin_project! {
    /// A connection's socket, noting each write in its [`Activity`].
    #[derive(Debug)]
    pub(super) struct Watched<T> {
        #[pin]
        inner: T,
        activity: Arc<Activity>,
    }
}

// === impl Activity ===

impl Activity {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            in_flight: AtomicUsize::new(0),
            exchanges: AtomicUsize::new(0),
            write_blocked: AtomicBool::new(false),
            parks: AtomicUsize::new(0),
            moved: LastMoved::new(),
            ended: Notify::new(),
            tunnels: AtomicUsize::new(0),
            tunnel_ended: Notify::new(),
            cut: AtomicBool::new(false),
            cut_notify: Notify::new(),
        })
    }

    pub(super) fn tunnelled(&self) -> bool {
        self.tunnels.load(Ordering::Acquire) > 0
    }

    /// Returns once every tunnel on the connection has ended.
    pub(super) async fn tunnels_closed(&self) {
        loop {
            let ended = self.tunnel_ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if self.tunnels.load(Ordering::Acquire) == 0 {
                return;
            }
            ended.await;
        }
    }

    /// The watchdog's verdict: every tunnel on the connection must end.
    pub(super) fn cut(&self) {
        self.cut.store(true, Ordering::Release);
        self.cut_notify.notify_waiters();
    }

    /// When the connection last wrote or ended a request.
    pub(super) fn last_moved(&self) -> Instant {
        self.moved.at()
    }

    /// The connection gave hyper's buffers back.
    pub(super) fn parked(&self) {
        self.parks.fetch_add(1, Ordering::Relaxed);
    }

    /// How many times the connection gave hyper's buffers back.
    #[cfg(test)]
    pub(super) fn parks(&self) -> usize {
        self.parks.load(Ordering::Relaxed)
    }

    /// How many requests have ended on the connection.
    pub(super) fn exchanges(&self) -> usize {
        self.exchanges.load(Ordering::Acquire)
    }

    /// True when a request has ended since `exchanges` was `before`, none is
    /// in flight, and nothing waits to be written: the connection is between
    /// messages.
    pub(super) fn settled_after(&self, before: usize) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
            && self.exchanges.load(Ordering::Acquire) != before
            && !self.write_blocked.load(Ordering::Acquire)
    }

    /// Notes a write's outcome: bytes moved, or the socket is full.
    fn wrote(&self, written: &Poll<io::Result<usize>>) {
        if matches!(written, Poll::Ready(Ok(n)) if *n > 0) {
            self.moved.note();
        }
        self.write_blocked
            .store(written.is_pending(), Ordering::Release);
    }

    pub(crate) fn request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// Returns once the connection has had no request in flight and written
    /// nothing for `limit`.
    pub(super) async fn idle(&self, limit: Duration) {
        loop {
            if self.in_flight.load(Ordering::Acquire) > 0 {
                // A permit left by a request that ended meanwhile is not lost.
                self.ended.notified().await;
                continue;
            }
            let deadline = self.moved.at() + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

// === impl ConnectionActivity ===

impl ConnectionActivity {
    /// A request served inside a tunnel counts as in flight on the connection.
    pub fn request(&self) -> InFlight {
        self.0.request()
    }

    /// Holds the connection past hyper until the returned guard drops.
    pub fn tunnel(&self) -> Tunnel {
        self.0.tunnels.fetch_add(1, Ordering::AcqRel);
        Tunnel(self.0.clone())
    }
}

// === impl Tunnel ===

impl Tunnel {
    /// Resolves when the connection's watchdog closes it (idle too long).
    pub async fn cut(&self) {
        loop {
            let cut = self.0.cut_notify.notified();
            tokio::pin!(cut);
            cut.as_mut().enable();
            if self.0.cut.load(Ordering::Acquire) {
                return;
            }
            cut.await;
        }
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.0.tunnels.fetch_sub(1, Ordering::AcqRel);
        self.0.tunnel_ended.notify_waiters();
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.moved.note();
        self.0.exchanges.fetch_add(1, Ordering::AcqRel);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.ended.notify_one();
    }
}

// === impl Watched ===

impl<T> Watched<T> {
    pub(super) fn new(inner: T, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<T: AsyncRead> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().inner.poll_read(cx, buf)
    }
}

impl<T: AsyncWrite> AsyncWrite for Watched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let written = this.inner.poll_write(cx, buf);
        this.activity.wrote(&written);
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let written = this.inner.poll_write_vectored(cx, bufs);
        this.activity.wrote(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let flushed = this.inner.poll_flush(cx);
        this.activity
            .write_blocked
            .store(flushed.is_pending(), Ordering::Release);
        flushed
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_waits_for_requests_and_writes() {
        let activity = Activity::new();
        let limit = Duration::from_secs(10);
        let request = activity.request();
        let watchdog = tokio::spawn({
            let activity = activity.clone();
            async move { activity.idle(limit).await }
        });
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!watchdog.is_finished(), "a request is in flight");
        drop(request);
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert!(!watchdog.is_finished(), "idle only since the request ended");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(watchdog.is_finished());
    }
}
