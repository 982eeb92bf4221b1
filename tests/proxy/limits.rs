//! Abuse and edge cases on the proxy listener, over raw TCP so nothing is normalised.

use std::time::Duration;

use bytes::Bytes;
use grantmux::sim::SimConfig;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{self, S2S_KEY};

/// Writes `request` and reads until the server closes or `limit` passes.
async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request).await.expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                out.extend_from_slice(&buf[..n]);
                if out.windows(4).any(|w| w == b"\r\n\r\n") && request.starts_with(b"GET /v2") {
                    // One answer is enough for keep-alive requests.
                    if out.ends_with(b"}") {
                        break;
                    }
                }
            }
            Err(_) => panic!(
                "no answer or close within 10 s: {:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn status(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"))
}

#[tokio::test]
async fn connect_is_refused_with_400() {
    let h = support::start_default().await;
    let a = raw(
        h.gmx.proxy_addr,
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status(&a), 400, "{a}");
    assert_eq!(h.sim.stats().api_requests, 0);
}

#[tokio::test]
async fn absolute_form_targets_must_name_zoom() {
    let h = support::start_default().await;
    let foreign = format!(
        "GET http://example.com/v2/users/me HTTP/1.1\r\nHost: example.com\r\nAuthorization: Bearer {S2S_KEY}\r\nConnection: close\r\n\r\n"
    );
    let a = raw(h.gmx.proxy_addr, foreign.as_bytes()).await;
    assert_eq!(status(&a), 400, "{a}");
    assert!(a.contains("\"code\":400"), "{a}");
    assert_eq!(
        h.sim.stats().api_requests,
        0,
        "nothing reached any upstream"
    );
    let zoom = h.sim.addr();
    let own = format!(
        "GET http://{zoom}/v2/users/me HTTP/1.1\r\nHost: {zoom}\r\nAuthorization: Bearer {S2S_KEY}\r\nConnection: close\r\n\r\n"
    );
    let a = raw(h.gmx.proxy_addr, own.as_bytes()).await;
    assert_eq!(status(&a), 200, "{a}");
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let h = support::start(SimConfig::default(), |c| {
        c.listen.max_header_bytes = 16 * 1024
    })
    .await;
    let big = "x".repeat(64 * 1024);
    let req = format!(
        "GET /v2/users/me HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\nConnection: close\r\n\r\n"
    );
    let a = raw(h.gmx.proxy_addr, req.as_bytes()).await;
    assert_eq!(status(&a), 431, "{}", &a[..a.len().min(200)]);
    let many: String = (0..300).map(|i| format!("X-H{i}: v\r\n")).collect();
    let req = format!("GET /v2/users/me HTTP/1.1\r\nHost: x\r\n{many}Connection: close\r\n\r\n");
    let a = raw(h.gmx.proxy_addr, req.as_bytes()).await;
    assert_eq!(status(&a), 431, "{}", &a[..a.len().min(200)]);
}

#[tokio::test]
async fn a_client_sending_headers_too_slowly_is_cut_off() {
    let h = support::start(SimConfig::default(), |c| {
        c.listen.header_read_timeout = Duration::from_millis(300)
    })
    .await;
    let mut s = TcpStream::connect(h.gmx.proxy_addr).await.expect("connect");
    s.write_all(b"GET /v2/users/me HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    // The rest of the head never comes: the server must close within its timeout.
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "connection still open after 10 s");
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
}

#[tokio::test]
async fn connections_beyond_the_limit_get_503() {
    let h = support::start(SimConfig::default(), |c| c.listen.max_connections = 2).await;
    let _a = TcpStream::connect(h.gmx.proxy_addr).await.expect("first");
    let _b = TcpStream::connect(h.gmx.proxy_addr).await.expect("second");
    // Accepting is asynchronous: the third connection must find both permits taken.
    let mut answer = String::new();
    for _ in 0..100 {
        let req = format!("GET /v2/users/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {S2S_KEY}\r\nConnection: close\r\n\r\n");
        answer = raw(h.gmx.proxy_addr, req.as_bytes()).await;
        if status(&answer) == 503 {
            break;
        }
    }
    assert_eq!(status(&answer), 503, "{answer}");
    assert!(answer.contains("too many open connections"), "{answer}");
}

/// The same overload answer read by hyper's own HTTP/1.1 client, which holds
/// a message to its `content-length`: a body shorter than announced is an
/// error there (as in Python's `IncompleteRead`), where `contains` sees nothing.
#[tokio::test]
async fn the_overload_answer_parses_with_a_strict_http_client() {
    let h = support::start(SimConfig::default(), |c| c.listen.max_connections = 2).await;
    let _a = TcpStream::connect(h.gmx.proxy_addr).await.expect("first");
    let _b = TcpStream::connect(h.gmx.proxy_addr).await.expect("second");
    let mut last = String::new();
    for _ in 0..100 {
        // The answer follows the request: never a reset or an answer the
        // client did not ask for yet.
        let (status, body) = strict_get(h.gmx.proxy_addr)
            .await
            .unwrap_or_else(|e| panic!("the overload answer did not arrive: {e}"));
        if status != StatusCode::SERVICE_UNAVAILABLE {
            // Accepted before both permits were taken: not the overload answer.
            last = format!("status {status}");
            continue;
        }
        let body = body.unwrap_or_else(|e| panic!("the 503 body did not read cleanly: {e}"));
        let json: serde_json::Value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&body)));
        assert_eq!(json["code"], 503, "{json}");
        assert_eq!(
            json["message"], "grantmux: too many open connections.",
            "{json}"
        );
        assert_eq!(json.as_object().map(|o| o.len()), Some(2), "{json}");
        return;
    }
    panic!("no overload answer in 100 tries; last: {last}");
}

/// One GET over `hyper::client::conn::http1`: the status, then the body as
/// the strict parser delivers it.
async fn strict_get(
    addr: std::net::SocketAddr,
) -> Result<(StatusCode, Result<Bytes, String>), String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = Request::get("/v2/users/me")
        .header("host", "x")
        .header("authorization", format!("Bearer {S2S_KEY}"))
        .body(Empty::<Bytes>::new())
        .expect("request");
    let resp = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
        .await
        .map_err(|_| "no answer within 10 s".to_owned())?
        .map_err(|e| format!("{e:?}"))?;
    let status = resp.status();
    let body = tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect())
        .await
        .map_err(|_| "body not complete within 10 s".to_owned())
        .and_then(|r| r.map(|b| b.to_bytes()).map_err(|e| format!("{e:?}")));
    Ok((status, body))
}
