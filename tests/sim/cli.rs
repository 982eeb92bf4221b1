//! The built binary: `grantmux sim` starts, serves, and exits 0 on SIGTERM.

use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_grantmux");
/// Generous: the binary may be starting on a busy 2-core machine.
const PATIENCE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn binary_serves_stats_and_stops_cleanly_on_sigterm() {
    let mut child = Command::new(BIN)
        .args(["sim", "--listen", "127.0.0.1:0", "--rate-limit-light", "5"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let base = tokio::time::timeout(PATIENCE, async {
        while let Some(line) = lines.next_line().await.expect("stdout line") {
            if let Some(url) = line.strip_prefix("listening on ") {
                return url.to_owned();
            }
        }
        panic!("no listening line");
    })
    .await
    .expect("listening line in time");
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");

    let http = client(None);
    let stats = http
        .request(get(&format!("{base}/_sim/stats")))
        .await
        .expect("stats answer");
    assert_eq!(stats.status(), 200);
    let body = stats
        .into_body()
        .collect()
        .await
        .expect("stats body")
        .to_bytes();
    let stats: serde_json::Value = serde_json::from_slice(&body).expect("stats JSON");
    assert_eq!(stats["api_requests"], 0);

    let pid = child.id().expect("pid").to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().await;
    assert!(killed.expect("kill runs").success());
    let status = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .expect("exits in time");
    assert!(status.expect("exit status").success());
}

#[tokio::test]
async fn binary_prints_the_answer_delay_opaque_tokens_and_rate_limits_in_its_summary() {
    let mut child = Command::new(BIN)
        .args(["sim", "--listen", "127.0.0.1:0"])
        .args(["--token-answer-delay", "1500ms", "--opaque-tokens"])
        .args(["--daily-limit-light", "6000", "--rate-limit-resource", "20"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut summary = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        while let Some(line) = lines.next_line().await.expect("stdout line") {
            let last = line.starts_with("api faults:");
            summary.push(line);
            if last {
                return;
            }
        }
        panic!("no api faults line: {summary:#?}");
    })
    .await
    .expect("summary in time");
    let has = |text: &str| summary.iter().any(|l| l.contains(text));
    assert!(
        has("token faults: latency 0s, answer delay 1s 500ms,"),
        "{summary:#?}"
    );
    assert!(
        has("api faults: latency 0s, answer delay 0s,"),
        "{summary:#?}"
    );
    assert!(has("opaque access tokens: true"), "{summary:#?}");
    let rates = "rate limits: light 30/s, medium 20/s, heavy 10/s, resource-intensive 20/min";
    assert!(has(rates), "{summary:#?}");
    let daily = "daily limits: light 6000; meeting writes per user per day: 100";
    assert!(has(daily), "{summary:#?}");
}

#[tokio::test]
async fn binary_refuses_a_bad_duration() {
    let out = Command::new(BIN)
        .args([
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--token-answer-delay",
            "soon",
        ])
        .output()
        .await
        .expect("binary runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--token-answer-delay"), "{stderr}");
}

#[tokio::test]
async fn binary_refuses_a_bad_fraction() {
    let out = Command::new(BIN)
        .args(["sim", "--listen", "127.0.0.1:0", "--api-error-rate", "1.5"])
        .output()
        .await
        .expect("binary runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a fraction"));
}

fn get(url: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(url)
        .body(Full::default())
        .expect("request")
}
