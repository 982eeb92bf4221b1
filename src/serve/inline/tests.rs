use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http_body_util::{BodyExt, StreamBody};
use hyper::client::conn::http1 as client;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::body;
use crate::serve::answer::{Answer, Rooms};
use crate::serve::idle::Activity;

const LIMITS: Limits = Limits {
    max_headers: 100,
    max_header_bytes: 8192,
};

fn parsed(head: &str) -> Option<Parsed> {
    parse(&Bytes::copy_from_slice(head.as_bytes()), LIMITS)
}

#[test]
fn a_bodiless_request_is_read_where_it_lies() {
    let bytes = Bytes::from_static(
        b"GET /v2/users/me?page_size=30 HTTP/1.1\r\nHost: api.zoom.us\r\n\
          Authorization: Bearer vt\r\nX-Two: a\r\nx-two: b\r\n\r\nGET /next",
    );
    let Parsed { request, rest, .. } = parse(&bytes, LIMITS).expect("served inline");
    assert_eq!(request.method(), Method::GET);
    assert_eq!(request.uri().path(), "/v2/users/me");
    assert_eq!(request.uri().query(), Some("page_size=30"));
    assert_eq!(request.version(), Version::HTTP_11);
    assert_eq!(request.headers()["host"], "api.zoom.us");
    assert_eq!(request.headers()["authorization"], "Bearer vt");
    let twos: Vec<_> = request.headers().get_all("x-two").iter().collect();
    assert_eq!(twos, ["a", "b"]);
    assert!(request.body().is_end_stream());
    assert_eq!(&rest[..], b"GET /next");
    // The value is a view of the bytes read, not a copy.
    let value = request.headers()["authorization"].as_bytes().as_ptr() as usize;
    let range = bytes.as_ptr() as usize..bytes.as_ptr() as usize + bytes.len();
    assert!(range.contains(&value));
}

#[test]
fn a_body_of_nothing_is_no_body() {
    for head in [
        "DELETE /v2/meetings/1 HTTP/1.1\r\nhost: z\r\n\r\n",
        "POST /v2/users/me/token HTTP/1.1\r\nhost: z\r\ncontent-length: 0\r\n\r\n",
        "PATCH /v2/users/me HTTP/1.1\r\nhost: z\r\n\r\n",
    ] {
        assert!(parsed(head).is_some(), "{head:?}");
    }
}

#[test]
fn a_connection_kept_alive_or_closed_is_served_inline() {
    let kept = parsed("GET / HTTP/1.1\r\nConnection: Keep-Alive\r\n\r\n").expect("inline");
    assert!(!kept.close);
    // Left for the handler, which drops hop-by-hop headers as hyper's get.
    assert_eq!(kept.request.headers()["connection"], "Keep-Alive");
    let closed = parsed("GET / HTTP/1.1\r\nconnection: close\r\n\r\n").expect("inline");
    assert!(closed.close);
    assert!(!parsed("GET / HTTP/1.1\r\n\r\n").expect("inline").close);
}

#[test]
fn anything_beyond_the_plain_subset_is_left_to_hyper() {
    for head in [
        // Not all there yet: hyper's head timer bounds the rest.
        "GET /v2/users/me HTTP/1.1\r\nhost: z\r\n",
        // A body, or a say in how it comes.
        "POST /v2/users HTTP/1.1\r\ncontent-length: 2\r\n\r\n{}",
        "POST /v2/users HTTP/1.1\r\ncontent-length: 0\r\ncontent-length: 0\r\n\r\n",
        "POST /v2/users HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST /v2/users HTTP/1.1\r\nexpect: 100-continue\r\ncontent-length: 0\r\n\r\n",
        // The connection itself.
        "GET / HTTP/1.1\r\nconnection: keep-alive, te\r\nte: trailers\r\n\r\n",
        "GET / HTTP/1.1\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
        "GET / HTTP/1.0\r\n\r\n",
        "CONNECT api.zoom.us:443 HTTP/1.1\r\nhost: api.zoom.us:443\r\n\r\n",
        "HEAD /v2/users/me HTTP/1.1\r\n\r\n",
        // Forms and bytes hyper answers 400 to.
        "GET http://api.zoom.us/v2/users HTTP/1.1\r\n\r\n",
        "GET * HTTP/1.1\r\n\r\n",
        "GET /v2 HTTP/1.1\r\nbad header: x\r\n\r\n",
        "BREW /pot HTTP/1.1\r\n\r\n",
    ] {
        assert!(parsed(head).is_none(), "{head:?}");
    }
}

#[test]
fn a_head_over_the_listeners_limits_is_left_to_hyper() {
    let many: String = (0..5).map(|i| format!("x-{i}: v\r\n")).collect();
    let head = format!("GET / HTTP/1.1\r\n{many}\r\n");
    let tight = Limits {
        max_headers: 4,
        ..LIMITS
    };
    assert!(parse(&Bytes::from(head.clone()), tight).is_none());
    assert!(parse(&Bytes::from(head.clone()), LIMITS).is_some());
    let short = Limits {
        max_header_bytes: head.len() - 1,
        ..LIMITS
    };
    assert!(parse(&Bytes::from(head), short).is_none());
}

/// A connected pair on loopback: grantmux's side and hyper's client on the other.
async fn pair() -> (TcpStream, client::SendRequest<body::Body>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let addr = listener.local_addr().expect("bound");
    let (caller, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let (send, conn) = client::handshake(TokioIo::new(caller.expect("connect")))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    (accepted.expect("accept").0, send)
}

/// Serves the next request on `server` inline with `response`, and has
/// hyper's client read the answer.
async fn round_trip(response: Response<body::Body>) -> (http::response::Parts, Bytes) {
    let (mut server, mut send) = pair().await;
    let request = Request::get("/v2/users/me")
        .header("host", "z")
        .body(body::empty())
        .expect("a request");
    let (answer, after) = tokio::join!(send.send_request(request), async {
        let head = super::super::park::opening(&mut server).await;
        let super::super::park::Opening::Http1(bytes) = head else {
            panic!("an HTTP/1 request");
        };
        let Parsed { request, rest, .. } = parse(&bytes, LIMITS).expect("served inline");
        assert!(rest.is_empty());
        let _ = request;
        let answer = std::future::ready(Ok::<_, Infallible>(response));
        exchange(
            &mut server,
            Answer::new(answer, Activity::new().request(), &Rooms::new()),
            false,
        )
        .await
    });
    assert!(matches!(after.expect("written"), After::KeepAlive(b) if b.is_empty()));
    let (parts, body) = answer.expect("hyper reads the answer").into_parts();
    let body = body.collect().await.expect("a whole body").to_bytes();
    (parts, body)
}

#[tokio::test]
async fn an_answer_of_known_size_has_its_length_and_a_date() {
    let mut response = body::json(StatusCode::CREATED, &serde_json::json!({"id": 1}));
    // A stale length from the handler gives way to the body's own.
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("99"));
    let (parts, body) = round_trip(response).await;
    assert_eq!(parts.status, StatusCode::CREATED);
    assert_eq!(parts.headers["content-length"], "8");
    assert_eq!(
        parts.headers["content-type"],
        "application/json;charset=UTF-8"
    );
    let date = parts.headers["date"].to_str().expect("ASCII");
    assert!(httpdate::parse_http_date(date).is_ok(), "{date}");
    assert_eq!(&body[..], br#"{"id":1}"#);
}

#[tokio::test]
async fn an_answer_of_unknown_size_goes_in_chunks() {
    let pieces = (0..50)
        .map(|i| Bytes::from(vec![b'a' + (i % 26) as u8; 1000]))
        .collect();
    let (parts, body) = round_trip(Response::new(streamed(pieces))).await;
    assert_eq!(parts.headers["transfer-encoding"], "chunked");
    assert_eq!(body.len(), 50_000);
    assert!(body
        .chunks(1000)
        .enumerate()
        .all(|(i, c)| c.iter().all(|&b| b == b'a' + (i % 26) as u8)));
}

#[tokio::test]
async fn a_stated_length_frames_a_streamed_answer_and_no_content_has_no_body() {
    let mut response = Response::new(streamed(vec![Bytes::from_static(b"hello")]));
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
    let (parts, body) = round_trip(response).await;
    assert_eq!(parts.headers["content-length"], "5");
    assert!(!parts.headers.contains_key("transfer-encoding"));
    assert_eq!(&body[..], b"hello");

    let mut response = Response::new(body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let (parts, body) = round_trip(response).await;
    assert_eq!(parts.status, StatusCode::NO_CONTENT);
    assert!(!parts.headers.contains_key("content-length"));
    assert!(body.is_empty());
}

#[tokio::test]
async fn a_body_shorter_than_its_length_closes_the_connection() {
    let mut response = Response::new(streamed(vec![Bytes::from_static(b"hel")]));
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
    let (mut server, _send) = pair().await;
    let answer = std::future::ready(Ok::<_, Infallible>(response));
    let written = exchange(
        &mut server,
        Answer::new(answer, Activity::new().request(), &Rooms::new()),
        false,
    )
    .await;
    assert!(written.is_err());
}

#[tokio::test]
async fn a_caller_that_hangs_up_drops_the_handler() {
    /// Set when the handler's future is dropped.
    struct Dropped(Arc<AtomicBool>);
    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let (mut server, send) = pair().await;
    let dropped = Arc::new(AtomicBool::new(false));
    let guard = Dropped(dropped.clone());
    let answer = async move {
        let _guard = guard;
        std::future::pending::<Result<Response<body::Body>, Infallible>>().await
    };
    drop(send);
    let after = exchange(
        &mut server,
        Answer::new(answer, Activity::new().request(), &Rooms::new()),
        false,
    )
    .await;
    assert!(matches!(after, Ok(After::Close)));
    assert!(dropped.load(Ordering::SeqCst));
}

/// A body of `pieces` whose size is not known up front.
fn streamed(pieces: Vec<Bytes>) -> body::Body {
    let frames = pieces
        .into_iter()
        .map(|piece| Ok::<_, Infallible>(http_body::Frame::data(piece)));
    body::stream(StreamBody::new(futures_util::stream::iter(frames)))
}
