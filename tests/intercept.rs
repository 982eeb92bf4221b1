//! Interception with a real `grantmux serve` process: the CA made once in the
//! state folder with its key private (0600, in no log), `grantmux ca` printing
//! the same certificate, and a client with only `HTTPS_PROXY` and that CA
//! reaching the API as `api.zoom.us`.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use grantmux::sim::{Sim, SimConfig};
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;

use common::process::Grantmux;

const CALLER_KEY: &str = "intercept-caller-key-0123456789";

fn config(dir: &std::path::Path, sim_url: &str) -> std::path::PathBuf {
    let path = dir.join("proxy.toml");
    let text = format!(
        r#"
[listen]
proxy = "127.0.0.1:0"
admin = "127.0.0.1:0"
forward_proxy = "127.0.0.1:0"
[zoom]
api_url = "{sim_url}"
oauth_url = "{sim_url}"
[[app]]
client_id = "{}"
client_secret_env = "SIM_SECRET"
[store]
backend = "file"
path = "{}"
[[caller]]
name = "legacy"
key_env = "CALLER_KEY"
grant = {{ client_id = "{}", account_id = "sim-account" }}
"#,
        common::process::CLIENT,
        dir.join("state").display(),
        common::process::CLIENT,
    );
    std::fs::write(&path, text).expect("config");
    path
}

fn grantmux_ca(config: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_grantmux"))
        .args(["ca", "--config"])
        .arg(config)
        .env("SIM_SECRET", common::process::SECRET)
        .env("CALLER_KEY", CALLER_KEY)
        .output()
        .expect("grantmux ca");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_https_proxy_with_only_the_ca_trusted_a_client_reaches_api_zoom_us() {
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path(), &sim.base_url());
    let gmx = Grantmux::start(&config, &[("CALLER_KEY", CALLER_KEY)]);

    // The CA was made once, in the state folder, its key readable by its owner only.
    let state = dir.path().join("state");
    let key_path = state.join("intercept-ca.key");
    let mode = std::fs::metadata(&key_path)
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "key file mode {mode:o}");
    let cert_pem = std::fs::read_to_string(state.join("intercept-ca.crt")).expect("cert");
    assert_eq!(
        grantmux_ca(&config),
        cert_pem,
        "`grantmux ca` prints the CA in use"
    );

    // A client that knows only HTTPS_PROXY and the CA, as Node or requests would.
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(cert_pem.as_bytes()) {
        roots.add(cert.expect("pem")).expect("root");
    }
    let tls_config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut tcp = TcpStream::connect(gmx.forward_proxy.expect("forward proxy logged"))
        .await
        .expect("connect");
    tcp.write_all(b"CONNECT api.zoom.us:443 HTTP/1.1\r\nHost: api.zoom.us:443\r\n\r\n")
        .await
        .expect("write");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        assert_eq!(tcp.read(&mut b).await.expect("read"), 1, "{head:?}");
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let tls = tokio_rustls::TlsConnector::from(Arc::new(tls_config))
        .connect(ServerName::try_from("api.zoom.us").expect("name"), tcp)
        .await
        .expect("grantmux answers as api.zoom.us under its CA");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("http");
    tokio::spawn(conn);
    let req = Request::builder()
        .method(Method::GET)
        .uri("/v2/users/me")
        .header("host", "api.zoom.us")
        .header("authorization", format!("Bearer {CALLER_KEY}"))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let resp = sender.send_request(req).await.expect("answer");
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert!(
        String::from_utf8_lossy(&body).contains("\"id\""),
        "{body:?}"
    );

    let (code, log) = tokio::task::spawn_blocking(move || gmx.stop("-TERM"))
        .await
        .expect("join");
    assert_eq!(code, Some(0), "{log:#?}");
    // The key's body appears in no log line.
    let key_pem = std::fs::read_to_string(&key_path).expect("key");
    let key_line = key_pem
        .lines()
        .find(|l| !l.starts_with("-----") && l.len() > 20)
        .expect("a base64 line");
    assert!(
        !log.iter().any(|l| l.contains(key_line)),
        "the CA key was logged"
    );
    assert!(log.iter().any(|l| l.contains("forward_proxy")), "{log:#?}");
    sim.shutdown().await;
}
