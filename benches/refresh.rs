//! Run with: `cargo bench --bench refresh` (`benches/compare.sh` runs it too)
//!
//! Refresh figures of DESIGN.md §6, in process with [`Harness`] (simulator and
//! grantmux on loopback, one shared clock): a storm of concurrent requests at an
//! expired grant, and latency while the grant rotates against steady state.
//! Prints a Markdown table. Figures, not assertions: the tests hold the
//! behaviour, this measures it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use grantmux::config::Caller;
use grantmux::grants::{GrantKey, Subject};
use grantmux::harness::Harness;
use grantmux::sim::{Faults, SimConfig};
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

const CLIENT: &str = "sim-client";
const USER: &str = "sim-user";
/// A static caller key bound to the user grant: unlike a virtual access token,
/// it outlives the hour the clock jumps.
const USER_KEY: &str = "bench-user-key-0123456789";
/// Zoom's token endpoint is slow; requests pile up while the one refresh runs.
const TOKEN_LATENCY: Duration = Duration::from_millis(100);
const HOUR: Duration = Duration::from_secs(3600);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), BoxError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> Result<(), BoxError> {
    println!("| refresh figure | value |\n|---|---|");
    // HTTPS to the simulator, so grantmux reaches it over HTTP/2 as it would reach
    // Zoom: 10,000 plain HTTP/1 upstream sockets would not fit this process's
    // descriptor limit next to 10,000 client sockets.
    let ca = std::env::temp_dir().join(format!("grantmux-bench-ca-{}.pem", std::process::id()));
    let h = start(Some(ca.clone()), false).await?;
    storm(
        &h,
        "HTTP/2, 100 connections",
        10_000,
        Transport::H2 { conns: 100 },
    )
    .await?;
    storm(&h, "HTTP/1.1, one connection each", 8_000, Transport::H1).await?;
    h.shutdown().await;
    let _ = std::fs::remove_file(ca);
    let h = Arc::new(start(None, true).await?);
    rotation(&h).await?;
    Ok(())
}

/// Simulator (token endpoint slowed to [`TOKEN_LATENCY`]) and grantmux with a
/// caller key for the user grant, which a code exchange through grantmux adopts.
async fn start(tls: Option<std::path::PathBuf>, invalidate: bool) -> Result<Harness, BoxError> {
    let sim = SimConfig {
        tls,
        invalidate_previous_access: invalidate,
        token_faults: Faults {
            latency: TOKEN_LATENCY,
            ..Faults::default()
        },
        ..SimConfig::default()
    };
    let h = Harness::start(sim, |c| {
        c.callers = vec![Caller {
            name: "bench".into(),
            key: USER_KEY.into(),
            grant: GrantKey::new(CLIENT, Subject::User(USER.into())),
            weight: 1,
        }];
    })
    .await?;
    let code = h.sim.issue_code(CLIENT, USER, "http://localhost/cb");
    let form =
        format!("grant_type=authorization_code&code={code}&redirect_uri=http://localhost/cb");
    let answer = h
        .call(
            Method::POST,
            &h.proxy_url("/oauth/token"),
            &[
                ("authorization", "Basic c2ltLWNsaWVudDpzaW0tc2VjcmV0"),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            form,
        )
        .await?;
    if answer.status != 200 {
        return Err(format!("code exchange through grantmux: {}", answer.status).into());
    }
    Ok(h)
}

enum Transport {
    H1,
    H2 { conns: usize },
}

/// `n` requests sent at once to an expired grant, on connections opened beforehand.
async fn storm(h: &Harness, label: &str, n: usize, transport: Transport) -> Result<(), BoxError> {
    let addr = h.gmx.proxy_addr;
    let senders = match transport {
        Transport::H1 => open_h1(addr, n).await?,
        Transport::H2 { conns } => open_h2(addr, conns).await?,
    };
    h.clock.advance(HOUR);
    let before = h.sim.stats();
    let started = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|i| tokio::spawn(senders[i % senders.len()].clone().send(addr)))
        .collect();
    let mut failed = 0;
    for task in tasks {
        if !matches!(task.await, Ok(Ok(200))) {
            failed += 1;
        }
    }
    let elapsed = started.elapsed();
    let after = h.sim.stats();
    let calls = after.token_requests.refresh_token - before.token_requests.refresh_token;
    println!(
        "| {n} concurrent requests at an expired grant ({label}) | {calls} token call(s) to Zoom, \
         {failed} failed, all answered in {} ms (Zoom's token endpoint takes {} ms), {} Zoom 401s |",
        elapsed.as_millis(),
        TOKEN_LATENCY.as_millis(),
        after.api_401 - before.api_401,
    );
    Ok(())
}

#[derive(Clone)]
enum Sender {
    H1(Arc<tokio::sync::Mutex<http1::SendRequest<Full<Bytes>>>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    async fn send(self, addr: SocketAddr) -> Result<u16, BoxError> {
        let req = Request::get(format!("http://{addr}/v2/users/me"))
            .header("authorization", format!("Bearer {USER_KEY}"))
            .header("host", addr.to_string())
            .body(Full::new(Bytes::new()))?;
        let resp = match self {
            Sender::H1(send) => send.lock().await.send_request(req).await?,
            Sender::H2(mut send) => send.send_request(req).await?,
        };
        let status = resp.status().as_u16();
        resp.into_body().collect().await?;
        Ok(status)
    }
}

async fn open_h1(addr: SocketAddr, n: usize) -> Result<Vec<Sender>, BoxError> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let io = TokioIo::new(TcpStream::connect(addr).await?);
        let (send, conn) = http1::handshake(io).await?;
        tokio::spawn(conn);
        out.push(Sender::H1(Arc::new(tokio::sync::Mutex::new(send))));
    }
    Ok(out)
}

async fn open_h2(addr: SocketAddr, n: usize) -> Result<Vec<Sender>, BoxError> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let io = TokioIo::new(TcpStream::connect(addr).await?);
        let (send, conn) = http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(conn);
        out.push(Sender::H2(send));
    }
    Ok(out)
}

/// Latency of a steady closed-loop load, then of the same load while the grant
/// rotates every 250 ms and Zoom kills each previous access token at once.
async fn rotation(h: &Arc<Harness>) -> Result<(), BoxError> {
    let grant = h
        .gmx
        .registry
        .get(&GrantKey::new(CLIENT, Subject::User(USER.into())))
        .ok_or("no user grant")?;
    let window = Duration::from_secs(3);
    let steady = closed_loop(h, window).await;
    let stop = Arc::new(AtomicBool::new(false));
    let rotator = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut rotations = 0u32;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(250)).await;
                if grant.force_refresh().await.is_ok() {
                    rotations += 1;
                }
            }
            rotations
        })
    };
    let before = h.sim.stats();
    let rotating = closed_loop(h, window).await;
    stop.store(true, Ordering::Relaxed);
    let rotations = rotator.await?;
    let zoom_401 = h.sim.stats().api_401 - before.api_401;
    println!(
        "| steady state, 32 callers, {}s | {} |",
        window.as_secs(),
        steady.describe()
    );
    println!(
        "| same, grant rotated {rotations} times ({zoom_401} Zoom 401s replayed) | {} |",
        rotating.describe()
    );
    Ok(())
}

struct Latencies {
    sorted_us: Vec<u64>,
    failed: usize,
}

impl Latencies {
    fn pct(&self, p: f64) -> f64 {
        let i = ((self.sorted_us.len() as f64 * p).ceil() as usize).saturating_sub(1);
        self.sorted_us.get(i).copied().unwrap_or(0) as f64 / 1000.0
    }

    fn describe(&self) -> String {
        format!(
            "{} requests, {} failed; p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
            self.sorted_us.len(),
            self.failed,
            self.pct(0.50),
            self.pct(0.99),
            self.pct(0.999),
            self.pct(1.0),
        )
    }
}

/// 32 callers, each sending its next request when the last is answered.
async fn closed_loop(h: &Arc<Harness>, window: Duration) -> Latencies {
    let url = h.proxy_url("/v2/users/me");
    let auth = format!("Bearer {USER_KEY}");
    let until = Instant::now() + window;
    let workers: Vec<_> = (0..32)
        .map(|_| {
            let (h, url, auth) = (h.clone(), url.clone(), auth.clone());
            tokio::spawn(async move {
                let (mut lat, mut failed) = (Vec::new(), 0);
                while Instant::now() < until {
                    let t = Instant::now();
                    match h
                        .call(Method::GET, &url, &[("authorization", &auth)], "")
                        .await
                    {
                        Ok(a) if a.status == 200 => lat.push(t.elapsed().as_micros() as u64),
                        _ => failed += 1,
                    }
                }
                (lat, failed)
            })
        })
        .collect();
    let mut all = Latencies {
        sorted_us: Vec::new(),
        failed: 0,
    };
    for w in workers {
        if let Ok((lat, failed)) = w.await {
            all.sorted_us.extend(lat);
            all.failed += failed;
        }
    }
    all.sorted_us.sort_unstable();
    all
}
