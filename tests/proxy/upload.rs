//! Streamed uploads: `zoom.response_timeout` runs from the body's end, and an
//! upload that stops moving is cut off after `proxy.upload_stall_timeout`.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use grantmux::sim::SimConfig;
use http::{Method, Request, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::mpsc;

use crate::support::{self, S2S_KEY};

const CHUNK: usize = 100 * 1024;
const CHUNKS: usize = 30;

/// POSTs a body of `CHUNKS` × `CHUNK` bytes (3 MB, streamed: above the replay
/// limit) fed through the returned sender, to the simulator's echo route.
fn upload(
    url: String,
) -> (
    mpsc::Sender<Bytes>,
    tokio::task::JoinHandle<(StatusCode, serde_json::Value)>,
) {
    let (tx, rx) = mpsc::channel::<Bytes>(1);
    let frames = Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((Ok::<_, Infallible>(Frame::data(chunk)), rx))
    }));
    let req = Request::builder()
        .method(Method::POST)
        .uri(url)
        .header("authorization", format!("Bearer {S2S_KEY}"))
        .header("content-length", (CHUNK * CHUNKS).to_string())
        .body(StreamBody::new(frames))
        .expect("request");
    let client = Client::builder(TokioExecutor::new()).build_http();
    let answer = tokio::spawn(async move {
        let resp = client.request(req).await.expect("an answer");
        let status = resp.status();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, serde_json::from_slice(&body).unwrap_or_default())
    });
    (tx, answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_steady_upload_longer_than_the_response_timeout_succeeds() {
    let h = support::start(SimConfig::default(), |c| {
        c.zoom.response_timeout = Duration::from_secs(1);
    })
    .await;
    let (tx, answer) = upload(h.proxy_url("/v2/_echo/upload"));
    // 3 MB over about 2.4 s: twice the response timeout, and never a stall.
    for _ in 0..CHUNKS {
        tx.send(Bytes::from(vec![b'x'; CHUNK])).await.expect("sent");
        tokio::time::sleep(Duration::from_millis(80)).await;
    }
    drop(tx);
    let (status, echoed) = answer.await.expect("joined");
    assert_eq!(status, 200, "{echoed}");
    assert_eq!(echoed["body_len"], (CHUNK * CHUNKS) as u64, "{echoed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_that_stops_moving_gets_408() {
    let h = support::start(SimConfig::default(), |c| {
        c.proxy.upload_stall_timeout = Duration::from_millis(300);
        c.zoom.response_timeout = Duration::from_secs(60);
    })
    .await;
    let (tx, answer) = upload(h.proxy_url("/v2/_echo/upload"));
    tx.send(Bytes::from(vec![b'x'; CHUNK])).await.expect("sent");
    // The caller keeps the upload open and sends nothing more.
    let (status, body) = tokio::time::timeout(Duration::from_secs(30), answer)
        .await
        .expect("answered before the response timeout")
        .expect("joined");
    assert_eq!(status, 408, "{body}");
    assert_eq!(body["code"], 408, "{body}");
    drop(tx);
}
