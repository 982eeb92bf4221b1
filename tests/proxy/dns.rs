//! Zoom's names resolved through DNS, bypassing `/etc/hosts` (issue 15, item 3).
//!
//! The setup the bypass exists for, on loopback: `/etc/hosts` maps `localhost`
//! (the simulator's TLS name, standing in for `api.zoom.us`) to 127.0.0.1, and
//! grantmux's own TLS listener takes 127.0.0.1:P, as `hostAliases` pointing
//! Zoom's names at a sidecar would. The simulator, "the real Zoom", listens on
//! 127.0.0.2:P, and only a fake DNS server says so.

use std::net::{Ipv4Addr, SocketAddr};

use grantmux::app::StartError;
use grantmux::config::Config;
use grantmux::harness::{Harness, HarnessError};
use grantmux::sim::SimConfig;

use crate::common::dns::{FakeDns, TYPE_A, TYPE_AAAA};
use crate::support::{self, get, S2S_KEY};

const ZOOM: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// The simulator over TLS on 127.0.0.2 (a port the kernel picks).
fn sim_on_127_0_0_2(dir: &tempfile::TempDir) -> SimConfig {
    SimConfig {
        listen: SocketAddr::from((ZOOM, 0)),
        tls: Some(dir.path().join("ca.pem")),
        ..SimConfig::default()
    }
}

/// The simulator's port P, from the `https://localhost:P` grantmux is given.
fn zoom_port(c: &Config) -> u16 {
    assert_eq!(
        c.zoom.api_url.host(),
        Some("localhost"),
        "{}",
        c.zoom.api_url
    );
    c.zoom.api_url.port_u16().expect("the simulator's port")
}

/// grantmux's TLS listener on 127.0.0.1:P, where `/etc/hosts` sends `localhost:P`.
fn tls_listener_where_hosts_points(c: &mut Config) {
    c.listen.tls = Some(SocketAddr::from(([127, 0, 0, 1], zoom_port(c))));
}

/// Starts the simulator on 127.0.0.2:P and grantmux with `tweak`, which may take
/// 127.0.0.1:P. The kernel chose P as free on 127.0.0.2 only: when another test
/// holds 127.0.0.1:P, grantmux cannot listen there, and both start again on
/// another P.
async fn start_beside_zoom(
    dir: &tempfile::TempDir,
    tweak: impl Fn(&mut Config),
) -> Result<Harness, HarnessError> {
    let mut tries = 0;
    loop {
        tries += 1;
        match Harness::start(sim_on_127_0_0_2(dir), &tweak).await {
            Err(HarnessError::Start(StartError::Bind { .. })) if tries < 10 => continue,
            started => return started,
        }
    }
}

fn expect_loop(started: Result<Harness, HarnessError>) -> String {
    match started {
        Ok(_) => panic!("grantmux started with its upstream pointing at itself"),
        Err(HarnessError::Start(error @ StartError::UpstreamLoop(_))) => error.to_string(),
        Err(other) => panic!("not refused as a loop: {other}"),
    }
}

#[tokio::test]
async fn with_the_tls_listener_zoom_is_reached_through_dns_not_the_hosts_file() {
    let dns = FakeDns::start(ZOOM).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let h = start_beside_zoom(&dir, |c| {
        support::with_callers(c);
        tls_listener_where_hosts_points(c);
        c.zoom.dns_servers = vec![dns.addr];
    })
    .await
    .expect("harness starts");
    let port = zoom_port(&h.config);
    assert_eq!(h.sim.addr(), SocketAddr::from((ZOOM, port)));
    assert_eq!(
        h.gmx.tls_addr,
        Some(SocketAddr::from(([127, 0, 0, 1], port)))
    );

    // A caller on the plain listener: the token mint and the API call both
    // reached the simulator, over TLS verified for the name `localhost`.
    let a = get(&h, "/v2/users/me", S2S_KEY).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(h.sim.stats().token_requests.account_credentials, 1);
    assert!(h.sim.stats().api_requests >= 1);
    let asked = dns.asked();
    for qtype in [TYPE_A, TYPE_AAAA] {
        assert!(
            asked.contains(&("localhost".to_owned(), qtype)),
            "{qtype}: {asked:?}"
        );
    }
    h.shutdown().await;
}

#[tokio::test]
async fn a_dns_answer_that_is_grantmux_itself_is_still_refused_as_a_loop() {
    let dns = FakeDns::start(Ipv4Addr::LOCALHOST).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let started = start_beside_zoom(&dir, |c| {
        tls_listener_where_hosts_points(c);
        c.zoom.dns_servers = vec![dns.addr];
    })
    .await;
    let message = expect_loop(started);
    assert!(
        message.contains("resolves through DNS to 127.0.0.1:"),
        "{message}"
    );
    assert!(message.contains("own tls listener"), "{message}");
    assert!(!dns.asked().is_empty());
}

/// Without the TLS listener and without `zoom.dns_servers`, nothing changed:
/// the system resolver reads `/etc/hosts`, `localhost:P` is 127.0.0.1:P, and
/// a listener there (here the plain one) is refused as a loop at start.
#[tokio::test]
async fn without_them_the_hosts_file_still_decides_and_the_loop_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let started = start_beside_zoom(&dir, |c| {
        c.listen.proxy = SocketAddr::from(([127, 0, 0, 1], zoom_port(c)));
    })
    .await;
    let message = expect_loop(started);
    assert!(
        message.contains("resolves through this host's resolver to 127.0.0.1:"),
        "{message}"
    );
}
