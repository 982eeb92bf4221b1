//! A minimal, fixed-answer stand-in for Zoom, fast enough never to be the limit in
//! `benches/compare.sh`: `GET` anything → a `/v2/users/me`-sized JSON answer;
//! `POST /oauth/token` → a Server-to-Server token that lasts a day.
//!
//! Run with: `cargo run --release --example bench_upstream -- 127.0.0.1:9901`

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The size and shape of the simulator's `/v2/users/me` answer (379 bytes).
const USER: &str = r#"{"account_id":"sim-account","cluster":"sim","created_at":"2026-01-01T00:00:00Z","dept":"","display_name":"Sim sim-user","email":"sim-user@sim.example","first_name":"Sim","id":"sim-user","language":"en-US","last_name":"sim-user","pmi":2543677858,"role_name":"Owner","status":"active","timezone":"UTC","type":2,"use_pmi":false,"user_created_at":"2026-01-01T00:00:00Z","verified":1}"#;
const TOKEN: &str = r#"{"access_token":"bench-real-access-token","token_type":"bearer","expires_in":86400,"scope":"user:read:admin","api_url":"http://127.0.0.1"}"#;

fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9901".into())
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // One thread, like the proxies in front of it.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve(addr))
}

async fn serve(addr: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service_fn(answer))
                .await;
        });
    }
}

async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = if req.uri().path() == "/oauth/token" {
        TOKEN
    } else {
        USER
    };
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    h.insert(
        "x-zm-trackingid",
        HeaderValue::from_static("v=2.0;clid=sim;rid=WEB_86A047E8446F51827A7DD201303E9326"),
    );
    Ok(resp)
}
