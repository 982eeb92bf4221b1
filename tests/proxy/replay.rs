//! Request bodies on the replay path. A chunked body (no `Content-Length`) is
//! buffered like one with a length, so a call that loses a race with a rotation is
//! replayed with its body intact; one longer than `proxy.replay_body_limit` streams.

use grantmux::harness::Harness;
use grantmux::sim::SimConfig;
use http::Method;
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{self, b64, get, metrics, sample, ACCOUNT, CLIENT, S2S_KEY, SECRET};

/// POSTs `chunks` as a chunked body, straight on a socket (hyper's clients send a
/// length whenever they know it). Returns the status code.
async fn chunked_post(h: &Harness, path: &str, chunks: &[Vec<u8>]) -> u16 {
    let mut sock = TcpStream::connect(h.gmx.proxy_addr).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {S2S_KEY}\r\n\
         content-type: application/octet-stream\r\ntransfer-encoding: chunked\r\n\
         connection: close\r\n\r\n",
        h.gmx.proxy_addr
    );
    sock.write_all(head.as_bytes()).await.expect("head");
    for chunk in chunks {
        sock.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .expect("chunk size");
        sock.write_all(chunk).await.expect("chunk");
        sock.write_all(b"\r\n").await.expect("chunk end");
    }
    sock.write_all(b"0\r\n\r\n").await.expect("last chunk");
    let mut answer = Vec::new();
    sock.read_to_end(&mut answer).await.expect("answer");
    let text = String::from_utf8_lossy(&answer);
    text.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text}"))
}

/// Mints an S2S token straight at the simulator. In legacy mode that kills the
/// one grantmux holds, so grantmux's next call meets 401 code 124.
async fn mint_behind_grantmux(h: &Harness) {
    let basic = format!("Basic {}", b64(&format!("{CLIENT}:{SECRET}")));
    let a = h
        .call(
            Method::POST,
            &format!(
                "{}/oauth/token?grant_type=account_credentials&account_id={ACCOUNT}",
                h.sim.base_url()
            ),
            &[("authorization", &basic)],
            "",
        )
        .await
        .expect("sim answers");
    assert_eq!(a.status, 200, "{:?}", a.body);
}

fn body_of(chunks: &[Vec<u8>]) -> Vec<u8> {
    chunks.concat()
}

fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn start_legacy(replay_body_limit: usize) -> Harness {
    let sim = SimConfig {
        legacy_s2s: true,
        ..SimConfig::default()
    };
    let h = support::start(sim, move |c| c.proxy.replay_body_limit = replay_body_limit).await;
    assert_eq!(get(&h, "/v2/users/me", S2S_KEY).await.status, 200);
    h
}

#[tokio::test]
async fn a_chunked_body_is_replayed_intact_after_a_rotation() {
    let h = start_legacy(64 * 1024).await;
    mint_behind_grantmux(&h).await;
    let chunks = vec![b"{\"topic\":".to_vec(), vec![b'x'; 3000], b"}".to_vec()];
    let status = chunked_post(&h, "/v2/_echo/users/me/meetings", &chunks).await;
    assert_eq!(status, 200);
    let stats = h.sim.stats();
    assert_eq!(
        stats.api_401, 1,
        "the first send met the killed token: {stats:?}"
    );
    assert_eq!(stats.token_requests.account_credentials, 3, "{stats:?}");
    let seen = h.sim.last_api_request().expect("recorded");
    let body = body_of(&chunks);
    assert_eq!(seen.body_len, body.len() as u64);
    assert_eq!(seen.body_sha256, sha256_hex(&body));
    let m = metrics(&h).await;
    assert_eq!(
        sample(&m, "grantmux_replays_total{cause=\"refreshed\"}"),
        Some(1.0),
        "{m}"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_streams_whole_and_is_not_replayed() {
    let h = start_legacy(1024).await;
    // Fits nowhere in 1 KiB: it streams, and arrives byte for byte.
    let chunks: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 700]).collect();
    assert_eq!(
        chunked_post(&h, "/v2/_echo/users/me/meetings", &chunks).await,
        200
    );
    let seen = h.sim.last_api_request().expect("recorded");
    let body = body_of(&chunks);
    assert_eq!(seen.body_len, body.len() as u64);
    assert_eq!(seen.body_sha256, sha256_hex(&body));

    // With the token killed, Zoom's 401 reaches the caller: the body is gone.
    mint_behind_grantmux(&h).await;
    assert_eq!(
        chunked_post(&h, "/v2/_echo/users/me/meetings", &chunks).await,
        401
    );
    let m = metrics(&h).await;
    assert_eq!(
        sample(&m, "grantmux_replays_total{cause=\"refreshed\"}"),
        Some(0.0),
        "{m}"
    );
    h.shutdown().await;
}
