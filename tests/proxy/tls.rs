//! Forwarding to an HTTPS upstream through rustls, trusting `zoom.ca_file`.

use grantmux::sim::{Sim, SimConfig};
use sha2::Digest;
use tracing::Level;

use crate::common::logs::capture;
use crate::support::{self, get, S2S_KEY};

fn tls_sim(dir: &tempfile::TempDir, name: &str) -> SimConfig {
    SimConfig {
        tls: Some(dir.path().join(name)),
        ..SimConfig::default()
    }
}

/// `sim` with rate limits roomy enough for the forwarding suite's calls.
fn suite_sim(sim: SimConfig) -> SimConfig {
    SimConfig {
        rate_limits: Some(grantmux::sim::RateLimits {
            light_per_second: 1000,
            medium_per_second: 1000,
            heavy_per_second: 1000,
            ..grantmux::sim::RateLimits::default()
        }),
        ..sim
    }
}

#[tokio::test]
async fn forwarding_works_over_tls_with_the_configured_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = support::start(tls_sim(&dir, "ca.pem"), |_| {}).await;
    assert!(
        h.sim.base_url().starts_with("https://"),
        "{}",
        h.sim.base_url()
    );
    let body = b"{\"topic\":\"over tls\"}".to_vec();
    let a = h
        .call(
            http::Method::POST,
            &h.proxy_url("/v2/_echo/tls?x=1"),
            &[("authorization", &format!("Bearer {S2S_KEY}"))],
            body.clone(),
        )
        .await
        .expect("answer");
    assert_eq!(a.status, 200, "{:?}", a.body);
    let echo = a.json();
    assert_eq!(echo["path"], "/v2/_echo/tls");
    assert_eq!(echo["query"], "x=1");
    let digest: String = sha2::Sha256::digest(&body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(echo["body_sha256"], digest);
    // The token mint went over TLS too.
    assert_eq!(h.sim.stats().token_requests.account_credentials, 1);
    h.shutdown().await;
}

#[tokio::test]
async fn the_forwarding_suite_passes_over_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = suite_sim(tls_sim(&dir, "ca.pem"));
    let h = support::start(sim, |_| {}).await;
    crate::forwarding::methods_paths_queries_and_bodies(&h).await;
    crate::forwarding::header_rules(&h).await;
    h.shutdown().await;
}

/// An origin without HTTP/2: bodiless calls take the pool's own HTTP/1.1
/// exchange over TLS, calls with bodies hyper's, on connections they hand each
/// other.
#[tokio::test]
async fn the_forwarding_suite_passes_over_tls_without_http2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = suite_sim(SimConfig {
        tls_http1_only: true,
        ..tls_sim(&dir, "ca.pem")
    });
    let h = support::start(sim, |_| {}).await;
    crate::forwarding::methods_paths_queries_and_bodies(&h).await;
    crate::forwarding::header_rules(&h).await;
    // Sequential calls: one connection carried them all, both ways.
    let m = support::metrics(&h).await;
    assert_eq!(
        support::sample(&m, "grantmux_upstream_connections_total"),
        Some(1.0)
    );
    h.shutdown().await;
}

#[tokio::test]
async fn a_wrong_ca_fails_with_502_and_a_clear_log_line() {
    let (logs, _guard) = capture(Level::DEBUG);
    let dir = tempfile::tempdir().expect("tempdir");
    // Another simulator's CA: a valid certificate that did not sign our upstream's.
    let other = Sim::start(tls_sim(&dir, "other-ca.pem"))
        .await
        .expect("other sim");
    let wrong_ca = other.ca_pem_path().expect("ca path");
    // Tokens come from a plain loopback simulator; the API sits behind TLS.
    let tokens = Sim::start(SimConfig::default()).await.expect("token sim");
    let oauth_url: http::Uri = tokens.base_url().parse().expect("uri");
    let h = support::start(tls_sim(&dir, "ca.pem"), move |c| {
        c.zoom.ca_file = Some(wrong_ca);
        c.zoom.oauth_url = oauth_url;
    })
    .await;
    let a = get(&h, "/v2/users/me", S2S_KEY).await;
    assert_eq!(a.status, 502, "{:?}", a.body);
    assert_eq!(
        a.json(),
        serde_json::json!({"code":502,"message":"grantmux: Zoom could not be reached."})
    );
    assert_eq!(
        h.sim.stats().api_requests,
        0,
        "no request crossed the untrusted connection"
    );
    let text = logs.text();
    let line = text
        .lines()
        .find(|l| l.contains("request failed") && l.contains("status=502"))
        .unwrap_or_else(|| panic!("no 502 log line:\n{text}"));
    assert!(
        line.contains("certificate") || line.contains("UnknownIssuer"),
        "not a clear TLS cause: {line}"
    );
    h.shutdown().await;
    other.shutdown().await;
    tokens.shutdown().await;
}

#[tokio::test]
async fn a_wrong_ca_on_the_token_endpoint_means_no_token_and_503() {
    let (logs, _guard) = capture(Level::DEBUG);
    let dir = tempfile::tempdir().expect("tempdir");
    let other = Sim::start(tls_sim(&dir, "other-ca.pem"))
        .await
        .expect("other sim");
    let wrong_ca = other.ca_pem_path().expect("ca path");
    let h = support::start(tls_sim(&dir, "ca.pem"), move |c| {
        c.zoom.ca_file = Some(wrong_ca)
    })
    .await;
    let a = get(&h, "/v2/users/me", S2S_KEY).await;
    assert_eq!(a.status, 503, "{:?}", a.body);
    // The certificate error is in the log, never in the caller's answer.
    assert_eq!(
        a.json(),
        serde_json::json!({
            "code": 503,
            "message": "grantmux: no valid Zoom access token is available right now; try again shortly."
        })
    );
    assert_eq!(h.sim.stats().token_requests.account_credentials, 0);
    let text = logs.text();
    assert!(
        text.contains("refresh failed") && text.contains("certificate"),
        "{text}"
    );
    h.shutdown().await;
    other.shutdown().await;
}

#[tokio::test]
async fn a_cold_storm_over_http2_opens_one_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = std::sync::Arc::new(support::start(tls_sim(&dir, "ca.pem"), |_| {}).await);
    // The simulator offers h2 by ALPN: the first connect finds that out while the
    // rest wait, then every request shares that connection.
    let failures = support::storm(&h, 200, S2S_KEY).await;
    assert!(failures.is_empty(), "{failures:?}");
    let m = support::metrics(&h).await;
    assert_eq!(
        support::sample(&m, "grantmux_upstream_connections_total"),
        Some(1.0)
    );
    assert_eq!(h.sim.stats().api_requests, 200);
}
