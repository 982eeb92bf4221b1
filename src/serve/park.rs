//! HTTP/1 connections that hold no buffers while they idle.
//!
//! hyper gives every HTTP/1 connection an 8 KiB read buffer and an 8 KiB head
//! buffer when it makes it, and keeps both for the connection's life, with no
//! setting for either: with many keep-alive callers that is most of the
//! proxy's memory. nginx frees its buffers when a keep-alive connection goes
//! idle; this does the same around hyper. When every exchange has ended and
//! all of it is written, hyper is asked to stop: at once after a connection's
//! first exchange, and after [`PARK_AFTER`] of quiet once its next request
//! came sooner than that (a busy connection). An idle hyper connection stops
//! at once and hands back the socket and whatever it read ahead. The
//! connection then waits for its next bytes holding only the socket, and a
//! fresh hyper connection, handed those bytes first, serves what comes.
//!
//! "Ended" is exact, not guessed: a request counts as in flight until hyper
//! drops its response body, which it does as it encodes the end of the
//! message, and the socket notes whether its last write was left pending.
//! Both change only while hyper is polled, so between polls they hold. The
//! one state they cannot see is a handler that answered and still reads its
//! request's body; hyper, asked to stop then, finishes that exchange and
//! closes the connection, as it does at a graceful shutdown.

use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Request, Response};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;
use tokio::time::Instant;

use super::answer::Tracked;
use super::idle::Activity;
use super::inline::{self, After, Parsed};
use super::{hyper_service, Incoming};
use crate::body::BoxError;

/// What a client sends first on an HTTP/2 connection without TLS's ALPN.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How long a connection stays quiet, with every exchange ended and written
/// out, before hyper's buffers are given back. Long enough that a caller
/// sending request after request keeps its hyper connection (making one costs
/// about 6k instructions), short enough that idle callers hold nothing.
const PARK_AFTER: Duration = Duration::from_millis(250);

/// The most one read takes while nothing else is held. A request head is
/// usually far smaller; hyper reads the rest into its own buffer.
const FIRST_READ: usize = 4096;

/// The protocol a connection's first bytes announce.
pub(super) enum Opening {
    /// An HTTP/2 preface: hyper's HTTP/2 server takes the connection.
    Http2(Bytes),
    /// Anything else is served as HTTP/1.
    Http1(Bytes),
    /// The peer closed (or failed) before sending anything.
    Closed,
}

/// Reads a connection's first bytes, as many as it takes to tell an HTTP/2
/// preface from an HTTP/1 request.
pub(super) async fn opening<IO: AsyncRead + Unpin>(io: &mut IO) -> Opening {
    let mut seen = BytesMut::new();
    loop {
        match read_some(io).await {
            Ok(bytes) if !bytes.is_empty() => seen.extend_from_slice(&bytes),
            _ => return Opening::Closed,
        }
        let n = seen.len().min(H2_PREFACE.len());
        if seen[..n] != H2_PREFACE[..n] {
            return Opening::Http1(seen.freeze());
        }
        if n == H2_PREFACE.len() {
            return Opening::Http2(seen.freeze());
        }
    }
}

/// Serves HTTP/1 on `io`, whose first bytes, already read, are `ahead`, until
/// the connection ends or `drain` changes. Between exchanges only `io` is held.
/// A request `inline.rs` can serve is served there, in this task; any other
/// is hyper's.
pub(super) async fn serve_http1<IO, F, A>(
    mut io: IO,
    mut ahead: Bytes,
    builder: &http1::Builder,
    limits: inline::Limits,
    service: &F,
    activity: &Activity,
    drain: &watch::Receiver<()>,
) -> Result<(), BoxError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>) -> A + Clone + Unpin,
    A: Future<Output = Result<Response<Tracked>, Infallible>> + Unpin,
{
    let mut draining = false;
    // One waiter on the drain signal for the connection's life: a fresh
    // `changed()` for each read would join and leave the channel's list of
    // waiters, under its lock, once per request. Once it fires, the
    // connection ends (`draining` keeps it from being polled again).
    let mut watching = drain.clone();
    let drained = watching.changed();
    tokio::pin!(drained);
    // Eager: give hyper's buffers back as soon as an exchange ends, as nginx
    // does. A connection whose next request comes within PARK_AFTER of that
    // is busy, and keeps them until it has been quiet for PARK_AFTER: making
    // a hyper connection costs about 6k instructions, 15% of a request.
    let mut eager = true;
    loop {
        // When the connection started waiting for the bytes in `ahead`; read
        // against the clock only if hyper is to serve them.
        let mut waited_from = None;
        if ahead.is_empty() {
            waited_from = Some(Instant::now());
            ahead = tokio::select! {
                read = read_some(&mut io) => match read {
                    Ok(bytes) if !bytes.is_empty() => bytes,
                    _ => return Ok(()),
                },
                _ = &mut drained, if !draining => return Ok(()),
            };
        }
        if let Some(Parsed {
            request,
            rest,
            close,
        }) = inline::parse(&ahead, limits)
        {
            let after = inline::exchange(&mut io, service(request), close).await?;
            // Draining, hyper ends a connection with the exchange in flight;
            // a request sent behind it is not read.
            if !matches!(drain.has_changed(), Ok(false)) {
                let _ = io.shutdown().await;
                return Ok(());
            }
            ahead = match after {
                After::KeepAlive(next) => joined(rest, next),
                After::Close => return Ok(()),
            };
            continue;
        }
        if let Some(from) = waited_from {
            eager = from.elapsed() >= PARK_AFTER;
        }
        let ended_before = activity.exchanges();
        // Boxed, so a parked connection's task does not keep room for it.
        let mut conn = Box::new(builder.serve_connection(
            TokioIo::new(Rewind::new(ahead, io)),
            hyper_service(service.clone()),
        ));
        let mut stop = Stop::No;
        // Set when a busy connection has been quiet for PARK_AFTER.
        let mut due = false;
        let park = tokio::time::sleep(PARK_AFTER);
        tokio::pin!(park);
        let served = loop {
            tokio::select! {
                served = poll_fn(|cx| {
                    let polled = conn.poll_without_shutdown(cx);
                    if polled.is_ready() || !(eager || due) || stop != Stop::No || draining
                        || !activity.settled_after(ended_before)
                    {
                        return polled;
                    }
                    // hyper turns idle only once the last response is flushed,
                    // so one that stops as soon as it is asked has written all.
                    Pin::new(&mut *conn).graceful_shutdown();
                    let polled = conn.poll_without_shutdown(cx);
                    stop = if polled.is_ready() { Stop::Parked } else { Stop::Closing };
                    polled
                }) => break served,
                _ = &mut drained, if !draining => {
                    draining = true;
                    Pin::new(&mut *conn).graceful_shutdown();
                }
                () = &mut park, if !eager && !due && stop == Stop::No && !draining => {
                    // hyper's state and the activity change only while hyper is
                    // polled, so the poll this loop makes next sees them as here.
                    let now = Instant::now();
                    let quiet_since = activity.last_moved();
                    if !activity.settled_after(ended_before) {
                        park.as_mut().reset(now + PARK_AFTER);
                    } else if quiet_since + PARK_AFTER > now {
                        park.as_mut().reset(quiet_since + PARK_AFTER);
                    } else {
                        due = true;
                    }
                }
            }
        };
        let parts = conn.into_parts();
        let (rest, inner) = parts.io.into_inner().into_parts();
        io = inner;
        served?;
        if stop != Stop::Parked {
            let _ = io.shutdown().await;
            return Ok(());
        }
        activity.parked();
        // Bytes hyper read past the exchange it ended on (the start of the next
        // request).
        ahead = joined(parts.read_buf, rest);
    }
}

/// `first`, then `then`, copied only when both hold bytes. An empty result
/// is a fresh `Bytes`: an empty slice of hyper's read buffer would pin it.
fn joined(first: Bytes, then: Bytes) -> Bytes {
    match (first.is_empty(), then.is_empty()) {
        (true, true) => Bytes::new(),
        (false, true) => first,
        (true, false) => then,
        (false, false) => [first, then].concat().into(),
    }
}

/// Reads what has arrived, up to [`FIRST_READ`] bytes, into a buffer of its
/// own size. Empty at the end of the stream.
async fn read_some<IO: AsyncRead + Unpin>(io: &mut IO) -> io::Result<Bytes> {
    poll_fn(|cx| poll_read_some(io, cx)).await
}

/// [`read_some`], as a poll.
pub(super) fn poll_read_some<IO: AsyncRead + Unpin>(
    io: &mut IO,
    cx: &mut Context<'_>,
) -> Poll<io::Result<Bytes>> {
    // On the stack for the poll only: a waiting connection holds no buffer.
    // Left uninitialised: zeroing it cost more than the read.
    let mut buf = [MaybeUninit::<u8>::uninit(); FIRST_READ];
    let mut read = ReadBuf::uninit(&mut buf);
    ready!(Pin::new(&mut *io).poll_read(cx, &mut read))?;
    Poll::Ready(Ok(Bytes::copy_from_slice(read.filled())))
}

/// Whether a hyper connection was asked to stop so its socket could park.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    No,
    /// It stopped at once: it was idle, and the socket is served again.
    Parked,
    /// It was mid-exchange after all: it finishes that and the socket closes.
    Closing,
}

/// A socket with bytes already read from it put back in front.
#[derive(Debug)]
pub(super) struct Rewind<IO> {
    ahead: Bytes,
    io: IO,
}

// === impl Rewind ===

impl<IO> Rewind<IO> {
    pub(super) fn new(ahead: Bytes, io: IO) -> Self {
        Self { ahead, io }
    }

    /// The bytes not yet read again, and the socket.
    fn into_parts(self) -> (Bytes, IO) {
        (self.ahead, self.io)
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Rewind<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.ahead.is_empty() {
            let n = self.ahead.len().min(buf.remaining());
            buf.put_slice(&self.ahead.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Rewind<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Arc;

    use http::{Request, Response};
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};
    use tokio::task::JoinHandle;

    use super::*;
    use crate::body;
    use crate::serve::answer::{Answer, Rooms};
    use crate::serve::idle::Watched;

    type Ready = std::future::Ready<Result<Response<body::Body>, Infallible>>;

    /// A request hyper serves: it has a body.
    const POST: &[u8] = b"POST /v2/users HTTP/1.1\r\nhost: grantmux\r\ncontent-length: 2\r\n\r\n{}";
    /// A request served inline.
    const GET: &[u8] = b"GET /v2/users/me HTTP/1.1\r\nhost: grantmux\r\n\r\n";

    struct Server {
        activity: Arc<Activity>,
        drain: watch::Sender<()>,
        task: JoinHandle<Result<(), BoxError>>,
    }

    /// One loopback connection served by `serve_http1`, as `serve` serves
    /// it, answering every request with `size` bytes; and its client side.
    async fn connect(size: usize) -> (Client, Server) {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let client = TcpStream::connect(listener.local_addr().expect("bound"))
            .await
            .expect("connect");
        let (socket, _) = listener.accept().await.expect("accept");
        let activity = Activity::new();
        let (drain, drained) = watch::channel(());
        let service = {
            let (activity, rooms) = (activity.clone(), Rooms::new());
            move |_: Request<Incoming>| -> Answer<Ready> {
                let answer = Response::new(body::full(vec![b'x'; size]));
                let answer = std::future::ready(Ok::<_, Infallible>(answer));
                Answer::new(answer, activity.request(), &rooms)
            }
        };
        let socket = Watched::new(socket, activity.clone());
        let task = tokio::spawn(serve(socket, service, activity.clone(), drained));
        let client = Client {
            socket: client,
            seen: Vec::new(),
        };
        let server = Server {
            activity,
            drain,
            task,
        };
        (client, server)
    }

    /// What `serve` does with an accepted connection on a plain listener.
    async fn serve<S>(
        mut socket: Watched<TcpStream>,
        service: S,
        activity: Arc<Activity>,
        drained: watch::Receiver<()>,
    ) -> Result<(), BoxError>
    where
        S: Fn(Request<Incoming>) -> Answer<Ready> + Clone + Unpin,
    {
        let Opening::Http1(ahead) = opening(&mut socket).await else {
            panic!("not an HTTP/1 opening");
        };
        let builder = http1::Builder::new();
        let limits = inline::Limits {
            max_headers: 100,
            max_header_bytes: 8192,
        };
        serve_http1(
            socket, ahead, &builder, limits, &service, &activity, &drained,
        )
        .await
    }

    /// A caller speaking HTTP/1.1 on a raw socket.
    struct Client {
        socket: TcpStream,
        seen: Vec<u8>,
    }

    impl Client {
        async fn send(&mut self, bytes: &[u8]) {
            self.socket.write_all(bytes).await.expect("send");
        }

        /// Reads until a whole response head is in; where it ends.
        async fn head_end(&mut self) -> usize {
            loop {
                if let Some(at) = self.seen.windows(4).position(|w| w == b"\r\n\r\n") {
                    return at + 4;
                }
                self.fill().await;
            }
        }

        /// Reads one response; returns its status and body length.
        async fn response(&mut self) -> (u16, usize) {
            let head_end = self.head_end().await;
            let head = String::from_utf8(self.seen[..head_end].to_vec()).expect("an ASCII head");
            let status = head[9..12].parse().expect("a status");
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .expect("a content-length")
                .parse()
                .expect("a length");
            while self.seen.len() < head_end + length {
                self.fill().await;
            }
            self.seen.drain(..head_end + length);
            (status, length)
        }

        async fn fill(&mut self) {
            let mut buf = vec![0u8; 1 << 16];
            let n = self.socket.read(&mut buf).await.expect("read");
            assert!(n > 0, "the connection closed");
            self.seen.extend_from_slice(&buf[..n]);
        }

        /// True when the server has closed the connection.
        async fn closed(&mut self) -> bool {
            let mut buf = [0u8; 1];
            matches!(self.socket.read(&mut buf).await, Ok(0) | Err(_))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_gives_its_buffers_back_and_serves_the_next_request() {
        let (mut client, server) = connect(100).await;
        client.send(POST).await;
        assert_eq!(client.response().await, (200, 100));
        // A first exchange parks at once, as nginx frees its buffers.
        assert_eq!(server.activity.parks(), 1);

        // The next request comes soon: the connection is busy, and keeps
        // hyper's buffers until it has been quiet for PARK_AFTER.
        client.send(POST).await;
        assert_eq!(client.response().await, (200, 100));
        assert_eq!(server.activity.parks(), 1);
        tokio::time::sleep(PARK_AFTER * 2).await;
        assert_eq!(server.activity.parks(), 2);

        client.send(POST).await;
        assert_eq!(client.response().await, (200, 100));
        assert!(!server.task.is_finished());
    }

    #[tokio::test]
    async fn requests_without_a_body_are_served_inline_between_hyper_exchanges() {
        let (mut client, server) = connect(10).await;
        client.send(GET).await;
        assert_eq!(client.response().await, (200, 10));
        // Two in one write: the second is read with the first.
        client.send(&[GET, GET].concat()).await;
        assert_eq!(client.response().await, (200, 10));
        assert_eq!(client.response().await, (200, 10));
        assert_eq!(
            server.activity.parks(),
            0,
            "hyper never took the connection"
        );

        // One with a body goes to hyper, and one sent behind it in the same
        // write is hyper's too; once hyper has parked, the next is inline.
        client.send(&[POST, GET].concat()).await;
        assert_eq!(client.response().await, (200, 10));
        assert_eq!(client.response().await, (200, 10));
        tokio::time::sleep(PARK_AFTER * 2).await;
        let parks = server.activity.parks();
        assert!(parks >= 1);
        client.send(GET).await;
        assert_eq!(client.response().await, (200, 10));
        assert_eq!(server.activity.parks(), parks);
        assert_eq!(server.activity.exchanges(), 6);
    }

    #[tokio::test]
    async fn a_caller_asking_to_close_gets_its_answer_then_the_close() {
        let (mut client, server) = connect(10).await;
        client.send(GET).await;
        assert_eq!(client.response().await, (200, 10));
        let close = b"GET /v2/users/me HTTP/1.1\r\nhost: grantmux\r\nconnection: close\r\n\r\n";
        client.send(close).await;
        let head_end = client.head_end().await;
        let head = String::from_utf8_lossy(&client.seen[..head_end]).to_string();
        assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
        assert_eq!(client.response().await, (200, 10));
        assert!(client.closed().await);
        assert!(server.task.await.expect("no panic").is_ok());
        assert_eq!(server.activity.parks(), 0);
    }

    #[tokio::test]
    async fn a_request_head_split_across_a_park_is_read_whole() {
        let (mut client, server) = connect(10).await;
        client.send(POST).await;
        assert_eq!(client.response().await, (200, 10));
        assert_eq!(server.activity.parks(), 1);

        // Half a head wakes the parked connection; hyper gets it and waits.
        client.send(&GET[..20]).await;
        tokio::task::yield_now().await;
        client.send(&GET[20..]).await;
        assert_eq!(client.response().await, (200, 10));

        // Two requests in one write: the second was read with the first.
        client.send(&[GET, GET].concat()).await;
        assert_eq!(client.response().await, (200, 10));
        assert_eq!(client.response().await, (200, 10));
    }

    #[tokio::test]
    async fn a_response_the_caller_reads_slowly_is_written_whole_before_parking() {
        // Far beyond the socket buffers: hyper holds the end of the body
        // after the handler's part is over, and must not be stopped then.
        const SIZE: usize = 32 << 20;
        let (mut client, server) = connect(SIZE).await;
        client.send(POST).await;
        assert_eq!(client.response().await, (200, SIZE));
        assert_eq!(server.activity.parks(), 1);
        client.send(POST).await;
        assert_eq!(client.response().await, (200, SIZE));
        // And inline, where the body goes out in pieces as the caller reads.
        client.send(GET).await;
        assert_eq!(client.response().await, (200, SIZE));
        client.send(GET).await;
        assert_eq!(client.response().await, (200, SIZE));
    }

    #[tokio::test]
    async fn a_drain_closes_a_parked_connection() {
        for first in [GET, POST] {
            let (mut client, server) = connect(10).await;
            client.send(first).await;
            assert_eq!(client.response().await, (200, 10));
            server.drain.send(()).expect("the server listens");
            assert!(server.task.await.expect("no panic").is_ok());
            assert!(client.closed().await);
        }
    }

    #[tokio::test]
    async fn a_request_behind_one_served_when_the_drain_began_is_not_served() {
        let (mut client, server) = connect(10).await;
        server.drain.send(()).expect("the server listens");
        client.send(&[GET, GET].concat()).await;
        assert_eq!(client.response().await, (200, 10));
        assert!(client.closed().await);
        assert!(server.task.await.expect("no panic").is_ok());
    }
}
