//! HTTPS mode: a client trusting the written CA gets through; one without it does not.

use grantmux::sim::{Sim, SimConfig};
use http::Method;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::support::*;

#[tokio::test]
async fn https_works_with_the_written_ca_and_fails_without_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_path = dir.path().join("sim-ca.pem");
    let cfg = SimConfig {
        tls: Some(ca_path.clone()),
        ..SimConfig::default()
    };
    let sim = Sim::start(cfg).await.expect("sim starts");
    assert_eq!(sim.ca_pem_path(), Some(ca_path.clone()));
    let base = sim.base_url();
    assert_eq!(base, format!("https://localhost:{}", sim.addr().port()));

    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&ca_path).expect("CA file") {
        roots.add(cert.expect("PEM")).expect("CA cert");
    }
    let trusting = Fixture {
        sim: sim.clone(),
        http: client(Some(roots)),
        base: base.clone(),
    };
    let t = trusting.s2s().await;
    assert_eq!(t.status, 200);
    assert_eq!(t.json()["api_url"], serde_json::json!(base));
    let token = field(&t.json(), "access_token");
    assert_eq!(trusting.api_get("/v2/users/me", &token).await.status, 200);
    // 127.0.0.1 is in the certificate too.
    let by_ip = Fixture {
        base: format!("https://127.0.0.1:{}", sim.addr().port()),
        ..trusting
    };
    assert_eq!(by_ip.api_get("/v2/users/me", &token).await.status, 200);

    let untrusting = Fixture {
        sim: sim.clone(),
        http: client(None),
        base,
    };
    let err = untrusting
        .try_send(untrusting.request(Method::GET, "/_sim/stats", None, ""))
        .await;
    let err = err.expect_err("unknown CA is refused");
    assert!(
        err.contains("UnknownIssuer") || err.contains("certificate"),
        "{err}"
    );
    sim.shutdown().await;
}
