//! Reloading the config without a restart (issue 17): SIGHUP to a real
//! `grantmux serve`, with a caller added and an app's secret rotated, over a
//! keep-alive connection opened before the reload; then a bad file, refused
//! with the running config kept.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use grantmux::sim::{Sim, SimApp, SimConfig, DEFAULT_ACCOUNT_ID};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use common::client::{http, send};
use common::process::Grantmux;

const OLD_KEY: &str = "caller-key-old-0123456789";
const NEW_KEY: &str = "caller-key-new-0123456789";

/// The app the first caller uses; its secret never changes.
const STEADY: (&str, &str) = ("steady-app", "steady-secret");
/// The app whose secret is rotated: Zoom already wants `rotated-secret`, and
/// the file grantmux starts with still holds the old one.
const ROTATED: (&str, &str) = ("rotated-app", "rotated-secret");

fn config(sim_url: &str, with_new_caller: bool) -> String {
    let (steady, _) = STEADY;
    let (rotated, _) = ROTATED;
    let mut text = format!(
        r#"
[listen]
proxy = "127.0.0.1:0"
admin = "127.0.0.1:0"
[zoom]
api_url = "{sim_url}"
oauth_url = "{sim_url}"
[[app]]
client_id = "{steady}"
client_secret_env = "STEADY_SECRET"
[[app]]
client_id = "{rotated}"
client_secret_file = "rotated-secret"
[store]
backend = "memory"
[[caller]]
name = "old"
key_env = "OLD_KEY"
grant = {{ client_id = "{steady}", account_id = "{DEFAULT_ACCOUNT_ID}" }}
"#
    );
    if with_new_caller {
        text.push_str(&format!(
            r#"[[caller]]
name = "new"
key_env = "NEW_KEY"
grant = {{ client_id = "{rotated}", account_id = "{DEFAULT_ACCOUNT_ID}" }}
"#
        ));
    }
    text
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("file written");
}

/// Polls the process's log until `text` appears.
async fn logged(gmx: &Grantmux, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !gmx.logged(text) {
        assert!(
            Instant::now() < deadline,
            "never logged {text:?}: {:#?}",
            gmx.log()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn sighup_applies_callers_and_secrets_and_refuses_a_bad_file() {
    let sim = Sim::start(SimConfig {
        apps: [STEADY, ROTATED]
            .into_iter()
            .map(|(id, secret)| SimApp {
                client_id: id.into(),
                client_secret: secret.into(),
                public: false,
            })
            .collect(),
        ..SimConfig::default()
    })
    .await
    .expect("sim starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("proxy.toml");
    write(dir.path(), "proxy.toml", &config(&sim.base_url(), false));
    write(dir.path(), "rotated-secret", "the-old-secret\n");
    let env = [
        ("STEADY_SECRET", STEADY.1),
        ("OLD_KEY", OLD_KEY),
        ("NEW_KEY", NEW_KEY),
    ];
    let gmx = Grantmux::start(&path, &env);
    let me = format!("http://{}/v2/users/me", gmx.proxy);

    // One keep-alive connection, opened before any reload.
    let stream = tokio::net::TcpStream::connect(gmx.proxy)
        .await
        .expect("connected");
    let (mut conn, driver) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(driver);
    let on_kept_connection = |conn: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>| {
        let req = Request::builder()
            .uri("/v2/users/me")
            .header("host", "grantmux")
            .header("authorization", format!("Bearer {OLD_KEY}"))
            .body(Full::new(Bytes::new()))
            .expect("request");
        let sent = conn.send_request(req);
        async move {
            let resp = sent.await.expect("the kept connection answers");
            let status = resp.status();
            resp.into_body().collect().await.expect("body");
            status
        }
    };
    assert_eq!(on_kept_connection(&mut conn).await, StatusCode::OK);

    let client = http();
    let as_new = [("authorization", format!("Bearer {NEW_KEY}"))];
    let as_new: Vec<(&str, &str)> = as_new.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _) = send(&client, Method::GET, &me, &as_new, "")
        .await
        .expect("answer");
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no such caller yet");

    // The new caller, and the rotated secret in its file.
    write(dir.path(), "proxy.toml", &config(&sim.base_url(), true));
    write(dir.path(), "rotated-secret", &format!("{}\n", ROTATED.1));
    gmx.signal("-HUP");
    logged(&gmx, "config reloaded").await;
    let (status, body) = send(&client, Method::GET, &me, &as_new, "")
        .await
        .expect("answer");
    assert_eq!(
        status,
        StatusCode::OK,
        "the new caller's grant was minted with the rotated secret: {body:?}"
    );
    assert_eq!(
        on_kept_connection(&mut conn).await,
        StatusCode::OK,
        "the connection opened before the reload still serves"
    );

    // A bad file: refused, naming the key, and nothing changes.
    let bad = format!(
        "{}[rate_limit]\nplan = \"gold\"\n",
        config(&sim.base_url(), false)
    );
    write(dir.path(), "proxy.toml", &bad);
    gmx.signal("-HUP");
    logged(&gmx, "config reload refused").await;
    assert!(gmx.logged("rate_limit.plan"), "{:#?}", gmx.log());
    let (status, _) = send(&client, Method::GET, &me, &as_new, "")
        .await
        .expect("answer");
    assert_eq!(status, StatusCode::OK, "the running config was kept");
    assert_eq!(on_kept_connection(&mut conn).await, StatusCode::OK);

    // A listener change is named and not applied; the process keeps running.
    let moved =
        config(&sim.base_url(), true).replace("admin = \"127.0.0.1:0\"", "admin = \"127.0.0.1:1\"");
    write(dir.path(), "proxy.toml", &moved);
    gmx.signal("-HUP");
    logged(&gmx, "need a restart").await;
    assert_eq!(on_kept_connection(&mut conn).await, StatusCode::OK);

    let (status, metrics) = send(
        &client,
        Method::GET,
        &format!("http://{}/metrics", gmx.admin),
        &[],
        "",
    )
    .await
    .expect("metrics");
    assert_eq!(status, StatusCode::OK);
    let metrics = String::from_utf8_lossy(&metrics);
    for line in [
        "grantmux_config_reloads_total{result=\"ok\"} 1",
        "grantmux_config_reloads_total{result=\"refused\"} 1",
        "grantmux_config_reloads_total{result=\"restart_needed\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    let (code, _) = gmx.stop("-TERM");
    assert_eq!(code, Some(0));
}
