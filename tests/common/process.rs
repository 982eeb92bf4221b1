//! A real `grantmux serve` process in front of an in-process simulator: its
//! `proxy.toml`, its start, the addresses it logs, its signals and its exit.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;

/// The simulator's app: [`write_config`] names it, [`Grantmux::start`] passes its secret.
pub(crate) const CLIENT: &str = "sim-client";
pub(crate) const SECRET: &str = "sim-secret";

/// Writes `dir/proxy.toml`: listeners on ports the kernel picks (the process
/// logs which), Zoom at the simulator's `sim_url`, the simulator's app with its
/// secret in `SIM_SECRET`; then `rest` (store, refresh, callers).
pub(crate) fn write_config(dir: &Path, sim_url: &str, rest: &str) -> PathBuf {
    let path = dir.join("proxy.toml");
    let config = format!(
        r#"
[listen]
proxy = "127.0.0.1:0"
admin = "127.0.0.1:0"
[zoom]
api_url = "{sim_url}"
oauth_url = "{sim_url}"
[[app]]
client_id = "{CLIENT}"
client_secret_env = "SIM_SECRET"
{rest}"#
    );
    std::fs::write(&path, config).expect("config written");
    path
}

/// How a `grantmux serve` that never started ended: its exit code (None: a
/// signal) and every line it wrote to stderr.
pub(crate) type Exited = (Option<i32>, Vec<String>);

/// A running `grantmux serve`, the addresses it logged and all it logs.
/// Killed on drop (SIGCONT first, in case it is stopped).
pub(crate) struct Grantmux {
    pub(crate) proxy: SocketAddr,
    pub(crate) admin: SocketAddr,
    /// `listen.forward_proxy`, when the config opens it.
    #[allow(dead_code)]
    pub(crate) forward_proxy: Option<SocketAddr>,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    drain: Option<JoinHandle<()>>,
}

impl Grantmux {
    /// Starts `grantmux --log-format json serve --config <config>` with
    /// `SIM_SECRET`, then `env` (no failpoint, `SSL_CERT_FILE` or `SSL_CERT_DIR`
    /// unless `env` sets one), and waits until it logs `grantmux started`.
    pub(crate) fn start(config: &Path, env: &[(&str, &str)]) -> Self {
        Self::try_start(config, env).unwrap_or_else(|(code, log)| {
            panic!("grantmux exited ({code:?}) before it started: {log:#?}")
        })
    }

    /// [`Self::start`] for a test that expects a start to fail: a process that
    /// exits before `grantmux started` is an answer, its exit code (None: a
    /// signal) and all it printed, not a panic.
    pub(crate) fn try_start(config: &Path, env: &[(&str, &str)]) -> Result<Self, Exited> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_grantmux"))
            .args(["--log-format", "json", "serve", "--config"])
            .arg(config)
            .env("SIM_SECRET", SECRET)
            .env("GRANTMUX_LOG", "info")
            .env_remove("GRANTMUX_FAILPOINT")
            // Which roots it trusts is the test's choice (`env`), never the
            // runner's: rustls-native-certs reads these instead of the platform's.
            .env_remove("SSL_CERT_FILE")
            .env_remove("SSL_CERT_DIR")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("grantmux starts");
        // `serve` logs to stdout; anything on stderr (a panic's last words)
        // joins the same log.
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let sink = log.clone();
        let drain_stderr = std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                sink.lock().expect("log").push(line);
            }
        });
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let (proxy, admin, forward_proxy) = loop {
            let Some(Ok(line)) = lines.next() else {
                // stdout closed: the process is ending.
                let status = child.wait().expect("wait");
                drain_stderr.join().expect("stderr drain");
                let log = log.lock().expect("log").clone();
                return Err((status.code(), log));
            };
            let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            log.lock().expect("log").push(line);
            if v["fields"]["message"] == "grantmux started" {
                let addr = |k: &str| v["fields"][k].as_str().expect(k).parse().expect(k);
                let forward = v["fields"]["forward_proxy"].as_str();
                let forward = forward.map(|a| a.parse().expect("forward_proxy"));
                break (addr("proxy"), addr("admin"), forward);
            }
        };
        // Keep draining both pipes so the child never blocks on a full one;
        // the drain ends when both have closed.
        let sink = log.clone();
        let drain = std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().expect("log").push(line);
            }
            let _ = drain_stderr.join();
        });
        Ok(Self {
            proxy,
            admin,
            forward_proxy,
            child,
            log,
            drain: Some(drain),
        })
    }

    /// `kill <signal>`, e.g. `-TERM`, `-KILL`, `-CONT`.
    pub(crate) fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal}");
    }

    /// `kill <signal>`, then [`Self::wait`].
    pub(crate) fn stop(mut self, signal: &str) -> (Option<i32>, Vec<String>) {
        self.signal(signal);
        self.wait()
    }

    /// Waits for the process to end; returns its exit code (None: ended by a
    /// signal) and all it logged, to the last line.
    pub(crate) fn wait(&mut self) -> (Option<i32>, Vec<String>) {
        let status = self.child.wait().expect("wait");
        // The pipe closes with the process: once the drain ends, the log is whole.
        if let Some(drain) = self.drain.take() {
            drain.join().expect("log drain");
        }
        (status.code(), self.log())
    }

    /// Waits up to 20 s for the process to end on its own (a failpoint abort).
    pub(crate) async fn exited(&mut self) -> bool {
        for _ in 0..2000 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// Whether the kernel reports the process stopped (a failpoint's SIGSTOP).
    pub(crate) fn is_stopped(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .ok()
            .and_then(|s| {
                s.rsplit(')')
                    .next()
                    .map(|r| r.trim_start().starts_with('T'))
            })
            .unwrap_or(false)
    }

    /// Has the process logged a line containing `text`?
    pub(crate) fn logged(&self, text: &str) -> bool {
        self.log
            .lock()
            .expect("log")
            .iter()
            .any(|l| l.contains(text))
    }

    /// All it has logged so far.
    pub(crate) fn log(&self) -> Vec<String> {
        self.log.lock().expect("log").clone()
    }
}

impl Drop for Grantmux {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-CONT", &self.child.id().to_string()])
                .status();
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
