//! The connections grantmux keeps to Zoom's API: reused while Zoom keeps them
//! open, never reused once Zoom has closed them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use grantmux::harness::Harness;
use grantmux::sim::SimConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::support::{self, get, metrics, sample, storm, S2S_KEY};

const OPENED: &str = "grantmux_upstream_connections_total";

async fn opened(h: &Harness) -> f64 {
    sample(&metrics(h).await, OPENED).unwrap_or_else(|| panic!("no {OPENED} sample"))
}

#[tokio::test]
async fn sequential_calls_share_one_kept_alive_connection() {
    let h = Arc::new(support::start_default().await);
    for _ in 0..30 {
        let a = get(&h, "/v2/users/me", S2S_KEY).await;
        assert_eq!(a.status, 200, "{:?}", a.body);
    }
    assert_eq!(opened(&h).await, 1.0);
    assert_eq!(h.sim.stats().api_requests, 30);

    // A burst needs more connections; afterwards they are all reused.
    let failures = storm(&h, 16, S2S_KEY).await;
    assert!(failures.is_empty(), "{failures:?}");
    let after_burst = opened(&h).await;
    assert!((1.0..=17.0).contains(&after_burst), "{after_burst}");
    for _ in 0..30 {
        let a = get(&h, "/v2/users/me", S2S_KEY).await;
        assert_eq!(a.status, 200, "{:?}", a.body);
    }
    assert_eq!(
        opened(&h).await,
        after_burst,
        "an idle connection was not reused"
    );
}

/// A bare HTTP/1.1 upstream that answers every request `{}` and then closes the
/// connection: saying so with `connection: close`, or not (as an idle timeout on
/// Zoom's side would). Reports each close on the channel.
async fn closing_upstream(
    announce: bool,
) -> (SocketAddr, Arc<AtomicUsize>, mpsc::UnboundedReceiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let (closed_tx, closed_rx) = mpsc::unbounded_channel();
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            let closed_tx = closed_tx.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let close = if announce {
                    "connection: close\r\n"
                } else {
                    ""
                };
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n{close}\r\n{{}}"
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
                drop(sock);
                let _ = closed_tx.send(());
            });
        }
    });
    (addr, accepted, closed_rx)
}

async fn every_call_succeeds_when_zoom_closes_after_each_answer(announce: bool) {
    let (addr, accepted, mut closed) = closing_upstream(announce).await;
    let api: http::Uri = format!("http://{addr}").parse().expect("uri");
    // Tokens come from the simulator; the API is the closing upstream.
    let h = support::start(SimConfig::default(), move |c| c.zoom.api_url = api).await;
    for i in 0..20 {
        let a = get(&h, "/v2/users/me", S2S_KEY).await;
        assert_eq!(a.status, 200, "call {i}: {:?}", a.body);
        assert_eq!(&a.body[..], b"{}");
        // The upstream has closed this connection before the next call starts.
        closed.recv().await.expect("upstream running");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 20);
    assert_eq!(opened(&h).await, 20.0);
    h.shutdown().await;
}

#[tokio::test]
async fn a_connection_zoom_says_it_closes_is_not_reused() {
    every_call_succeeds_when_zoom_closes_after_each_answer(true).await;
}

#[tokio::test]
async fn a_kept_alive_connection_that_zoom_dropped_is_not_reused() {
    every_call_succeeds_when_zoom_closes_after_each_answer(false).await;
}
