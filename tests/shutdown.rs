//! A real `grantmux serve` process: SIGTERM lets slow in-flight requests finish, then exits 0.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use grantmux::sim::{Faults, Sim, SimConfig};
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const CALLER_KEY: &str = "shutdown-test-caller-key";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_and_exits_0() {
    let sim = Sim::start(SimConfig {
        api_faults: Faults {
            latency: Duration::from_millis(1500),
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .await
    .expect("sim");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("proxy.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[listen]
proxy = "127.0.0.1:0"
admin = "127.0.0.1:0"
[zoom]
api_url = "{base}"
oauth_url = "{base}"
[[app]]
client_id = "sim-client"
client_secret_env = "SIM_SECRET"
[store]
backend = "memory"
[[caller]]
name = "worker"
key_env = "CALLER_KEY"
grant = {{ client_id = "sim-client", account_id = "sim-account" }}
"#,
            base = sim.base_url()
        ),
    )
    .expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_grantmux"))
        .args(["--log-format", "json", "serve", "--config"])
        .arg(&config)
        .env("SIM_SECRET", "sim-secret")
        .env("CALLER_KEY", CALLER_KEY)
        .env("GRANTMUX_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("grantmux starts");
    let stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut lines = stderr.lines();
    let proxy = loop {
        let line = lines
            .next()
            .expect("grantmux logs its start")
            .expect("utf-8");
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if v["fields"]["message"] == "grantmux started" {
            break v["fields"]["proxy"]
                .as_str()
                .expect("proxy address")
                .to_owned();
        }
    };
    // Keep draining stderr so the child never blocks on a full pipe.
    let log = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let in_flight: Vec<_> = (0..3)
        .map(|_| {
            let req = Request::get(format!("http://{proxy}/v2/users/me"))
                .header("authorization", format!("Bearer {CALLER_KEY}"))
                .body(Empty::new())
                .expect("request");
            let client = client.clone();
            tokio::spawn(async move {
                let resp = client.request(req).await.expect("answer despite SIGTERM");
                let status = resp.status();
                let body = resp.into_body().collect().await.expect("body").to_bytes();
                (status, body)
            })
        })
        .collect();
    // SIGTERM only once all three have reached Zoom and wait on its latency.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while sim.stats().api_requests < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "requests never reached the simulator"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    for task in in_flight {
        let (status, body) = task.await.expect("task");
        assert_eq!(status, 200, "{body:?}");
    }
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert_eq!(status.code(), Some(0), "exit status");
    let log = log.join().expect("log thread");
    assert!(
        log.iter().any(|l| l.contains("grantmux stopped")),
        "{log:?}"
    );
    sim.shutdown().await;
}
