//! Interception (issue 15): `CONNECT` through `listen.forward_proxy` and the
//! SNI listener `listen.tls`, answering as Zoom's hosts under grantmux's own CA.

use std::sync::Arc;

use bytes::Bytes;
use grantmux::harness::Harness;
use grantmux::sim::SimConfig;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{self, S2S_KEY};

async fn start(tweak: impl FnOnce(&mut grantmux::config::Config)) -> Harness {
    support::start(SimConfig::default(), |c| {
        c.listen.forward_proxy = Some("127.0.0.1:0".parse().expect("addr"));
        c.listen.tls = Some("127.0.0.1:0".parse().expect("addr"));
        tweak(c);
    })
    .await
}

/// Sends `CONNECT target` to the forward proxy; returns the stream and the
/// answer's head (status line and headers).
async fn connect(h: &Harness, target: &str) -> (TcpStream, String) {
    let addr = h.gmx.forward_proxy_addr.expect("forward proxy listening");
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).await.expect("read");
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&answer));
        answer.push(byte[0]);
    }
    (stream, String::from_utf8_lossy(&answer).into_owned())
}

/// A TLS client that trusts only grantmux's interception CA, offering `alpn`.
async fn tls<IO>(
    h: &Harness,
    io: IO,
    name: &str,
    alpn: &[&[u8]],
) -> std::io::Result<tokio_rustls::client::TlsStream<IO>>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let pem = h.gmx.intercept_ca_pem.clone().expect("an interception CA");
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        roots.add(cert.expect("pem")).expect("add root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from(name.to_owned()).expect("name");
    connector.connect(name, io).await
}

/// One HTTP/1.1 request over `io`; status and body.
async fn request<IO>(io: IO, req: Request<Full<Bytes>>) -> (u16, Bytes)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.expect("answer");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, body)
}

fn get(host: &str, path: &str, bearer: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(Method::GET)
        .uri(path)
        .header("host", host)
        .header("authorization", format!("Bearer {bearer}"))
        .body(Full::new(Bytes::new()))
        .expect("request")
}

#[tokio::test]
async fn connect_to_a_host_not_listed_is_refused_with_403_naming_the_setting() {
    let h = start(|_| {}).await;
    for target in [
        "evil.example:443",
        "zoom.us:8443",
        "api.zoom.us.evil.example:443",
    ] {
        let (_, head) = connect(&h, target).await;
        assert!(head.starts_with("HTTP/1.1 403"), "{target}: {head}");
    }
    // The body says what would allow it.
    let addr = h.gmx.forward_proxy_addr.expect("listening");
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut all = String::new();
    stream.read_to_string(&mut all).await.expect("read");
    assert!(all.contains("intercept.tunnel"), "{all}");
    assert!(all.contains("evil.example:443"), "{all}");
    // Plain requests are no proxy requests either.
    let plain = h
        .call(Method::GET, &format!("http://{addr}/v2/users/me"), &[], "")
        .await
        .expect("answer");
    assert_eq!(plain.status, 405);
    h.shutdown().await;
}

#[tokio::test]
async fn a_listed_tunnel_host_is_reached_untouched() {
    // A TCP echo service standing in for a system's other HTTPS dependency.
    let echo = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = echo.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let h = start(|c| {
        c.intercept.tunnel = vec![grantmux::config::TunnelRule {
            host: "localhost".into(),
            wildcard: false,
            port,
        }];
    })
    .await;
    let (mut stream, head) = connect(&h, &format!("localhost:{port}")).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // Bytes that are not TLS, not HTTP: passed through as they are.
    let payload = b"\x16\x03\x01 not zoom, not http \x00\xff";
    stream.write_all(payload).await.expect("write");
    let mut back = vec![0u8; payload.len()];
    stream.read_exact(&mut back).await.expect("echoed");
    assert_eq!(&back, payload);
    h.shutdown().await;
}

#[tokio::test]
async fn connect_to_api_zoom_us_serves_the_api_with_the_real_token_inside_tls() {
    let h = start(|_| {}).await;
    let (stream, head) = connect(&h, "api.zoom.us:443").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let tls = tls(&h, stream, "api.zoom.us", &[b"http/1.1"])
        .await
        .expect("handshake");
    let (status, body) = request(tls, get("api.zoom.us", "/v2/users/me", S2S_KEY)).await;
    assert_eq!(status, 200, "{body:?}");
    let me: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert!(me["id"].is_string(), "{me}");
    assert_eq!(h.sim.stats().token_requests.account_credentials, 1);
    h.shutdown().await;
}

#[tokio::test]
async fn connect_to_zoom_us_serves_the_token_endpoint_over_h2() {
    let h = start(|_| {}).await;
    let (stream, head) = connect(&h, "zoom.us:443").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let tls = tls(&h, stream, "zoom.us", &[b"h2", b"http/1.1"])
        .await
        .expect("handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(tls),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    let basic = support::b64(&format!("{}:{}", support::CLIENT, support::SECRET));
    let req = Request::builder()
        .method(Method::POST)
        .uri("https://zoom.us/oauth/token")
        .header("authorization", format!("Basic {basic}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(format!(
            "grant_type=account_credentials&account_id={}",
            support::ACCOUNT
        ))))
        .expect("request");
    let resp = sender.send_request(req).await.expect("answer");
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let answer: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let token = answer["access_token"].as_str().expect("a virtual token");
    assert!(token.starts_with("eyJ"), "{answer}");
    // Following `api_url` brings an intercepted caller back the same way.
    assert_eq!(answer["api_url"], "https://api.zoom.us", "{answer}");
    h.shutdown().await;
}

#[tokio::test]
async fn the_tls_listener_answers_as_zoom_by_sni_and_refuses_other_names() {
    let h = start(|_| {}).await;
    let addr = h.gmx.tls_addr.expect("tls listening");
    let stream = TcpStream::connect(addr).await.expect("connect");
    let tls_stream = tls(&h, stream, "api.zoom.us", &[b"http/1.1"])
        .await
        .expect("handshake");
    let (status, body) = request(tls_stream, get("api.zoom.us", "/v2/users/me", S2S_KEY)).await;
    assert_eq!(status, 200, "{body:?}");
    // A name grantmux does not answer as: no certificate, no handshake.
    let stream = TcpStream::connect(addr).await.expect("connect");
    assert!(tls(&h, stream, "example.com", &[b"http/1.1"])
        .await
        .is_err());
    h.shutdown().await;
}
