//! The bodiless HTTP/1.1 path against a real socket with scripted answers, and
//! the chunked decoder fed a byte at a time.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::upstream::{OriginPool, Resolver};

/// A connection whose far end answers with `script` once it has read a request head.
async fn scripted(script: &'static [u8]) -> Conn {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.expect("accept");
        read_head(&mut sock).await;
        sock.write_all(script).await.expect("write");
        // Hold the socket open until the client is done with it.
        let mut rest = Vec::new();
        let _ = sock.read_to_end(&mut rest).await;
    });
    Conn::new(Stream::Tcp(
        TcpStream::connect(addr).await.expect("connect"),
    ))
}

/// A connection whose far end answers with `script` and then closes it.
async fn scripted_then_closed(script: &'static [u8]) -> Conn {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.expect("accept");
        read_head(&mut sock).await;
        let _ = sock.write_all(script).await;
    });
    Conn::new(Stream::Tcp(
        TcpStream::connect(addr).await.expect("connect"),
    ))
}

async fn read_head(sock: &mut TcpStream) -> Vec<u8> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        if sock.read(&mut byte).await.expect("read") == 0 {
            break;
        }
        head.push(byte[0]);
    }
    head
}

/// What `release` was handed, for the test to look at.
type Released = Arc<Mutex<Option<Conn>>>;

fn releaser() -> (Released, impl FnOnce(Conn) + Unpin + Send) {
    let released = Released::default();
    let slot = released.clone();
    (released, move |conn| {
        *slot.lock().expect("lock") = Some(conn);
    })
}

async fn get(script: &'static [u8], method: Method) -> (Parts, Result<Bytes, H1Error>, Released) {
    let conn = scripted(script).await;
    let path = "/v2/users/me".parse().expect("path");
    let (parts, framing, conn) = conn
        .exchange(&method, &path, &HeaderMap::new())
        .await
        .expect("an answer head");
    let (released, release) = releaser();
    let body = Body::new(conn, framing, release)
        .collect()
        .await
        .map(|c| c.to_bytes());
    (parts, body, released)
}

/// `GET /` with no headers.
async fn get_root(conn: Conn) -> Result<(Parts, Framing, Conn), H1Error> {
    let path = "/".parse().expect("path");
    conn.exchange(&Method::GET, &path, &HeaderMap::new()).await
}

fn was_released(released: &Released) -> bool {
    released.lock().expect("lock").is_some()
}

#[tokio::test]
async fn a_sized_answer_is_read_whole_and_its_connection_goes_back() {
    let (parts, body, released) = get(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Zm-Trackingid: t1\r\nContent-Length: 11\r\n\r\n{\"id\":\"me\"}",
        Method::GET,
    )
    .await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(parts.headers["content-type"], "application/json");
    assert_eq!(parts.headers["x-zm-trackingid"], "t1");
    assert_eq!(body.expect("body"), Bytes::from_static(b"{\"id\":\"me\"}"));
    assert!(was_released(&released));
}

#[tokio::test]
async fn a_chunked_answer_is_decoded_and_its_connection_goes_back() {
    let (_, body, released) = get(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
        Method::GET,
    )
    .await;
    assert_eq!(body.expect("body"), Bytes::from_static(b"hello world"));
    assert!(was_released(&released));
}

#[tokio::test]
async fn an_answer_without_a_length_runs_until_close_and_is_not_reused() {
    let conn = scripted_then_closed(b"HTTP/1.0 200 OK\r\n\r\nuntil the end").await;
    let (_, framing, conn) = get_root(conn).await.expect("head");
    assert_eq!(framing.length, Length::UntilClose);
    let (released, release) = releaser();
    let body = Body::new(conn, framing, release)
        .collect()
        .await
        .expect("body");
    assert_eq!(body.to_bytes(), Bytes::from_static(b"until the end"));
    assert!(!was_released(&released));
}

#[tokio::test]
async fn head_204_and_304_answers_have_no_body_whatever_their_length_says() {
    let (_, body, released) = get(
        b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n",
        Method::HEAD,
    )
    .await;
    assert!(body.expect("body").is_empty());
    assert!(was_released(&released));
    let (parts, body, released) = get(b"HTTP/1.1 204 No Content\r\n\r\n", Method::DELETE).await;
    assert_eq!(parts.status, StatusCode::NO_CONTENT);
    assert!(body.expect("body").is_empty());
    assert!(was_released(&released));
}

#[tokio::test]
async fn interim_answers_are_skipped() {
    let (parts, body, _) = get(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}",
        Method::GET,
    )
    .await;
    assert_eq!(parts.status, StatusCode::NOT_FOUND);
    assert!(!parts.headers.contains_key("link"));
    assert_eq!(body.expect("body"), Bytes::from_static(b"{}"));
}

#[tokio::test]
async fn connection_close_keeps_the_connection_out_of_the_pool() {
    let (_, body, released) = get(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}",
        Method::GET,
    )
    .await;
    assert_eq!(body.expect("body"), Bytes::from_static(b"{}"));
    assert!(!was_released(&released));
}

#[tokio::test]
async fn bytes_past_the_answer_keep_the_connection_out_of_the_pool() {
    let (_, body, released) = get(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 200 OK\r\n",
        Method::GET,
    )
    .await;
    assert_eq!(body.expect("body"), Bytes::from_static(b"{}"));
    assert!(!was_released(&released));
}

#[tokio::test]
async fn a_body_cut_short_is_an_error_not_a_short_answer() {
    let conn = scripted_then_closed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort").await;
    let (_, framing, conn) = get_root(conn).await.expect("head");
    let (released, release) = releaser();
    let error = Body::new(conn, framing, release).collect().await.err();
    assert!(matches!(error, Some(H1Error::Truncated)), "{error:?}");
    assert!(!was_released(&released));
}

#[tokio::test]
async fn malformed_heads_are_refused() {
    for script in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\n{}",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"SMTP ready\r\n\r\n",
    ] {
        let leaked: &'static [u8] = Box::leak(script.to_vec().into_boxed_slice());
        let conn = scripted(leaked).await;
        let answer = get_root(conn).await;
        assert!(answer.is_err(), "{:?}", String::from_utf8_lossy(script));
    }
    // The same length twice, or listed, is one length, passed on as one.
    let (parts, body, _) = get(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\n{}",
        Method::GET,
    )
    .await;
    assert_eq!(body.expect("body"), Bytes::from_static(b"{}"));
    let lengths: Vec<_> = parts.headers.get_all("content-length").iter().collect();
    assert_eq!(lengths, ["2"]);
}

#[tokio::test]
async fn a_length_beside_chunked_coding_is_dropped_and_the_connection_not_reused() {
    let (parts, body, released) = get(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        Method::GET,
    )
    .await;
    assert_eq!(body.expect("body"), Bytes::from_static(b"{}"));
    assert!(!parts.headers.contains_key("content-length"));
    assert!(!was_released(&released));
}

#[tokio::test]
async fn an_endless_head_is_refused_once_past_the_limit() {
    let conn = {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.expect("accept");
            read_head(&mut sock).await;
            let _ = sock.write_all(b"HTTP/1.1 200 OK\r\n").await;
            let line = format!("X-Pad: {}\r\n", "a".repeat(1000));
            while sock.write_all(line.as_bytes()).await.is_ok() {}
        });
        Conn::new(Stream::Tcp(
            TcpStream::connect(addr).await.expect("connect"),
        ))
    };
    let answer = get_root(conn).await;
    assert!(
        matches!(answer, Err(H1Error::HeadTooLarge)),
        "{:?}",
        answer.err()
    );
}

/// A chunked body fed one byte at a time, as the slowest network would deliver it.
#[tokio::test]
async fn the_chunked_decoder_takes_its_input_a_byte_at_a_time() {
    let wire =
        b"3\r\nabc\r\n1a;name=\"v\"\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nA: b\r\nC: d\r\n\r\n";
    let conn = scripted(b"").await;
    let framing = Framing {
        length: Length::Chunked,
        keep_alive: true,
    };
    let (released, release) = releaser();
    let mut body = Body::new(conn, framing, release);
    let mut data = Vec::new();
    for &byte in wire {
        body.conn
            .as_mut()
            .expect("open")
            .buf
            .extend_from_slice(&[byte]);
        while let Some(piece) = body.next().expect("well formed") {
            data.extend_from_slice(&piece);
        }
    }
    assert_eq!(data, b"abcabcdefghijklmnopqrstuvwxyz");
    assert_eq!(body.state, State::Ended);
    assert!(was_released(&released));
}

#[tokio::test]
async fn malformed_chunks_are_errors() {
    for wire in [
        &b"zz\r\nab\r\n"[..],
        b"\r\n",
        b"3\r\nabcd\r\n",
        b"3 x\r\nabc\r\n",
        b"1000000000000000\r\n",
        &[b'1'; MAX_LINE + 2][..],
    ] {
        let conn = scripted(b"").await;
        let framing = Framing {
            length: Length::Chunked,
            keep_alive: true,
        };
        let mut body = Body::new(conn, framing, |_| {});
        body.conn
            .as_mut()
            .expect("open")
            .buf
            .extend_from_slice(wire);
        let mut result = Ok(None);
        for _ in 0..4 {
            result = body.next();
            if !matches!(result, Ok(Some(_))) {
                break;
            }
        }
        assert!(
            matches!(result, Err(H1Error::Chunk)),
            "{:?}: {result:?}",
            String::from_utf8_lossy(&wire[..wire.len().min(20)])
        );
    }
}

#[tokio::test]
async fn an_idle_connection_zoom_closed_is_not_alive() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let server = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.expect("accept");
        drop(sock);
    });
    let mut conn = Conn::new(Stream::Tcp(
        TcpStream::connect(addr).await.expect("connect"),
    ));
    server.await.expect("server");
    // `alive` registers for a wake-up when it finds nothing to read: this ends
    // when the close arrives, with no sleep.
    std::future::poll_fn(|cx| match conn.alive(cx) {
        true => Poll::Pending,
        false => Poll::Ready(()),
    })
    .await;
}

#[test]
fn the_request_head_is_written_as_given_into_room_sized_once() {
    let mut headers = HeaderMap::new();
    headers.insert("host", "api.zoom.us".parse().expect("value"));
    headers.insert("authorization", "Bearer real".parse().expect("value"));
    let mut head = BytesMut::new();
    encode_head(
        &mut head,
        &Method::DELETE,
        &"/v2/meetings/1?x=y".parse().expect("path"),
        &headers,
    );
    assert_eq!(
        &head[..],
        b"DELETE /v2/meetings/1?x=y HTTP/1.1\r\nhost: api.zoom.us\r\nauthorization: Bearer real\r\n\r\n"
    );
    // Sized short, the buffer would have grown by a copy into twice the room.
    assert_eq!(head.capacity(), head.len());
}

#[test]
fn only_requests_that_announce_no_body_take_this_path() {
    let with = |method: Method, length: Option<&str>, chunked: bool| {
        let mut headers = HeaderMap::new();
        if let Some(length) = length {
            headers.insert("content-length", length.parse().expect("value"));
        }
        if chunked {
            headers.insert("transfer-encoding", "chunked".parse().expect("value"));
        }
        bodiless(&method, &headers)
    };
    assert!(with(Method::GET, None, false));
    assert!(with(Method::DELETE, None, false));
    assert!(with(Method::POST, Some("0"), false));
    assert!(!with(Method::POST, Some("2"), false));
    assert!(!with(Method::GET, Some("5"), false));
    assert!(!with(Method::POST, None, true));
    assert!(!with(Method::CONNECT, None, false));
}

#[tokio::test]
async fn zoom_header_names_are_read_in_any_case() {
    let (parts, body, _) = get(
        b"HTTP/1.1 200 OK\r\nX-RateLimit-Remaining: 9\r\nx-zm-trackingid: t\r\nX-Other: o\r\nContent-Length: 0\r\n\r\n",
        Method::GET,
    )
    .await;
    assert_eq!(parts.headers[crate::ratelimit::headers::REMAINING], "9");
    assert_eq!(parts.headers["x-zm-trackingid"], "t");
    assert_eq!(parts.headers["x-other"], "o");
    assert_eq!(parts.headers.len(), 4);
    assert!(body.expect("body").is_empty());
}

/// A GET and then a POST through the pool: the GET's connection, given back by
/// its body, carries the POST through hyper, and Zoom sees one connection.
#[tokio::test]
async fn the_pool_hands_a_bodiless_requests_connection_to_hyper_for_a_body() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (sock, _) = listener.accept().await.expect("accept");
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                        let method = req.method().clone();
                        let body = req.into_body().collect().await?.to_bytes();
                        let answer = format!("{method} {}", body.len());
                        Ok::<_, hyper::Error>(http::Response::new(http_body_util::Full::new(
                            Bytes::from(answer),
                        )))
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(sock), service)
                    .await;
            });
        }
    });
    let tls = crate::upstream::tls_config(None).expect("tls");
    let origin: http::Uri = format!("http://{addr}").parse().expect("origin");
    let opened = Counter::default();
    let pool = OriginPool::new(
        &origin,
        &tls,
        Resolver::System,
        std::time::Duration::from_secs(5),
        opened.clone(),
    )
    .expect("pool");
    let send = |method: Method, body: &'static str| {
        let pool = pool.clone();
        async move {
            let mut req = Request::new(crate::body::full(body));
            *req.method_mut() = method;
            *req.uri_mut() = "/v2/users/me".parse().expect("uri");
            req.headers_mut()
                .insert("host", addr.to_string().parse().expect("host"));
            let resp = pool.send(req).await.expect("an answer");
            resp.into_body().collect().await.expect("body").to_bytes()
        }
    };
    assert_eq!(send(Method::GET, "").await, "GET 0");
    assert_eq!(send(Method::GET, "").await, "GET 0");
    assert_eq!(send(Method::POST, "{\"a\":1}").await, "POST 7");
    assert_eq!(send(Method::GET, "").await, "GET 0");
    assert_eq!(opened.get(), 1);
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// Random chunkings of random bodies, fed in random pieces, decode to the body;
/// random damage to the wire is an error or a short body, never a panic.
#[tokio::test]
async fn any_chunking_fed_in_any_pieces_decodes_to_the_body() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(20);
    for round in 0..200 {
        let body: Vec<u8> = (0..rng.random_range(0..3000))
            .map(|_| rng.random())
            .collect();
        let mut wire = Vec::new();
        let mut rest = &body[..];
        while !rest.is_empty() {
            let n = rng.random_range(1..=rest.len().min(700));
            wire.extend_from_slice(format!("{n:x}").as_bytes());
            if rng.random_bool(0.2) {
                wire.extend_from_slice(b";ext=\"v\"");
            }
            wire.extend_from_slice(b"\r\n");
            wire.extend_from_slice(&rest[..n]);
            wire.extend_from_slice(b"\r\n");
            rest = &rest[n..];
        }
        wire.extend_from_slice(b"0\r\n");
        if rng.random_bool(0.3) {
            wire.extend_from_slice(b"Trailer-A: 1\r\n");
        }
        wire.extend_from_slice(b"\r\n");
        let damaged = round % 2 == 1;
        if damaged {
            let at = rng.random_range(0..wire.len());
            wire[at] = rng.random();
        }
        let conn = scripted(b"").await;
        let framing = Framing {
            length: Length::Chunked,
            keep_alive: true,
        };
        let mut decoder = Body::new(conn, framing, |_| {});
        let mut decoded = Vec::new();
        let mut failed = false;
        let mut fed = &wire[..];
        'feed: while !fed.is_empty() {
            let n = rng.random_range(1..=fed.len().min(64));
            decoder
                .conn
                .as_mut()
                .expect("open")
                .buf
                .extend_from_slice(&fed[..n]);
            fed = &fed[n..];
            loop {
                match decoder.next() {
                    Ok(Some(piece)) => decoded.extend_from_slice(&piece),
                    Ok(None) => break,
                    Err(_) => {
                        failed = true;
                        break 'feed;
                    }
                }
            }
        }
        if !damaged {
            assert!(!failed, "round {round}");
            assert_eq!(decoder.state, State::Ended, "round {round}");
            assert_eq!(decoded, body, "round {round}");
        } else if !failed && decoder.state == State::Ended {
            // A damaged byte inside the data changes the data, not its length.
            assert_eq!(decoded.len(), body.len(), "round {round}");
        }
    }
}
