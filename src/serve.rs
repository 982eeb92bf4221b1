//! The one hyper 1 accept loop, shared by the proxy, admin and simulator listeners.
//!
//! It owns connection limits, header limits, idle cut-off (`idle.rs`),
//! HTTP/1 connections that hold no buffers between requests (`park.rs`) and
//! graceful drain, so every listener behaves the same under abuse and on
//! shutdown. Modelled on axum's `serve`: drain via a watch channel, whose
//! last receiver, dropped by the last connection, ends the wait.

mod answer;
mod idle;
mod incoming;
mod inline;
mod park;

pub use self::idle::{ConnectionActivity, InFlight, Tunnel};
pub use self::incoming::Incoming;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use http::{Request, Response};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulConnection;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use self::answer::{Answer, Rooms, Tracked};
use self::idle::{Activity, Watched};
use self::park::{Opening, Rewind};
use crate::config;

/// HTTP/2 streams one connection may have open at once: far above what a
/// Zoom client pipelines, far below what would let one peer hog the proxy.
const H2_MAX_STREAMS: u32 = 256;
/// Streams a peer may open and reset before hyper closes the connection
/// (rapid reset, CVE-2023-44487); hyper's own default, stated here.
const H2_MAX_PENDING_RESETS: usize = 20;
/// A peer that does not answer a ping in this long is gone.
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);

/// Limits applied to every accepted connection.
#[derive(Clone, Debug)]
pub struct ServerLimits {
    pub max_connections: usize,
    /// Time allowed for a request head to arrive, idle keep-alive waits included.
    pub header_read_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    /// How long in-flight requests may run after shutdown starts.
    pub shutdown_grace: Duration,
    /// Handlers may take connections over (`CONNECT`): each request carries
    /// its [`ConnectionActivity`], and a connection stays counted while a
    /// [`Tunnel`] holds it. Off where no handler does, which saves the
    /// extension on every request.
    pub tunnels: bool,
}

/// The body of the answer to a connection accepted beyond `max_connections`,
/// in Zoom's error envelope.
const OVERLOADED_BODY: &str = r#"{"code":503,"message":"grantmux: too many open connections."}"#;

/// Connections beyond `max_connections` being answered 503 at once; past
/// this many, further ones are closed unanswered, so a flood cannot hold
/// sockets through the answers' waits.
const MAX_REJECTING: usize = 256;
/// The longest a connection beyond `max_connections` is waited for, once
/// for its request head and once to read what it still sends after the 503.
const REJECT_WAIT: Duration = Duration::from_secs(1);

/// Written to a connection accepted beyond `max_connections`, which is then
/// closed. Built once, with `content-length` taken from the body itself.
static OVERLOADED: LazyLock<Vec<u8>> = LazyLock::new(|| {
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{OVERLOADED_BODY}",
        OVERLOADED_BODY.len()
    )
    .into_bytes()
});

// === impl ServerLimits ===

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: config::DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: config::DEFAULT_HEADER_READ_TIMEOUT,
            max_header_bytes: config::DEFAULT_MAX_HEADER_BYTES,
            max_headers: config::DEFAULT_MAX_HEADERS,
            shutdown_grace: config::DEFAULT_SHUTDOWN_GRACE,
            tunnels: false,
        }
    }
}

impl From<&config::Config> for ServerLimits {
    fn from(c: &config::Config) -> Self {
        Self {
            max_connections: c.listen.max_connections,
            header_read_timeout: c.listen.header_read_timeout,
            max_header_bytes: c.listen.max_header_bytes,
            max_headers: c.listen.max_headers,
            shutdown_grace: c.proxy.shutdown_grace,
            tunnels: false,
        }
    }
}

/// Serves `service` on `listener` until `shutdown` resolves, then drains.
///
/// Returns once every connection has finished or the grace period has passed.
pub async fn serve<S, B, F>(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: ServerLimits,
    service: S,
    shutdown: F,
) where
    S: Fn(Request<Incoming>) -> B + Clone + Send + Sync + Unpin + 'static,
    B: Future<Output = Result<Response<crate::body::Body>, Infallible>> + Send + 'static,
    F: Future<Output = ()>,
{
    let builders = Arc::new(Builders::new(&limits));
    // The handlers' boxes, passed from each ended answer to the next.
    let rooms = Rooms::new();
    let (drain_tx, drain_rx) = watch::channel(());
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let rejecting = Arc::new(Semaphore::new(MAX_REJECTING));
    let reject_wait = limits.header_read_timeout.min(REJECT_WAIT);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // EMFILE and friends: back off briefly rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            // TLS callers cannot read a plain answer: they get a closed
            // connection, as does a flood beyond the rejection slots.
            match rejecting.clone().try_acquire_owned() {
                Ok(slot) if tls.is_none() => {
                    tracing::warn!(%peer, "connection limit reached; answering 503");
                    tokio::spawn(async move {
                        reject_overloaded(stream, reject_wait).await;
                        drop(slot);
                    });
                }
                _ => tracing::warn!(%peer, "connection limit reached; closing"),
            }
            continue;
        };
        let activity = Activity::new();
        let service = {
            let (service, activity) = (service.clone(), activity.clone());
            let (tunnels, rooms) = (limits.tunnels, rooms.clone());
            move |mut req: Request<Incoming>| {
                if tunnels {
                    let handle = ConnectionActivity(activity.clone());
                    req.extensions_mut().insert(handle);
                }
                let in_flight = activity.request();
                Answer::making(|| service(req), in_flight, &rooms)
            }
        };
        let conn = Conn {
            service,
            builders: builders.clone(),
            activity: activity.clone(),
            drain: drain_rx.clone(),
            idle_limit: limits.header_read_timeout,
            tunnels: limits.tunnels,
            peer,
        };
        let stream = Watched::new(stream, activity);
        match &tls {
            None => tokio::spawn(conn.run(std::future::ready(Some(stream)), permit)),
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let handshake = async move {
                    // Boxed: the handshake's state and rustls's are large, and a
                    // task keeps room for its largest state for its whole life.
                    match Box::pin(acceptor.accept(stream)).await {
                        Ok(tls) => Some(Box::new(tls)),
                        Err(error) => {
                            tracing::debug!(%peer, %error, "TLS handshake failed");
                            None
                        }
                    }
                };
                tokio::spawn(conn.run(handshake, permit))
            }
        };
    }
    drop(drain_rx);
    drop(listener);
    // Every connection stops taking requests; the last one to end drops the
    // last receiver.
    let _ = drain_tx.send(());
    tokio::select! {
        () = drain_tx.closed() => tracing::debug!("all connections drained"),
        _ = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!(grace = ?limits.shutdown_grace, "grace period over; closing remaining connections");
        }
    }
}

/// One accepted connection: what serves it, and what bounds it.
struct Conn<S> {
    service: S,
    builders: Arc<Builders>,
    activity: Arc<Activity>,
    /// Changes when the listener drains.
    drain: watch::Receiver<()>,
    idle_limit: Duration,
    tunnels: bool,
    peer: SocketAddr,
}

/// The HTTP settings of one listener.
struct Builders {
    http1: http1::Builder,
    auto: auto::Builder<TokioExecutor>,
    inline: inline::Limits,
}

/// A handler as hyper calls it: with hyper's body, which becomes ours.
fn hyper_service<S, A, B>(
    service: S,
) -> impl hyper::service::Service<
    Request<hyper::body::Incoming>,
    Response = Response<B>,
    Error = Infallible,
    Future = A,
> + Clone
where
    S: Fn(Request<Incoming>) -> A + Clone,
    A: Future<Output = Result<Response<B>, Infallible>>,
    B: http_body::Body,
{
    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        service(req.map(Incoming::from))
    })
}

// === impl Conn ===

impl<S, A> Conn<S>
where
    S: Fn(Request<Incoming>) -> A + Clone + Unpin + Send + Sync + 'static,
    A: Future<Output = Result<Response<Tracked>, Infallible>> + Unpin + Send + 'static,
{
    /// Serves the connection `io` resolves to (`None`: a failed handshake)
    /// until it ends, the watchdog finds it idle, or the drain ends it; then
    /// gives its slot back.
    async fn run<IO>(mut self, io: impl Future<Output = Option<IO>>, permit: OwnedSemaphorePermit)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (activity, idle_limit, peer) = (self.activity.clone(), self.idle_limit, self.peer);
        let serve = async {
            match io.await {
                Some(io) => self.serve(io).await,
                None => Ok(()),
            }
        };
        tokio::select! {
            served = serve => if let Err(error) = served {
                tracing::debug!(%peer, error = %error, "connection ended with error");
            },
            () = activity.idle(idle_limit) => {
                tracing::debug!(%peer, "closing a connection that held its slot idle");
            }
        }
        // A handler that took the connection over holds it past hyper:
        // it keeps its slot and its watchdog until the tunnel ends.
        if activity.tunnelled() {
            tokio::select! {
                () = activity.tunnels_closed() => {}
                () = activity.idle(idle_limit) => {
                    tracing::debug!(%peer, "closing a tunnel that held its slot idle");
                    activity.cut();
                }
            }
        }
        drop(permit);
    }

    async fn serve<IO>(&mut self, mut io: IO) -> Result<(), crate::body::BoxError>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let auto = &self.builders.auto;
        if self.tunnels {
            // `CONNECT` takes connections over through hyper's upgrades, which
            // a parked connection cannot offer.
            let service = hyper_service(self.service.clone());
            let conn = auto.serve_connection_with_upgrades(TokioIo::new(io), service);
            return until_drained(conn, &mut self.drain).await;
        }
        let opening = tokio::select! {
            opening = park::opening(&mut io) => opening,
            _ = self.drain.changed() => return Ok(()),
        };
        match opening {
            Opening::Closed => Ok(()),
            Opening::Http2(ahead) => {
                let io = TokioIo::new(Rewind::new(ahead, io));
                until_drained(
                    auto.serve_connection(io, hyper_service(self.service.clone())),
                    &mut self.drain,
                )
                .await
            }
            Opening::Http1(ahead) => {
                park::serve_http1(
                    io,
                    ahead,
                    &self.builders.http1,
                    self.builders.inline,
                    &self.service,
                    &self.activity,
                    &self.drain,
                )
                .await
            }
        }
    }
}

/// Runs `conn` until it ends; once `drain` changes, asks it to finish what it
/// has begun and take nothing new.
async fn until_drained<C>(
    conn: C,
    drain: &mut watch::Receiver<()>,
) -> Result<(), crate::body::BoxError>
where
    C: GracefulConnection,
    C::Error: Into<crate::body::BoxError>,
{
    // Boxed: the task of a parked HTTP/1 connection need not keep room for it.
    let mut conn = Box::pin(conn);
    tokio::select! {
        served = conn.as_mut() => return served.map_err(Into::into),
        _ = drain.changed() => {}
    }
    conn.as_mut().graceful_shutdown();
    conn.await.map_err(Into::into)
}

/// The HTTP/1 settings, on hyper's builder (parked connections) and on
/// hyper-util's (HTTP/2 detection, tunnels): two types with the same methods.
macro_rules! http1_settings {
    ($builder:expr, $limits:expr) => {
        $builder
            .timer(TokioTimer::new())
            .header_read_timeout($limits.header_read_timeout)
            .max_buf_size($limits.max_header_bytes.max(8192))
            .max_headers($limits.max_headers)
            .keep_alive(true)
    };
}

// === impl Builders ===

impl Builders {
    fn new(limits: &ServerLimits) -> Self {
        let mut http1 = http1::Builder::new();
        http1_settings!(http1, limits);
        Self {
            http1,
            auto: builder(limits),
            inline: inline::Limits {
                max_headers: limits.max_headers,
                max_header_bytes: limits.max_header_bytes,
            },
        }
    }
}

/// Serves one connection that is already open (the TLS stream inside a
/// `CONNECT` tunnel) with the listeners' HTTP settings, until it ends or
/// `shutdown` resolves; then it drains for at most the grace period.
pub async fn serve_connection<IO, S, B, F>(io: IO, limits: &ServerLimits, service: S, shutdown: F)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Fn(Request<Incoming>) -> B + Clone + Send + Sync + 'static,
    B: Future<Output = Result<Response<crate::body::Body>, Infallible>> + Send + 'static,
    F: Future<Output = ()>,
{
    let builder = builder(limits);
    let conn = builder.serve_connection(TokioIo::new(io), hyper_service(service));
    tokio::pin!(conn, shutdown);
    tokio::select! {
        served = conn.as_mut() => if let Err(error) = served {
            tracing::debug!(%error, "tunnelled connection ended with error");
        },
        () = &mut shutdown => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(limits.shutdown_grace, conn).await;
        }
    }
}

fn builder(limits: &ServerLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    http1_settings!(builder.http1(), limits);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(limits.max_header_bytes as u32)
        .max_concurrent_streams(H2_MAX_STREAMS)
        .max_pending_accept_reset_streams(H2_MAX_PENDING_RESETS)
        // Pings find dead peers of connections with requests in flight; an idle
        // connection is closed by the idle watchdog before the first ping.
        .keep_alive_interval(limits.header_read_timeout * 2)
        .keep_alive_timeout(H2_PING_TIMEOUT);
    builder
}

/// Answers a connection accepted beyond `max_connections` with 503, as an
/// HTTP/1.1 server answers a request: after its head has arrived. An answer
/// sent before the request is written is an unexpected message to strict
/// clients (hyper's legacy client was seen to wait forever on one), and a
/// socket closed with the request unread is reset, which can destroy the
/// answer before the caller reads it. So: read the head, answer, half-close,
/// and read whatever still comes until the caller closes (a lingering close,
/// as nginx does). Each wait is bounded by `wait`.
async fn reject_overloaded<IO: AsyncRead + AsyncWrite + Unpin>(mut io: IO, wait: Duration) {
    let _ = tokio::time::timeout(wait, read_head(&mut io)).await;
    if tokio::time::timeout(wait, io.write_all(&OVERLOADED))
        .await
        .is_err()
    {
        return;
    }
    let _ = io.shutdown().await;
    let _ = tokio::time::timeout(wait, discard(&mut io)).await;
}

/// Reads until the blank line that ends a request head, the end of the
/// stream, or `max` bytes, whichever comes first.
async fn read_head<IO: AsyncRead + Unpin>(io: &mut IO) {
    const MAX: usize = 64 * 1024;
    let mut buf = [0u8; 1024];
    let (mut matched, mut seen) = (0u8, 0usize);
    while seen < MAX {
        let n = match io.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        seen += n;
        for &b in &buf[..n] {
            matched = match (matched, b) {
                (0 | 2, b'\r') => matched + 1,
                (1 | 3, b'\n') => matched + 1,
                (_, b'\r') => 1,
                _ => 0,
            };
            if matched == 4 {
                return;
            }
        }
    }
}

/// Reads and drops everything until the end of the stream.
async fn discard<IO: AsyncRead + Unpin>(io: &mut IO) {
    let mut buf = [0u8; 1024];
    while let Ok(n) = io.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}
