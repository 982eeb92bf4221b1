//! Connections that hold a slot without using it are closed within
//! `listen.header_read_timeout` (plus a second of slack), counted from accept:
//! silent ones, partial HTTP/2 prefaces, idle HTTP/2 connections. A flood of
//! them cannot keep callers or `/healthz` out for longer than that.

use std::net::SocketAddr;
use std::time::Duration;

use grantmux::harness::Harness;
use grantmux::sim::SimConfig;
use http::Method;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::support::{self, S2S_KEY};

const TIMEOUT: Duration = Duration::from_secs(1);
/// What the issue allows past the timeout.
const SLACK: Duration = Duration::from_secs(1);
const EACH: usize = 200;

async fn start(max_connections: usize) -> Harness {
    support::start(SimConfig::default(), |c| {
        c.listen.header_read_timeout = TIMEOUT;
        c.listen.max_connections = max_connections;
    })
    .await
}

/// Opens `n` connections, writes `hello` on each, and returns them.
async fn open(addr: SocketAddr, n: usize, hello: &'static [u8]) -> Vec<TcpStream> {
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(hello).await.expect("write");
        streams.push(s);
    }
    streams
}

/// Whether every stream is closed by the server before `deadline`.
async fn all_closed_by(streams: Vec<TcpStream>, deadline: Instant) -> usize {
    let mut reads = JoinSet::new();
    for mut s in streams {
        reads.spawn(async move {
            let mut sink = Vec::new();
            tokio::time::timeout_at(deadline, s.read_to_end(&mut sink))
                .await
                .is_ok()
        });
    }
    let mut open = 0;
    while let Some(closed) = reads.join_next().await {
        open += usize::from(!closed.expect("joined"));
    }
    open
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed_within_the_header_read_timeout() {
    let h = start(10_000).await;
    let streams = open(h.gmx.proxy_addr, EACH, b"").await;
    let open = all_closed_by(streams, Instant::now() + TIMEOUT + SLACK).await;
    assert_eq!(open, 0, "silent connections still open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_http2_prefaces_are_closed_within_the_header_read_timeout() {
    let h = start(10_000).await;
    let streams = open(h.gmx.proxy_addr, EACH, b"PRI * HTTP/2.0\r\n").await;
    let open = all_closed_by(streams, Instant::now() + TIMEOUT + SLACK).await;
    assert_eq!(open, 0, "half-prefaced connections still open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_connections_are_closed_within_the_header_read_timeout() {
    let h = start(10_000).await;
    let mut conns = JoinSet::new();
    let mut senders = Vec::new();
    for _ in 0..EACH {
        let tcp = TcpStream::connect(h.gmx.proxy_addr).await.expect("connect");
        let (sender, conn) = hyper::client::conn::http2::handshake::<
            _,
            _,
            http_body_util::Empty<bytes::Bytes>,
        >(TokioExecutor::new(), TokioIo::new(tcp))
        .await
        .expect("HTTP/2 handshake");
        senders.push(sender);
        conns.spawn(conn);
    }
    // One request on the first, to show the connections really speak HTTP/2.
    let ready = senders[0].ready().await;
    assert!(ready.is_ok(), "HTTP/2 connection usable: {ready:?}");
    let deadline = Instant::now() + TIMEOUT + SLACK;
    let mut open = 0;
    while let Some(ended) = tokio::time::timeout_at(deadline, conns.join_next())
        .await
        .unwrap_or(None)
    {
        ended.expect("joined").ok();
    }
    open += conns.len();
    assert_eq!(open, 0, "idle HTTP/2 connections still open");
}

/// Every slot taken by a silent connection: callers kept out are told so with
/// Zoom's 503 shape (an answer after their request, which even hyper's strict
/// client reads), are served again as soon as those are cut off, and
/// `/healthz`, with slots of its own, answers throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_silent_connections_keep_callers_out_no_longer_than_the_timeout() {
    const SILENT: usize = 1_000;
    let h = start(SILENT).await;
    let streams = open(h.gmx.proxy_addr, SILENT, b"").await;
    let flooded = Instant::now();
    let healthz = h
        .call(Method::GET, &h.admin_url("/healthz"), &[], "")
        .await
        .expect("healthz answers");
    assert_eq!(healthz.status, 200, "admin is not the proxy's to starve");

    let bearer = format!("Bearer {S2S_KEY}");
    let (url, auth) = (
        h.proxy_url("/v2/users/me"),
        [("authorization", bearer.as_str())],
    );
    let served = loop {
        // Bounded, so a caller left waiting fails the test instead of hanging it.
        let call = h.call(Method::GET, &url, &auth, "");
        let answer = tokio::time::timeout(TIMEOUT + SLACK, call).await;
        let status = match answer {
            Ok(Ok(a)) => a.status,
            other => panic!("a caller kept out must be told so with 503: {other:?}"),
        };
        if status == 200 {
            break flooded.elapsed();
        }
        assert_eq!(status, 503, "the answer to a caller kept out");
        assert!(
            flooded.elapsed() < TIMEOUT + SLACK,
            "callers still kept out after {:?}",
            flooded.elapsed()
        );
        tokio::task::yield_now().await;
    };
    println!("a caller was served {served:?} after 1,000 silent connections took every slot");
    drop(streams);
}
