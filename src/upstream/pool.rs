//! The connection pool for Zoom's API origin: the hot path of every forwarded call.
//!
//! hyper-util's general-purpose client serves many origins: each request hashes
//! its scheme and authority into a pool map, races a checkout against a connect
//! and moves large futures around. Every API call grantmux forwards goes to one
//! origin, so this pool is built on hyper's connection-level API instead:
//!
//! - HTTP/1.1 connections sit in a LIFO stack (the warmest first). A request
//!   with no body (most API calls) is exchanged on one by [`h1`], inside the
//!   request's own task; one with a body by hyper, which turns an idle `h1`
//!   connection into its own when it needs one. A connection goes back when its
//!   response body has been read to the end, by [`h1::Body`] or the wrapper
//!   [`PooledBody`]; a body dropped half-read takes its connection with it.
//! - Over TLS, ALPN decides. When Zoom picks `h2`, one connection is shared by
//!   every request, and a single connect at a time finds out which protocol it is,
//!   so a storm on a cold pool opens one connection, not thousands.
//! - A request that never left (a kept-alive connection closed under it) is sent
//!   again once on another connection, as hyper-util does; one that may have
//!   reached Zoom is not.
//!
//! The token endpoint is not on this path: it keeps hyper-util's client.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{request, HeaderMap, Method, Request, Response, Uri};
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use prometheus_client::metrics::counter::Counter;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::h1::{self, H1Error, Stream};
use crate::body::Body;

/// Idle HTTP/1.1 connections kept at most.
const MAX_IDLE: usize = 256;
/// An idle connection older than this is closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// What the pool knows about the origin's protocol.
const PROTO_UNKNOWN: u8 = 0;
const PROTO_H1: u8 = 1;
const PROTO_H2: u8 = 2;

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// `describe_error` appends the cause chain (a TLS failure sits in `source`).
    #[error("connecting to {origin}")]
    Connect {
        origin: String,
        source: std::io::Error,
    },
    #[error("connecting to {origin}: timed out after {after:?}")]
    ConnectTimeout { origin: String, after: Duration },
    #[error(transparent)]
    Http(#[from] hyper::Error),
    #[error(transparent)]
    H1(#[from] H1Error),
    #[error("cannot name the request target: {0}")]
    Target(String),
}

/// Pooled connections to one origin. Clones share the pool.
#[derive(Clone, Debug)]
pub struct OriginPool {
    inner: Arc<Inner>,
}

struct Inner {
    scheme: Scheme,
    authority: Authority,
    host: String,
    port: u16,
    /// `Some` for `https`: the TLS client, offering `h2` and `http/1.1`.
    tls: Option<(TlsConnector, ServerName<'static>)>,
    /// Finds `host`'s addresses; TLS still names `host`.
    resolver: super::Resolver,
    connect_timeout: Duration,
    proto: AtomicU8,
    idle: Mutex<VecDeque<Idle>>,
    /// The shared HTTP/2 connection. An async lock: holding it across a connect is
    /// what keeps a cold storm to one connection.
    h2: tokio::sync::Mutex<Option<SharedH2>>,
    opened: Counter,
}

struct Idle {
    conn: IdleConn,
    since: Instant,
}

/// An idle HTTP/1.1 connection: hyper's, or one of [`h1`]'s.
enum IdleConn {
    Hyper(http1::SendRequest<Body>),
    Raw(h1::Conn),
}

/// The HTTP/2 connection and when a request last took it. Idle past
/// [`IDLE_TIMEOUT`], it is replaced like an idle HTTP/1.1 connection: a NAT or
/// load balancer may have dropped it silently, and a request sent on it would
/// wait out `zoom.response_timeout`.
struct SharedH2 {
    tx: http2::SendRequest<Body>,
    last_used: Instant,
}

/// A connection checked out for one request.
enum Conn {
    Raw(h1::Conn),
    H1(http1::SendRequest<Body>),
    H2(http2::SendRequest<Body>),
}

// === impl OriginPool ===

impl OriginPool {
    /// A pool for `origin` (scheme and authority are used, the path is not).
    ///
    /// `opened` counts the connections made, for `/metrics`.
    pub fn new(
        origin: &Uri,
        tls: &ClientConfig,
        resolver: super::Resolver,
        connect_timeout: Duration,
        opened: Counter,
    ) -> Result<Self, super::TlsSetupError> {
        let scheme = origin.scheme().cloned().unwrap_or(Scheme::HTTPS);
        let https = scheme == Scheme::HTTPS;
        let authority = origin
            .authority()
            .cloned()
            .ok_or_else(|| super::TlsSetupError::Origin(origin.to_string()))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tls = if https {
            let name = ServerName::try_from(host.clone())
                .map_err(|_| super::TlsSetupError::Origin(origin.to_string()))?;
            let mut config = tls.clone();
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            Some((TlsConnector::from(Arc::new(config)), name))
        } else {
            None
        };
        Ok(Self {
            inner: Arc::new(Inner {
                proto: AtomicU8::new(if https { PROTO_UNKNOWN } else { PROTO_H1 }),
                scheme,
                authority,
                host,
                port,
                tls,
                resolver,
                connect_timeout,
                idle: Mutex::new(VecDeque::new()),
                h2: tokio::sync::Mutex::new(None),
                opened,
            }),
        })
    }

    /// Sends `req` to the origin. Its URI needs only a path; the pool writes the
    /// form each protocol wants (origin-form for HTTP/1.1, absolute for HTTP/2).
    pub fn send(
        &self,
        req: Request<Body>,
    ) -> impl Future<Output = Result<Response<Body>, PoolError>> + Send + '_ {
        self.send_outgoing(Outgoing::Request(req))
    }

    /// Sends a request whose body is whole in `body`, from `parts` the caller
    /// keeps (to send again after a token rotation). A bodiless one on an
    /// HTTP/1.1 connection is written from them as they are; only hyper's
    /// connections take a `Request` of its own, copied from them.
    ///
    /// Both are plain functions around one `async fn`: a layer of `async fn`
    /// would keep a second copy of the request in the caller's future.
    pub fn send_whole<'a>(
        &'a self,
        parts: &'a request::Parts,
        body: Bytes,
    ) -> impl Future<Output = Result<Response<Body>, PoolError>> + Send + 'a {
        self.send_outgoing(Outgoing::Whole(parts, body))
    }

    async fn send_outgoing(&self, mut out: Outgoing<'_>) -> Result<Response<Body>, PoolError> {
        let path = out
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let bodiless = out.bodiless();
        // Once, and once more if a kept-alive connection closed before the request
        // was written to it.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut error = match self.inner.checkout(bodiless).await? {
                Conn::Raw(conn) => {
                    let (method, headers) = out.head();
                    match conn.exchange(method, &path, headers).await {
                        Ok((parts, framing, conn)) => {
                            let pool = self.inner.clone();
                            let release = move |conn| pool.put_back(IdleConn::Raw(conn));
                            let body = h1::Body::new(conn, framing, release);
                            return Ok(Response::from_parts(parts, crate::body::stream(body)));
                        }
                        Err(H1Error::Unsent(error)) if attempts < 2 => {
                            tracing::debug!(%error, "connection closed before the request left; sending it again");
                            continue;
                        }
                        Err(error) => return Err(error.into()),
                    }
                }
                Conn::H1(mut tx) => {
                    let mut req = out.into_request();
                    *req.uri_mut() = Uri::from(path.clone());
                    match tx.try_send_request(req).await {
                        Ok(resp) => {
                            let pool = self.inner.clone();
                            return Ok(resp.map(|body| PooledBody::new(body, tx, pool).boxed()));
                        }
                        Err(error) => error,
                    }
                }
                Conn::H2(mut tx) => {
                    let mut req = out.into_request();
                    *req.uri_mut() = self.inner.absolute(&path)?;
                    match tx.try_send_request(req).await {
                        Ok(resp) => return Ok(resp.map(crate::body::stream)),
                        Err(error) => error,
                    }
                }
            };
            match error.take_message() {
                Some(unsent) if attempts < 2 => {
                    tracing::debug!(error = %error.into_error(), "connection closed before the request left; sending it again");
                    out = Outgoing::Request(unsent);
                }
                _ => return Err(PoolError::Http(error.into_error())),
            }
        }
    }
}

/// A request on its way out: owned, or whole and borrowed from its sender.
enum Outgoing<'a> {
    Request(Request<Body>),
    Whole(&'a request::Parts, Bytes),
}

// === impl Outgoing ===

impl Outgoing<'_> {
    fn uri(&self) -> &Uri {
        match self {
            Self::Request(req) => req.uri(),
            Self::Whole(parts, _) => &parts.uri,
        }
    }

    fn head(&self) -> (&Method, &HeaderMap) {
        match self {
            Self::Request(req) => (req.method(), req.headers()),
            Self::Whole(parts, _) => (&parts.method, &parts.headers),
        }
    }

    /// Whether `h1` may take it: no body, and no header that says one follows.
    fn bodiless(&self) -> bool {
        let empty = match self {
            Self::Request(req) => req.body().is_end_stream(),
            Self::Whole(_, body) => body.is_empty(),
        };
        let (method, headers) = self.head();
        empty && h1::bodiless(method, headers)
    }

    fn into_request(self) -> Request<Body> {
        match self {
            Self::Request(req) => req,
            Self::Whole(parts, body) => {
                let mut req = Request::new(crate::body::full(body));
                *req.method_mut() = parts.method.clone();
                *req.uri_mut() = parts.uri.clone();
                *req.version_mut() = parts.version;
                *req.headers_mut() = parts.headers.clone();
                req
            }
        }
    }
}

// === impl Inner ===

impl Inner {
    fn proto(&self) -> u8 {
        self.proto.load(Ordering::Acquire)
    }

    fn idle_lock(&self) -> MutexGuard<'_, VecDeque<Idle>> {
        // Nothing panics while holding it; a poisoned stack is still a stack.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn absolute(&self, path: &PathAndQuery) -> Result<Uri, PoolError> {
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(path.clone());
        Uri::from_parts(parts).map_err(|e| PoolError::Target(e.to_string()))
    }

    /// A connection for one request: an `h1` one for a `bodiless` request where
    /// the origin speaks HTTP/1.1, else hyper's.
    async fn checkout(self: &Arc<Self>, bodiless: bool) -> Result<Conn, PoolError> {
        if self.proto() != PROTO_H1 {
            if let Some(conn) = self.checkout_h2(bodiless).await? {
                return Ok(conn);
            }
        }
        loop {
            let popped = self.idle_lock().pop_back();
            let Some(Idle { conn, since }) = popped else {
                break;
            };
            if since.elapsed() > IDLE_TIMEOUT {
                continue;
            }
            match conn {
                IdleConn::Raw(mut conn) => {
                    if !std::future::poll_fn(|cx| Poll::Ready(conn.alive(cx))).await {
                        continue;
                    }
                    if bodiless {
                        return Ok(Conn::Raw(conn));
                    }
                    if let Some(io) = conn.into_io() {
                        return Box::pin(self.handshake_h1(io)).await;
                    }
                }
                IdleConn::Hyper(mut tx) => {
                    // Put back as its body ended; the connection task may still be
                    // finishing that response, or closing because Zoom said so.
                    if !tx.is_closed() && (tx.is_ready() || tx.ready().await.is_ok()) {
                        return Ok(Conn::H1(tx));
                    }
                }
            }
        }
        // Boxed: connecting (TCP, TLS, handshakes) is a large future that most
        // requests never enter, and every request's future would carry its size.
        Box::pin(self.connect(bodiless)).await
    }

    /// The shared HTTP/2 connection, made if needed. `None` once the origin
    /// turned out to speak HTTP/1.1 only.
    async fn checkout_h2(self: &Arc<Self>, bodiless: bool) -> Result<Option<Conn>, PoolError> {
        let mut shared = self.h2.lock().await;
        let now = Instant::now();
        if let Some(h2) = shared
            .as_mut()
            .filter(|h2| !h2.tx.is_closed() && now.duration_since(h2.last_used) <= IDLE_TIMEOUT)
        {
            h2.last_used = now;
            return Ok(Some(Conn::H2(h2.tx.clone())));
        }
        *shared = None;
        if self.proto() == PROTO_H1 {
            return Ok(None);
        }
        // The lock is held across the connect: whoever comes next learns the protocol.
        match Box::pin(self.connect(bodiless)).await? {
            Conn::H2(tx) => {
                *shared = Some(SharedH2 {
                    tx: tx.clone(),
                    last_used: Instant::now(),
                });
                Ok(Some(Conn::H2(tx)))
            }
            h1 => Ok(Some(h1)),
        }
    }

    async fn connect(&self, bodiless: bool) -> Result<Conn, PoolError> {
        let tcp = self.within_connect_timeout(self.tcp()).await?;
        self.opened.inc();
        let Some((connector, name)) = &self.tls else {
            return self.http1(Stream::Tcp(tcp), bodiless).await;
        };
        let tls = self
            .within_connect_timeout(connector.connect(name.clone(), tcp))
            .await?;
        if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
            self.proto.store(PROTO_H2, Ordering::Release);
            let (tx, conn) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .handshake(TokioIo::new(tls))
                .await?;
            tokio::spawn(async move {
                if let Err(error) = conn.await {
                    tracing::debug!(%error, "HTTP/2 connection to Zoom ended");
                }
            });
            return Ok(Conn::H2(tx));
        }
        self.proto.store(PROTO_H1, Ordering::Release);
        self.http1(Stream::Tls(Box::new(tls)), bodiless).await
    }

    /// A new HTTP/1.1 connection: `h1`'s for a bodiless request, else hyper's.
    async fn http1(&self, io: Stream, bodiless: bool) -> Result<Conn, PoolError> {
        if bodiless {
            return Ok(Conn::Raw(h1::Conn::new(io)));
        }
        self.handshake_h1(io).await
    }

    async fn handshake_h1(&self, io: Stream) -> Result<Conn, PoolError> {
        let (tx, conn) = http1::Builder::new().handshake(TokioIo::new(io)).await?;
        tokio::spawn(async move {
            if let Err(error) = conn.await {
                tracing::debug!(%error, "HTTP/1.1 connection to Zoom ended");
            }
        });
        Ok(Conn::H1(tx))
    }

    /// One step of a connect (TCP, then TLS), bounded by `zoom.connect_timeout`.
    async fn within_connect_timeout<T>(
        &self,
        step: impl Future<Output = std::io::Result<T>>,
    ) -> Result<T, PoolError> {
        match tokio::time::timeout(self.connect_timeout, step).await {
            Ok(Ok(done)) => Ok(done),
            Ok(Err(source)) => Err(PoolError::Connect {
                origin: self.authority.to_string(),
                source,
            }),
            Err(_) => Err(PoolError::ConnectTimeout {
                origin: self.authority.to_string(),
                after: self.connect_timeout,
            }),
        }
    }

    /// Tries each resolved address in turn; the caller bounds the whole.
    async fn tcp(&self) -> std::io::Result<TcpStream> {
        let mut last = None;
        for addr in self.resolver.lookup(&self.host, self.port).await? {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    return Ok(stream);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "the host has no address")
        }))
    }

    fn put_back(&self, conn: IdleConn) {
        if matches!(&conn, IdleConn::Hyper(tx) if tx.is_closed()) {
            return;
        }
        let now = Instant::now();
        let mut idle = self.idle_lock();
        // The oldest sit at the front; drop the ones past their time as we go.
        while idle
            .front()
            .is_some_and(|i| now.duration_since(i.since) > IDLE_TIMEOUT)
        {
            idle.pop_front();
        }
        if idle.len() < MAX_IDLE {
            idle.push_back(Idle { conn, since: now });
        }
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OriginPool")
            .field("origin", &self.authority)
            .field("proto", &self.proto())
            .finish_non_exhaustive()
    }
}

/// An HTTP/1.1 response body that returns its connection to the pool once read to
/// the end (or dropped at the end without the last poll, as hyper's server does
/// for bodies whose length it knows).
struct PooledBody {
    inner: Incoming,
    conn: Option<(http1::SendRequest<Body>, Arc<Inner>)>,
    ended: bool,
}

impl PooledBody {
    fn new(inner: Incoming, tx: http1::SendRequest<Body>, pool: Arc<Inner>) -> Self {
        Self {
            inner,
            conn: Some((tx, pool)),
            ended: false,
        }
    }

    fn boxed(self) -> Body {
        crate::body::stream(self)
    }

    fn release(&mut self) {
        if let Some((tx, pool)) = self.conn.take() {
            pool.put_back(IdleConn::Hyper(tx));
        }
    }
}

impl http_body::Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => {
                self.ended = true;
                self.release();
            }
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => {
                self.ended = true;
                self.release();
            }
            // A broken body leaves the connection in no state to reuse.
            Poll::Ready(Some(Err(_))) => self.conn = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        if self.ended || self.inner.is_end_stream() {
            self.release();
        }
    }
}
