//! Abuse and edge cases on the proxy listener, over raw TCP so nothing is normalised.

use std::time::Duration;

use grantmux::sim::SimConfig;
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
