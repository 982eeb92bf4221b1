//! HTTP/1.1 exchanges served in the connection's own task, without hyper.
//!
//! Nearly every call a Zoom client makes is a `GET` or `DELETE` with no body,
//! whose head arrives in one read. hyper serves those through a connection
//! state machine with buffers of its own, a dispatcher, and a second pass to
//! encode the answer. Here such a request's head is parsed where it lies in
//! the bytes already read (values share them, no copy), handed to the
//! handler, and the answer is written in one write where it fits: 7.7% fewer
//! instructions per proxied request (BENCHMARKS.md, issue 20).
//!
//! Anything else goes to hyper, which has the whole protocol: a head not all
//! there (hyper's head timer then bounds it), a body, `Expect`, `Upgrade`,
//! `CONNECT`, `HEAD`, a `Connection` header other than `keep-alive` or
//! `close`, HTTP/1.0, anything httparse or `http` refuses, a head over the
//! listener's limits. So what is served here is the subset on which both
//! agree, and every error answer is still hyper's.

use std::cell::RefCell;
use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::io;
use std::mem::MaybeUninit;
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::answer::Tracked;
use super::park::poll_read_some;
use super::Incoming;

/// The most headers parsed here; a request with more goes to hyper, which
/// applies the listener's own limit.
const MAX_HEADERS: usize = 100;

/// Body bytes gathered behind the head into one write; larger pieces are
/// written as they come, not copied.
const COALESCE: usize = 16 * 1024;

/// The listener's limits on a request head.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    pub(super) max_headers: usize,
    pub(super) max_header_bytes: usize,
}

/// A request read here, and the bytes that followed its head.
pub(super) struct Parsed {
    pub(super) request: Request<Incoming>,
    pub(super) rest: Bytes,
    /// It said `Connection: close`: the connection ends with its answer.
    pub(super) close: bool,
}

/// How a connection goes on after an exchange served here.
#[derive(Debug)]
pub(super) enum After {
    /// It stays open; these bytes, read during the exchange, come next.
    KeepAlive(Bytes),
    /// The caller hung up, or the request or the answer asked for the
    /// connection to close.
    Close,
}

/// How the answer's body is delimited on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// The status allows no body (1xx, 204, 304).
    None,
    Length(u64),
    Chunked,
}

/// The request at the front of `bytes` if it is one served here: its head all
/// there, within `limits`, and announcing no body. `None` leaves it to hyper.
pub(super) fn parse(bytes: &Bytes, limits: Limits) -> Option<Parsed> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let slots = &mut slots[..limits.max_headers.min(MAX_HEADERS)];
    let mut req = httparse::Request::new(&mut []);
    let httparse::Status::Complete(len) = httparse::ParserConfig::default()
        .parse_request_with_uninit_headers(&mut req, bytes, slots)
        .ok()?
    else {
        return None;
    };
    if len > limits.max_header_bytes || req.version != Some(1) {
        return None;
    }
    let method = match req.method? {
        "GET" => Method::GET,
        "DELETE" => Method::DELETE,
        "OPTIONS" => Method::OPTIONS,
        "POST" => Method::POST,
        "PUT" => Method::PUT,
        "PATCH" => Method::PATCH,
        _ => return None,
    };
    let path = req.path?;
    if !path.starts_with('/') {
        return None;
    }
    let uri = Uri::from_maybe_shared(bytes.slice_ref(path.as_bytes())).ok()?;
    // Room for the two a forwarded request gains (`Host` and the token are
    // set, not appended): a full map grows, and so copies, on any insert.
    let mut headers = HeaderMap::with_capacity(req.headers.len() + 2);
    let mut close = false;
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        if name == header::CONTENT_LENGTH {
            // Repeated, it is hyper's to judge.
            if h.value != b"0" || headers.contains_key(header::CONTENT_LENGTH) {
                return None;
            }
        } else if name == header::CONNECTION {
            // What HTTP/1.1 clients send (urllib3, Node's agents); any other
            // option, or a list, is hyper's.
            if h.value.eq_ignore_ascii_case(b"close") {
                close = true;
            } else if !h.value.eq_ignore_ascii_case(b"keep-alive") {
                return None;
            }
        } else if name == header::TRANSFER_ENCODING
            || name == header::EXPECT
            || name == header::UPGRADE
        {
            return None;
        }
        let value = HeaderValue::from_maybe_shared(bytes.slice_ref(h.value)).ok()?;
        headers.append(name, value);
    }
    let mut request = Request::new(Incoming::empty());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = headers;
    Some(Parsed {
        request,
        rest: bytes.slice(len..),
        close,
    })
}

/// Runs `answer` for a request read here and writes what it answers to `io`.
///
/// While the handler works the socket is watched, as hyper watches it: a
/// caller that hangs up drops the handler's future (a Zoom call that must
/// finish runs in a task of its own, never in it), and bytes the caller
/// sends on (the next request) are kept for after. An error means the answer
/// could not be written whole, and the connection must close.
pub(super) async fn exchange<IO, A>(io: &mut IO, answer: A, close: bool) -> io::Result<After>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    A: Future<Output = Result<Response<Tracked>, Infallible>>,
{
    let mut answer = pin!(answer);
    let mut next = Bytes::new();
    let answered = poll_fn(|cx| {
        if let Poll::Ready(Ok(response)) = answer.as_mut().poll(cx) {
            return Poll::Ready(Some(response));
        }
        if next.is_empty() {
            match poll_read_some(io, cx) {
                Poll::Ready(Ok(bytes)) if !bytes.is_empty() => next = bytes,
                Poll::Ready(_) => return Poll::Ready(None),
                Poll::Pending => {}
            }
        }
        Poll::Pending
    })
    .await;
    let Some(response) = answered else {
        return Ok(After::Close);
    };
    let close = close || wants_close(response.headers());
    write(io, response, close).await?;
    if close {
        let _ = io.shutdown().await;
        return Ok(After::Close);
    }
    Ok(After::KeepAlive(next))
}

fn wants_close(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"close"))
}

/// Writes `response` as HTTP/1.1: the head, and its body framed by its exact
/// size, its `Content-Length`, or else in chunks.
async fn write<IO>(io: &mut IO, response: Response<Tracked>, close: bool) -> io::Result<()>
where
    IO: AsyncWrite + Unpin,
{
    let (parts, mut body) = response.into_parts();
    let framing = framing(parts.status, &parts.headers, body.size_hint().exact());
    // The head, and the body behind it when it fits: sized once, not grown.
    let head = 128
        + parts
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum::<usize>();
    let mut left = match framing {
        Framing::Length(n) => n,
        Framing::None | Framing::Chunked => 0,
    };
    let mut out = BytesMut::with_capacity(head + left.min(COALESCE as u64) as usize);
    encode_head(&mut out, parts.status, &parts.headers, framing, close);
    // Not kept across the writes: the connection's task would keep room for it.
    drop(parts);
    if framing != Framing::None {
        loop {
            // What the body has ready is gathered behind the head; before
            // waiting for more, what is gathered goes out.
            let frame = poll_fn(|cx| match Pin::new(&mut body).poll_frame(cx) {
                Poll::Pending if !out.is_empty() => Poll::Ready(Frame::Flush),
                Poll::Pending => Poll::Pending,
                Poll::Ready(None) => Poll::Ready(Frame::End),
                Poll::Ready(Some(Err(error))) => Poll::Ready(Frame::Failed(error)),
                Poll::Ready(Some(Ok(frame))) => Poll::Ready(match frame.into_data() {
                    Ok(data) => Frame::Data(data),
                    // Trailers: HTTP/1.1 sends them only when asked for, and
                    // no handler here makes them.
                    Err(_) => Frame::End,
                }),
            })
            .await;
            let data = match frame {
                Frame::Flush => {
                    io.write_all(&out).await?;
                    io.flush().await?;
                    out.clear();
                    continue;
                }
                Frame::End => break,
                Frame::Failed(error) => return Err(io::Error::other(error)),
                Frame::Data(data) if data.is_empty() => continue,
                Frame::Data(data) => data,
            };
            if framing == Framing::Chunked {
                put_number(&mut out, data.len() as u64, 16);
                out.extend_from_slice(b"\r\n");
            } else {
                let len = data.len() as u64;
                if len > left {
                    return Err(io::Error::other("the body is longer than its length"));
                }
                left -= len;
            }
            if out.len() + data.len() <= COALESCE {
                out.extend_from_slice(&data);
            } else {
                io.write_all(&out).await?;
                out.clear();
                io.write_all(&data).await?;
            }
            if framing == Framing::Chunked {
                out.extend_from_slice(b"\r\n");
            }
        }
        if left > 0 {
            return Err(io::Error::other("the body is shorter than its length"));
        }
        if framing == Framing::Chunked {
            out.extend_from_slice(b"0\r\n\r\n");
        }
    }
    // The exchange ends when the body is dropped (`Tracked`): once all of it
    // is in the socket.
    io.write_all(&out).await?;
    io.flush().await?;
    drop(body);
    Ok(())
}

/// One step of writing a body.
enum Frame {
    Data(Bytes),
    End,
    Failed(crate::body::BoxError),
    /// Nothing is ready, and what is gathered must go out first.
    Flush,
}

fn framing(status: StatusCode, headers: &HeaderMap, exact: Option<u64>) -> Framing {
    if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Framing::None;
    }
    if let Some(n) = exact {
        return Framing::Length(n);
    }
    let stated = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    match stated {
        Some(n) => Framing::Length(n),
        None => Framing::Chunked,
    }
}

/// The status line and headers. The handler's own framing headers give way
/// to `framing`; a `Date` is added if the handler set none, as hyper adds it,
/// and `Connection: close` when the connection ends with this answer.
fn encode_head(
    out: &mut BytesMut,
    status: StatusCode,
    headers: &HeaderMap,
    framing: Framing,
    close: bool,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        Framing::None => {}
        Framing::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            put_number(out, n, 10);
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    if close && !wants_close(headers) {
        out.extend_from_slice(b"connection: close\r\n");
    }
    if !headers.contains_key(header::DATE) {
        out.extend_from_slice(b"date: ");
        DATE.with_borrow_mut(|date| out.extend_from_slice(date.now()));
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// `n` in base `radix` (10 or 16), lower-case.
fn put_number(out: &mut BytesMut, mut n: u64, radix: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b"0123456789abcdef"[(n % radix) as usize];
        n /= radix;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

thread_local! {
    static DATE: RefCell<CachedDate> = const { RefCell::new(CachedDate { second: 0, text: [0; 29] }) };
}

/// `Date` in IMF-fixdate, formatted once a second per thread.
struct CachedDate {
    second: u64,
    text: [u8; 29],
}

impl CachedDate {
    fn now(&mut self) -> &[u8] {
        let now = SystemTime::now();
        let second = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        if second != self.second {
            let text = httpdate::fmt_http_date(now);
            if let Ok(text) = <[u8; 29]>::try_from(text.as_bytes()) {
                self.text = text;
                self.second = second;
            }
        }
        &self.text
    }
}

#[cfg(test)]
mod tests;
