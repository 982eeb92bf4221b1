//! The real `grantmux` binary resolving Zoom's names through DNS, bypassing
//! `/etc/hosts`: `check` and `serve` with the TLS listener where the hosts file
//! sends `localhost` (127.0.0.1:P), the simulator on 127.0.0.2:P, and a fake
//! DNS server that alone knows it (see `tests/proxy/dns.rs` for the setup).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use grantmux::sim::{Sim, SimConfig};
use http::Method;

mod common;

use common::dns::{FakeDns, TYPE_A};
use common::process::{Grantmux, CLIENT, SECRET};

const CALLER_KEY: &str = "dns-bypass-caller-key-0123456789";
const ZOOM: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// `proxy.toml`: Zoom at `https://localhost:{port}`, the TLS listener on
/// 127.0.0.1:{port}, Zoom's names asked of `dns`, a memory store and a caller.
fn config(dir: &Path, port: u16, ca: Option<&Path>, dns: SocketAddr) -> PathBuf {
    let ca = ca.map_or_else(String::new, |p| format!("ca_file = \"{}\"", p.display()));
    let text = format!(
        r#"
[listen]
proxy = "127.0.0.1:0"
admin = "127.0.0.1:0"
tls = "127.0.0.1:{port}"
[zoom]
api_url = "https://localhost:{port}"
oauth_url = "https://localhost:{port}"
dns_servers = ["{dns}"]
{ca}
[[app]]
client_id = "{CLIENT}"
client_secret_env = "SIM_SECRET"
[store]
backend = "memory"
[[caller]]
name = "legacy"
key_env = "CALLER_KEY"
grant = {{ client_id = "{CLIENT}", account_id = "sim-account" }}
"#
    );
    let path = dir.join("proxy.toml");
    std::fs::write(&path, text).expect("config");
    path
}

/// `grantmux check`, off the runtime's threads: the fake DNS server answers on them.
async fn check(config: PathBuf) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_grantmux"))
            .args(["check", "--config"])
            .arg(&config)
            .env_clear()
            .env("SIM_SECRET", SECRET)
            .env("CALLER_KEY", CALLER_KEY)
            .output()
            .expect("grantmux check")
    })
    .await
    .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_resolves_through_dns_and_refuses_only_a_real_loop() {
    let dir = tempfile::tempdir().expect("tempdir");
    // No simulator is needed to check; any port will do.
    let port = 18_443;
    let zoom = FakeDns::start(ZOOM).await;
    let out = check(config(dir.path(), port, None, zoom.addr)).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
    assert!(zoom.asked().contains(&("localhost".to_owned(), TYPE_A)));

    // DNS itself pointing the name at grantmux's TLS listener: a loop.
    let itself = FakeDns::start(Ipv4Addr::LOCALHOST).await;
    let out = check(config(dir.path(), port, None, itself.addr)).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "zoom.api_url (localhost) resolves through DNS to 127.0.0.1:{port}"
        )),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reaches_zoom_through_dns_while_the_hosts_file_points_at_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Sim::start(SimConfig {
        listen: SocketAddr::from((ZOOM, 0)),
        tls: Some(dir.path().join("sim-ca.pem")),
        ..SimConfig::default()
    })
    .await
    .expect("sim");
    let port = sim.addr().port();
    assert_eq!(sim.base_url(), format!("https://localhost:{port}"));
    let dns = FakeDns::start(ZOOM).await;
    let ca = sim.ca_pem_path().expect("sim CA");
    let path = config(dir.path(), port, Some(&ca), dns.addr);
    let gmx =
        tokio::task::spawn_blocking(move || Grantmux::start(&path, &[("CALLER_KEY", CALLER_KEY)]))
            .await
            .expect("join");

    let client = common::client::http();
    let answer = common::client::send(
        &client,
        Method::GET,
        &format!("http://{}/v2/users/me", gmx.proxy),
        &[("authorization", &format!("Bearer {CALLER_KEY}"))],
        "",
    )
    .await
    .expect("grantmux answers");
    assert_eq!(answer.0, 200, "{:?}", answer.1);
    assert_eq!(sim.stats().token_requests.account_credentials, 1);
    assert!(dns.asked().contains(&("localhost".to_owned(), TYPE_A)));

    let (code, log) = tokio::task::spawn_blocking(move || gmx.stop("-TERM"))
        .await
        .expect("join");
    assert_eq!(code, Some(0), "{log:#?}");
    let started = log
        .iter()
        .find(|l| l.contains("grantmux started"))
        .expect("started line");
    assert!(started.contains(&dns.addr.to_string()), "{started}");
    sim.shutdown().await;
}
