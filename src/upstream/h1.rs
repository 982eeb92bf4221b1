//! A plain HTTP/1.1 exchange for the API calls that carry no body (Zoom's GETs
//! and DELETEs, most of the traffic), run inside the caller's request task.
//!
//! hyper's client connection is a task of its own: each request crosses a
//! channel to it, is encoded from a full `Request`, and the answer is parsed
//! there and crosses back, with a wake-up each way (BENCHMARKS.md, issue 20:
//! the leg to Zoom was about a third of the proxy's instructions). A request
//! with no body needs none of that. Its head is written in one write; the
//! answer's head is parsed by httparse (hyper's own parser) into the
//! `HeaderMap` the caller's side needs anyway, its values sharing the bytes
//! read; and the body is framed as RFC 9112 §6.3 says: no body, a length,
//! chunks, or until Zoom closes.
//!
//! Everything else stays with hyper: requests with bodies (whose upload must
//! run while Zoom may already answer), HTTP/2, upgrades. The pool hands a
//! connection from here to hyper when a request with a body needs one.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::response::Parts;
use http::uri::PathAndQuery;
use http::{Method, Response, StatusCode, Version};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::ratelimit::headers as ratelimit;

/// The most headers an answer may carry (hyper's default, too).
const MAX_HEADERS: usize = 100;
/// The longest answer head accepted. Zoom's are under 2 KiB.
const MAX_HEAD: usize = 64 * 1024;
/// The longest chunk-size line or trailer section accepted.
const MAX_LINE: usize = 4 * 1024;
/// How much room a read asks for.
const READ_SIZE: usize = 8 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum H1Error {
    /// Nothing of the request left: another connection may take it.
    #[error("writing the request to Zoom")]
    Unsent(#[source] io::Error),
    #[error("writing the request to Zoom")]
    Write(#[source] io::Error),
    #[error("reading Zoom's answer")]
    Read(#[source] io::Error),
    #[error("Zoom closed the connection before answering")]
    Closed,
    #[error("Zoom's answer head is longer than {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("Zoom's answer is not valid HTTP/1.1")]
    Parse(#[source] httparse::Error),
    #[error("Zoom's answer has an invalid {0} header")]
    Header(&'static str),
    #[error("Zoom's answer switched protocols unasked")]
    Switched,
    #[error("Zoom's chunked body is malformed")]
    Chunk,
    #[error("Zoom closed the connection mid-body")]
    Truncated,
}

/// A connection to Zoom's API origin, TLS or (loopback only) plain.
#[derive(Debug)]
pub(super) enum Stream {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// An HTTP/1.1 connection between exchanges, with what it has read ahead.
#[derive(Debug)]
pub(super) struct Conn {
    io: Stream,
    buf: BytesMut,
}

/// Whether a request with no body bytes may take this path: no header says a
/// body follows, and it is not a tunnel.
pub(super) fn bodiless(method: &Method, headers: &HeaderMap) -> bool {
    method != Method::CONNECT
        && headers
            .get(header::CONTENT_LENGTH)
            .is_none_or(|v| v.as_bytes() == b"0")
        && !headers.contains_key(header::TRANSFER_ENCODING)
}

/// Appends the request head as HTTP/1.1 writes it to `out`. The caller's
/// headers are already Zoom's (`prepare_request`): hop-by-hop ones gone,
/// `Host` and the token set.
pub(super) fn encode_head(
    out: &mut BytesMut,
    method: &Method,
    path: &PathAndQuery,
    headers: &HeaderMap,
) {
    // `METHOD SP path SP HTTP/1.1 CRLF`, the headers, and the empty line:
    // sized once, so the buffer does not grow (and copy) while it is written.
    let size = headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum::<usize>()
        + method.as_str().len()
        + path.as_str().len()
        + b"  HTTP/1.1\r\n\r\n".len();
    out.reserve(size);
    out.extend_from_slice(method.as_str().as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(path.as_str().as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

// === impl Conn ===

impl Conn {
    pub(super) fn new(io: Stream) -> Self {
        Self {
            io,
            buf: BytesMut::new(),
        }
    }

    /// The socket, for hyper to run a request with a body on. `None` if
    /// bytes were read ahead of any request, which no hyper connection expects.
    pub(super) fn into_io(self) -> Option<Stream> {
        self.buf.is_empty().then_some(self.io)
    }

    /// Whether an idle connection can take a request: Zoom has not closed it
    /// or sent anything unasked. One non-blocking read; a connection whose
    /// read would block registers for wake-ups, which is harmless.
    pub(super) fn alive(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut probe = [0u8; 1];
        let mut probe = ReadBuf::new(&mut probe);
        matches!(
            Pin::new(&mut self.io).poll_read(cx, &mut probe),
            Poll::Pending
        )
    }

    /// Writes the request's head and reads the answer's. The connection rides
    /// in the returned body, which gives it back through `release` once read
    /// to the end.
    pub(super) async fn exchange(
        mut self,
        method: &Method,
        path: &PathAndQuery,
        headers: &HeaderMap,
    ) -> Result<(Parts, Framing, Conn), H1Error> {
        // The head is written from the read buffer, empty between exchanges
        // (`alive`): its room, kept from the last answer, takes the head
        // without an allocation, and is the answer's again once it is sent.
        debug_assert!(self.buf.is_empty(), "a connection with bytes read ahead");
        encode_head(&mut self.buf, method, path, headers);
        let written = self.io.write(&self.buf).await.map_err(H1Error::Unsent)?;
        if written == 0 {
            return Err(H1Error::Unsent(io::ErrorKind::WriteZero.into()));
        }
        self.io
            .write_all(&self.buf[written..])
            .await
            .map_err(H1Error::Write)?;
        self.buf.clear();
        self.io.flush().await.map_err(H1Error::Write)?;
        loop {
            // A kept-alive connection starts empty: read before parsing.
            let parsed = match self.buf.is_empty() {
                true => None,
                false => parse_head(&mut self.buf)?,
            };
            if let Some((parts, seen)) = parsed {
                if parts.status.is_informational() {
                    if parts.status == StatusCode::SWITCHING_PROTOCOLS {
                        return Err(H1Error::Switched);
                    }
                    // 100 Continue, 103 Early Hints: the answer follows.
                    continue;
                }
                let mut parts = parts;
                let framing = Framing::of(method, &mut parts, seen)?;
                return Ok((parts, framing, self));
            }
            if self.buf.len() >= MAX_HEAD {
                return Err(H1Error::HeadTooLarge);
            }
            self.buf.reserve(READ_SIZE);
            if self
                .io
                .read_buf(&mut self.buf)
                .await
                .map_err(H1Error::Read)?
                == 0
            {
                return Err(H1Error::Closed);
            }
        }
    }

    /// Reads more into the buffer; `Ok(0)` at Zoom's end of stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.buf.reserve(READ_SIZE);
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf)
    }
}

/// Parses one answer head off the front of `buf`, or `None` if it is not all there.
fn parse_head(buf: &mut BytesMut) -> Result<Option<(Parts, Seen)>, H1Error> {
    // Where each header's name and value sit in `buf`: httparse borrows it,
    // and the values are then cut from it without a copy. The spans are
    // offsets into a head of at most MAX_HEAD bytes, kept on the stack.
    let mut spans = [[0u32; 4]; MAX_HEADERS];
    let (len, code, version, count) = {
        let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut []);
        let parsed = httparse::ParserConfig::default()
            .parse_response_with_uninit_headers(&mut resp, buf, &mut headers)
            .map_err(H1Error::Parse)?;
        let httparse::Status::Complete(len) = parsed else {
            return Ok(None);
        };
        if len > MAX_HEAD {
            return Err(H1Error::HeadTooLarge);
        }
        let base = buf.as_ptr() as usize;
        let offset = |part: &[u8]| (part.as_ptr() as usize - base) as u32;
        for (span, h) in spans.iter_mut().zip(resp.headers.iter()) {
            let (name, value) = (offset(h.name.as_bytes()), offset(h.value));
            *span = [
                name,
                name + h.name.len() as u32,
                value,
                value + h.value.len() as u32,
            ];
        }
        let version = match resp.version {
            Some(0) => Version::HTTP_10,
            _ => Version::HTTP_11,
        };
        (
            len,
            resp.code.unwrap_or_default(),
            version,
            resp.headers.len(),
        )
    };
    let head = buf.split_to(len).freeze();
    let mut headers = HeaderMap::with_capacity(count);
    let mut seen = Seen::default();
    for &[ns, ne, vs, ve] in &spans[..count] {
        let (ns, ne, vs, ve) = (ns as usize, ne as usize, vs as usize, ve as usize);
        let name = header_name(&head[ns..ne])?;
        if name == header::CONTENT_LENGTH {
            seen.content_length += 1;
        } else if name == header::TRANSFER_ENCODING {
            seen.transfer_encoding = true;
        } else if name == header::CONNECTION {
            seen.connection = true;
        }
        let value = HeaderValue::from_maybe_shared(head.slice(vs..ve))
            .map_err(|_| H1Error::Header("value"))?;
        headers.append(name, value);
    }
    let status = StatusCode::from_u16(code).map_err(|_| H1Error::Header("status"))?;
    let (mut parts, ()) = Response::new(()).into_parts();
    parts.status = status;
    parts.version = version;
    parts.headers = headers;
    Ok(Some((parts, seen)))
}

/// Names of Zoom's own answer headers. `HeaderName::from_bytes` copies a name
/// it does not know into an allocation of its own; Zoom sends these on every
/// answer (its tracking id, and its rate-limit headers on most).
static ZOOM_HEADERS: [HeaderName; 7] = [
    HeaderName::from_static("x-zm-trackingid"),
    HeaderName::from_static("x-zm-request-id"),
    ratelimit::CATEGORY,
    ratelimit::TYPE,
    ratelimit::LIMIT,
    ratelimit::REMAINING,
    HeaderName::from_static("x-ratelimit-reset"),
];

/// A header name as read, one of Zoom's own without an allocation.
fn header_name(raw: &[u8]) -> Result<HeaderName, H1Error> {
    if raw.len() > 2 && raw[..2].eq_ignore_ascii_case(b"x-") {
        let known = ZOOM_HEADERS
            .iter()
            .find(|n| n.as_str().as_bytes().eq_ignore_ascii_case(raw));
        if let Some(name) = known {
            return Ok(name.clone());
        }
    }
    HeaderName::from_bytes(raw).map_err(|_| H1Error::Header("name"))
}

/// Which of the headers that frame an answer it carries, noted as its head is
/// parsed: most answers have one `Content-Length` and neither of the others,
/// and a lookup by hash for each would cost more than the note.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    /// `Content-Length` fields (a list in one field counts once).
    content_length: usize,
    transfer_encoding: bool,
    connection: bool,
}

/// How the answer's body is delimited, and whether the connection outlives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Framing {
    pub(super) length: Length,
    pub(super) keep_alive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Length {
    Exact(u64),
    Chunked,
    /// Until Zoom closes: the connection ends with the body.
    UntilClose,
}

impl Framing {
    /// RFC 9112 §6.3, in its order. The caller's side frames its answer by
    /// the `Content-Length` left here, so a doubtful one is removed or made one
    /// number.
    fn of(method: &Method, parts: &mut Parts, seen: Seen) -> Result<Self, H1Error> {
        let mut suspect = false;
        let headers = &mut parts.headers;
        let length = if method == Method::HEAD
            || parts.status == StatusCode::NO_CONTENT
            || parts.status == StatusCode::NOT_MODIFIED
        {
            Length::Exact(0)
        } else if seen.transfer_encoding {
            let chunked = headers
                .get_all(header::TRANSFER_ENCODING)
                .iter()
                .flat_map(|v| v.as_bytes().split(|&b| b == b','))
                .next_back()
                .is_some_and(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            // With a length too, the coding wins, the length goes, and the
            // connection is not trusted with another request (§6.3, point 3).
            suspect = headers.remove(header::CONTENT_LENGTH).is_some();
            if chunked {
                Length::Chunked
            } else {
                Length::UntilClose
            }
        } else if let Some(value) = (seen.content_length > 0)
            .then(|| headers.get(header::CONTENT_LENGTH))
            .flatten()
        {
            let plain = value.as_bytes().iter().all(u8::is_ascii_digit);
            let n = match seen.content_length {
                1 => content_length([value])?,
                _ => content_length(headers.get_all(header::CONTENT_LENGTH))?,
            };
            if !plain || seen.content_length > 1 {
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
            }
            Length::Exact(n)
        } else {
            Length::UntilClose
        };
        let (mut close, mut keep) = (false, false);
        let connection = seen.connection.then(|| headers.get_all(header::CONNECTION));
        for token in connection
            .iter()
            .flatten()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        {
            let token = token.trim_ascii();
            close |= token.eq_ignore_ascii_case(b"close");
            keep |= token.eq_ignore_ascii_case(b"keep-alive");
        }
        let keep_alive = length != Length::UntilClose
            && !suspect
            && !close
            && (parts.version == Version::HTTP_11 || keep);
        Ok(Self { length, keep_alive })
    }
}

/// Every `Content-Length` value, repeated or listed, must be the same number.
fn content_length<'a>(values: impl IntoIterator<Item = &'a HeaderValue>) -> Result<u64, H1Error> {
    let mut length = None;
    for value in values
        .into_iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
    {
        let value = value.trim_ascii();
        if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
            return Err(H1Error::Header("Content-Length"));
        }
        let n = std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or(H1Error::Header("Content-Length"))?;
        if length.is_some_and(|l| l != n) {
            return Err(H1Error::Header("Content-Length"));
        }
        length = Some(n);
    }
    length.ok_or(H1Error::Header("Content-Length"))
}

/// The answer's body, read from the connection as the caller's side polls it.
/// `release` gets the connection once the body is read to its end, if the
/// connection can take another request; a body dropped before its end closes it.
pub(super) struct Body<R: FnOnce(Conn)> {
    conn: Option<Conn>,
    state: State,
    keep_alive: bool,
    release: Option<R>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Remaining(u64),
    Chunks(Chunk),
    UntilClose,
    Ended,
}

/// Where the chunked decoder is (RFC 9112 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
}

impl<R: FnOnce(Conn)> Body<R> {
    pub(super) fn new(conn: Conn, framing: Framing, release: R) -> Self {
        let state = match framing.length {
            Length::Exact(0) => State::Ended,
            Length::Exact(n) => State::Remaining(n),
            Length::Chunked => State::Chunks(Chunk::Size),
            Length::UntilClose => State::UntilClose,
        };
        let mut body = Self {
            conn: Some(conn),
            state,
            keep_alive: framing.keep_alive,
            release: Some(release),
        };
        if body.state == State::Ended {
            body.end();
        }
        body
    }

    fn end(&mut self) {
        self.state = State::Ended;
        let conn = self.conn.take();
        // Bytes past the answer are nothing Zoom should have sent: not reused.
        if let (true, Some(conn), Some(release)) = (self.keep_alive, conn, self.release.take()) {
            if conn.buf.is_empty() {
                release(conn);
            }
        }
    }

    /// The next piece of the body from what is buffered, or `None` if more
    /// must be read first.
    fn next(&mut self) -> Result<Option<Bytes>, H1Error> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(None);
        };
        let buf = &mut conn.buf;
        loop {
            match &mut self.state {
                State::Ended => return Ok(None),
                State::Remaining(left) => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let data = take_up_to(buf, left);
                    if *left == 0 {
                        self.end();
                    }
                    return Ok(Some(data));
                }
                State::UntilClose => {
                    return Ok((!buf.is_empty()).then(|| buf.split().freeze()));
                }
                State::Chunks(chunk) => match chunk {
                    Chunk::Size => {
                        let Some(line) = take_line(buf)? else {
                            return Ok(None);
                        };
                        let size = chunk_size(&line)?;
                        *chunk = if size == 0 {
                            Chunk::Trailers
                        } else {
                            Chunk::Data(size)
                        };
                    }
                    Chunk::Data(left) => {
                        if buf.is_empty() {
                            return Ok(None);
                        }
                        let data = take_up_to(buf, left);
                        if *left == 0 {
                            *chunk = Chunk::DataEnd;
                        }
                        return Ok(Some(data));
                    }
                    Chunk::DataEnd => {
                        if buf.len() < 2 {
                            return Ok(None);
                        }
                        if &buf[..2] != b"\r\n" {
                            return Err(H1Error::Chunk);
                        }
                        buf.advance(2);
                        *chunk = Chunk::Size;
                    }
                    // Trailers are read and dropped: Zoom's API sends none, and
                    // the caller's side would need them announced up front.
                    Chunk::Trailers => {
                        let Some(line) = take_line(buf)? else {
                            return Ok(None);
                        };
                        if line.is_empty() {
                            self.end();
                            return Ok(None);
                        }
                    }
                },
            }
        }
    }
}

/// What `buf` holds of the `left` bytes still owed, off its front; `left` counts down.
fn take_up_to(buf: &mut BytesMut, left: &mut u64) -> Bytes {
    let n = usize::try_from(*left).map_or(buf.len(), |l| l.min(buf.len()));
    *left -= n as u64;
    buf.split_to(n).freeze()
}

/// One CRLF-ended line off the front of `buf`, without its CRLF.
fn take_line(buf: &mut BytesMut) -> Result<Option<BytesMut>, H1Error> {
    match buf.windows(2).position(|w| w == b"\r\n") {
        Some(at) if at <= MAX_LINE => {
            let line = buf.split_to(at);
            buf.advance(2);
            Ok(Some(line))
        }
        Some(_) => Err(H1Error::Chunk),
        None if buf.len() > MAX_LINE => Err(H1Error::Chunk),
        None => Ok(None),
    }
}

/// A chunk-size line: hex digits, then optional extensions, which are ignored.
fn chunk_size(line: &[u8]) -> Result<u64, H1Error> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let rest = &line[digits..];
    let rest_ok = rest.is_empty() || rest.trim_ascii_start().first().is_some_and(|&b| b == b';');
    if digits == 0 || digits > 15 || !rest_ok {
        return Err(H1Error::Chunk);
    }
    let digits = std::str::from_utf8(&line[..digits]).map_err(|_| H1Error::Chunk)?;
    u64::from_str_radix(digits, 16).map_err(|_| H1Error::Chunk)
}

impl<R: FnOnce(Conn) + Unpin> http_body::Body for Body<R> {
    type Data = Bytes;
    type Error = H1Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, H1Error>>> {
        let this = &mut *self;
        loop {
            match this.next() {
                Ok(Some(data)) => return Poll::Ready(Some(Ok(http_body::Frame::data(data)))),
                Ok(None) if this.state == State::Ended => return Poll::Ready(None),
                Ok(None) => {}
                Err(error) => {
                    this.conn = None;
                    this.state = State::Ended;
                    return Poll::Ready(Some(Err(error)));
                }
            }
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match conn.poll_fill(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) if this.state == State::UntilClose => {
                    this.state = State::Ended;
                    this.conn = None;
                    return Poll::Ready(None);
                }
                Poll::Ready(Ok(0)) => {
                    this.conn = None;
                    this.state = State::Ended;
                    return Poll::Ready(Some(Err(H1Error::Truncated)));
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(error)) => {
                    this.conn = None;
                    this.state = State::Ended;
                    return Poll::Ready(Some(Err(H1Error::Read(error))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.state == State::Ended
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self.state {
            State::Remaining(n) => http_body::SizeHint::with_exact(n),
            State::Ended => http_body::SizeHint::with_exact(0),
            _ => http_body::SizeHint::default(),
        }
    }
}

// === impl Stream ===

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }
}

#[cfg(test)]
mod tests;
