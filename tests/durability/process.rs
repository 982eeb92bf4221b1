//! A real `grantmux serve` process on a file store, in front of an in-process simulator.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use grantmux::sim::SimHandle;

pub(crate) const CLIENT: &str = "sim-client";
pub(crate) const SECRET: &str = "sim-secret";

/// A running grantmux process and the addresses it logged.
pub(crate) struct Gmx {
    pub(crate) child: Child,
    pub(crate) proxy: String,
    pub(crate) admin: String,
    log: Option<std::thread::JoinHandle<Vec<String>>>,
}

/// Writes the config for a file store in `state` pointing at `sim`.
pub(crate) fn write_config(dir: &Path, sim: &SimHandle) -> PathBuf {
    let path = dir.join("proxy.toml");
    let state = dir.join("state");
    std::fs::write(
        &path,
        format!(
            r#"
[listen]
proxy = "127.0.0.1:0"
admin = "127.0.0.1:0"
[zoom]
api_url = "{base}"
oauth_url = "{base}"
[[app]]
client_id = "{CLIENT}"
client_secret_env = "SIM_SECRET"
[store]
backend = "file"
path = "{state}"
[refresh]
backoff_min = "50ms"
backoff_max = "200ms"
"#,
            base = sim.base_url(),
            state = state.display()
        ),
    )
    .expect("config written");
    path
}

impl Gmx {
    /// Starts `grantmux serve`; `failpoint` arms `GRANTMUX_FAILPOINT`.
    pub(crate) fn start(config: &Path, failpoint: Option<&str>) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_grantmux"));
        cmd.args(["--log-format", "json", "serve", "--config"])
            .arg(config)
            .env("SIM_SECRET", SECRET)
            .env("GRANTMUX_LOG", "info")
            .env_remove("GRANTMUX_FAILPOINT")
            .stderr(Stdio::piped());
        if let Some(step) = failpoint {
            cmd.env("GRANTMUX_FAILPOINT", step);
        }
        let mut child = cmd.spawn().expect("grantmux starts");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let mut seen = Vec::new();
        let (proxy, admin) = loop {
            let Some(Ok(line)) = lines.next() else {
                panic!("grantmux exited before starting: {seen:#?}");
            };
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if v["fields"]["message"] == "grantmux started" {
                let f = &v["fields"];
                break (
                    f["proxy"].as_str().expect("proxy").to_owned(),
                    f["admin"].as_str().expect("admin").to_owned(),
                );
            }
            seen.push(line);
        };
        let log = std::thread::spawn(move || lines.map_while(Result::ok).collect());
        Self {
            child,
            proxy,
            admin,
            log: Some(log),
        }
    }

    /// `kill -<signal>` and wait for the exit; returns the exit code (None: killed by a signal).
    pub(crate) fn stop(mut self, signal: &str) -> (Option<i32>, Vec<String>) {
        let _ = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status();
        self.wait()
    }

    /// Waits for the process to end on its own (a failpoint abort).
    pub(crate) fn wait(&mut self) -> (Option<i32>, Vec<String>) {
        let status = self.child.wait().expect("wait");
        let log = self
            .log
            .take()
            .map(|l| l.join().unwrap_or_default())
            .unwrap_or_default();
        (status.code(), log)
    }

    /// Waits up to 20 s for the process to end on its own.
    pub(crate) async fn exited(&mut self) -> bool {
        for _ in 0..2000 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }
}

impl Drop for Gmx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
