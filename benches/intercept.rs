//! Run with: `cargo bench --bench intercept`
//!
//! Issue 15: the latency interception adds. The simulator and grantmux run in
//! this process ([`Harness`], loopback, a two-worker runtime, like grantmux on a
//! 2-core machine); the client runs on its own thread and current-thread
//! runtime, standing in for another process. One request, `GET /v2/users/me`
//! with a static caller key (a real S2S token for the direct baseline), sent
//! sequentially, one in flight, through:
//!
//! 1. the simulator directly (no grantmux), HTTP/1.1, one kept-alive connection;
//! 2. grantmux's plain proxy listener, the same; 2b the same over HTTP/2
//!    (prior knowledge), to tell HTTP/2's cost from TLS's in 4;
//! 3. the forward proxy: one `CONNECT api.zoom.us:443` + TLS (grantmux's leaf),
//!    kept alive, HTTP/1.1 inside (a Node or Python client with `HTTPS_PROXY`);
//! 4. the same with HTTP/2 inside (ALPN h2);
//! 5. the TLS listener (`listen.tls`), kept alive, HTTP/1.1;
//! 6. cold: a new TCP connection + `CONNECT` + a full TLS handshake + one request,
//!    each time; 6b the same with the TLS session resumed (TLS 1.3 resumption,
//!    as Node's `https.Agent` does by default);
//! 7. cold on the plain listener: a new TCP connection + one request each time.
//!
//! The paths take turns: [`ROUNDS`] rounds, each path's share of the requests
//! per round, in a shuffled order per round, so that load from elsewhere on the
//! machine falls on every path alike. Prints a Markdown table (microseconds).
//! `INTERCEPT_WARM_N` and `INTERCEPT_COLD_N` change the request counts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use grantmux::config::Caller;
use grantmux::grants::{GrantKey, Subject};
use grantmux::harness::Harness;
use grantmux::sim::SimConfig;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rand::seq::SliceRandom;
use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, HandshakeKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const CLIENT: &str = "sim-client";
const ACCOUNT: &str = "sim-account";
/// `sim-client:sim-secret`.
const BASIC: &str = "Basic c2ltLWNsaWVudDpzaW0tc2VjcmV0";
/// A static caller key bound to the S2S grant.
const KEY: &str = "bench-caller-key-0123456789";
const PATH: &str = "/v2/users/me";
const ZOOM: &str = "api.zoom.us";

/// Requests timed per kept-alive path, and per cold path.
const WARM_N: usize = 50_000;
const COLD_N: usize = 5_000;
/// Untimed requests per path before the first round.
const WARM_UP_WARM: usize = 1_000;
const WARM_UP_COLD: usize = 100;
const ROUNDS: usize = 10;

fn main() -> Result<(), BoxError> {
    let warm_n = env_count("INTERCEPT_WARM_N", WARM_N)?;
    let cold_n = env_count("INTERCEPT_COLD_N", COLD_N)?;
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let h = server.block_on(Box::pin(start()))?;
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let load_before = loadavg();
    let started = Instant::now();
    let result = client.block_on(measure(&h, warm_n, cold_n));
    let elapsed = started.elapsed();
    let load_after = loadavg();
    drop(client);
    server.block_on(h.shutdown());
    let rows = result?;
    print_table(&rows);
    println!(
        "\n{ROUNDS} rounds, paths shuffled per round; {warm_n} timed requests per kept-alive \
         path, {cold_n} per cold path, after {WARM_UP_WARM}/{WARM_UP_COLD} untimed. \
         Measured in {:.1} s. Load average (1, 5, 15 min) before: {load_before}; after: {load_after}.",
        elapsed.as_secs_f64()
    );
    Ok(())
}

fn env_count(name: &str, default: usize) -> Result<usize, BoxError> {
    match std::env::var(name) {
        Ok(v) => Ok(v.parse().map_err(|e| format!("{name}={v}: {e}"))?),
        Err(_) => Ok(default),
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The simulator, and grantmux with both interception listeners and one
/// static caller key for the simulator's S2S account.
async fn start() -> Result<Harness, BoxError> {
    let h = Harness::start(SimConfig::default(), |c| {
        c.callers = vec![Caller {
            name: "bench".into(),
            key: KEY.into(),
            grant: GrantKey::new(CLIENT, Subject::Account(ACCOUNT.into())),
            weight: 1,
        }];
        c.listen.forward_proxy = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        c.listen.tls = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        // A kept-alive connection waits idle while the other paths take their
        // turn; the default 10 s bound would close it on a slow round.
        c.listen.header_read_timeout = Duration::from_secs(120);
    })
    .await?;
    Ok(h)
}

/// Runs every path; one row per path, the direct baseline first.
async fn measure(h: &Harness, warm_n: usize, cold_n: usize) -> Result<Vec<Row>, BoxError> {
    let proxy = h.gmx.proxy_addr;
    let forward = h.gmx.forward_proxy_addr.ok_or("no forward proxy")?;
    let tls_addr = h.gmx.tls_addr.ok_or("no TLS listener")?;
    let ca = h.gmx.intercept_ca_pem.clone().ok_or("no interception CA")?;
    let sim = h.sim.addr();
    let token = s2s_token(h).await?;

    let h1_tls = tls_config(&ca, &[b"http/1.1"], true)?;
    let h2_tls = tls_config(&ca, &[b"h2", b"http/1.1"], true)?;
    let full_tls = tls_config(&ca, &[b"http/1.1"], false)?;
    let resumed_tls = tls_config(&ca, &[b"http/1.1"], true)?;

    let direct = Warm::h1(tcp(sim).await?).await?;
    let plain = Warm::h1(tcp(proxy).await?).await?;
    let plain_h2 = Warm::h2(tcp(proxy).await?).await?;
    let fwd_h1 = Warm::h1(tls(&h1_tls, tunnel(forward).await?).await?).await?;
    let fwd_h2_stream = tls(&h2_tls, tunnel(forward).await?).await?;
    if fwd_h2_stream.get_ref().1.alpn_protocol() != Some(&b"h2"[..]) {
        return Err("the forward proxy did not choose h2".into());
    }
    let fwd_h2 = Warm::h2(fwd_h2_stream).await?;
    let sni = Warm::h1(tls(&h1_tls, tcp(tls_addr).await?).await?).await?;

    let sim_host = sim.to_string();
    let proxy_host = proxy.to_string();
    let mut paths = vec![
        Path::warm(
            "1. direct to the simulator (no grantmux), HTTP/1.1 kept alive",
            direct,
            PATH.into(),
            &sim_host,
            &token,
        ),
        Path::warm(
            "2. plain listener, HTTP/1.1 kept alive",
            plain,
            PATH.into(),
            &proxy_host,
            KEY,
        ),
        Path::warm(
            "2b. plain listener, HTTP/2 (prior knowledge) kept alive",
            plain_h2,
            format!("http://{proxy_host}{PATH}"),
            &proxy_host,
            KEY,
        ),
        Path::warm(
            "3. forward proxy: CONNECT + TLS kept alive, HTTP/1.1 inside",
            fwd_h1,
            PATH.into(),
            ZOOM,
            KEY,
        ),
        Path::warm(
            "4. forward proxy: CONNECT + TLS kept alive, HTTP/2 inside",
            fwd_h2,
            format!("https://{ZOOM}{PATH}"),
            ZOOM,
            KEY,
        ),
        Path::warm(
            "5. TLS listener (`listen.tls`), kept alive, HTTP/1.1",
            sni,
            PATH.into(),
            ZOOM,
            KEY,
        ),
        Path::cold(
            "6. cold forward proxy: new TCP + CONNECT + full TLS handshake + 1 request",
            Cold::Forward {
                addr: forward,
                tls: full_tls,
            },
        ),
        Path::cold(
            "6b. the same, TLS session resumed",
            Cold::Forward {
                addr: forward,
                tls: resumed_tls,
            },
        ),
        Path::cold(
            "7. cold plain listener: new TCP + 1 request",
            Cold::Plain { addr: proxy },
        ),
    ];

    for path in &mut paths {
        let n = if path.is_warm() {
            WARM_UP_WARM
        } else {
            WARM_UP_COLD
        };
        path.run(n, false).await?;
    }
    let mut order: Vec<usize> = (0..paths.len()).collect();
    let mut rng = rand::rng();
    for round in 0..ROUNDS {
        order.shuffle(&mut rng);
        for &i in &order {
            let path = &mut paths[i];
            let total = if path.is_warm() { warm_n } else { cold_n };
            // Spread `total` over the rounds, the remainder in the first ones.
            let n = total / ROUNDS + usize::from(round < total % ROUNDS);
            let before = path.latencies.len();
            path.run(n, true).await?;
            let mut this_round = path.latencies[before..].to_vec();
            this_round.sort_unstable();
            path.round_p50s.push(percentile(&this_round, 0.50));
        }
    }

    let rows: Vec<Row> = paths.into_iter().map(Path::into_row).collect();
    Ok(rows)
}

/// A real S2S access token from the simulator, for the direct baseline: what a
/// client without grantmux sends. (Not a legacy S2S app: grantmux's own token
/// stays valid.)
async fn s2s_token(h: &Harness) -> Result<String, BoxError> {
    let answer = h
        .call(
            Method::POST,
            &format!("{}/oauth/token", h.sim.base_url()),
            &[
                ("authorization", BASIC),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            format!("grant_type=account_credentials&account_id={ACCOUNT}"),
        )
        .await?;
    if answer.status != 200 {
        return Err(format!("S2S token from the simulator: {}", answer.status).into());
    }
    let token = answer.json()["access_token"]
        .as_str()
        .ok_or("no access_token")?
        .to_owned();
    Ok(token)
}

fn nodelay(s: TcpStream) -> std::io::Result<TcpStream> {
    s.set_nodelay(true)?;
    Ok(s)
}

async fn tcp(addr: SocketAddr) -> Result<TcpStream, BoxError> {
    Ok(nodelay(TcpStream::connect(addr).await?)?)
}

/// A new connection to the forward proxy, through `CONNECT api.zoom.us:443`.
async fn tunnel(forward: SocketAddr) -> Result<TcpStream, BoxError> {
    let mut stream = tcp(forward).await?;
    stream
        .write_all(b"CONNECT api.zoom.us:443 HTTP/1.1\r\nHost: api.zoom.us:443\r\n\r\n")
        .await?;
    // Nothing follows the answer's head until the client speaks TLS, so a
    // buffered read cannot take bytes that belong to the tunnel.
    let mut head = [0u8; 1024];
    let mut len = 0;
    while !head[..len].ends_with(b"\r\n\r\n") {
        if len == head.len() {
            return Err("CONNECT answer head too long".into());
        }
        let n = stream.read(&mut head[len..]).await?;
        if n == 0 {
            return Err("the forward proxy closed during CONNECT".into());
        }
        len += n;
    }
    if !head.starts_with(b"HTTP/1.1 200") {
        return Err(format!("CONNECT: {}", String::from_utf8_lossy(&head[..len])).into());
    }
    Ok(stream)
}

/// A client config trusting only grantmux's interception CA.
fn tls_config(ca_pem: &str, alpn: &[&[u8]], resume: bool) -> Result<Arc<ClientConfig>, BoxError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    if !resume {
        config.resumption = Resumption::disabled();
    }
    Ok(Arc::new(config))
}

async fn tls(config: &Arc<ClientConfig>, io: TcpStream) -> Result<TlsStream<TcpStream>, BoxError> {
    let name = ServerName::try_from(ZOOM)?;
    Ok(TlsConnector::from(config.clone()).connect(name, io).await?)
}

fn request(
    uri: &str,
    host: &str,
    bearer: &str,
    close: bool,
) -> Result<Request<Full<Bytes>>, BoxError> {
    let mut req = Request::get(uri)
        .header("host", host)
        .header("authorization", format!("Bearer {bearer}"));
    if close {
        req = req.header("connection", "close");
    }
    Ok(req.body(Full::new(Bytes::new()))?)
}

/// Reads an answer to the end; an error unless it is a 200.
async fn answer(resp: http::Response<hyper::body::Incoming>) -> Result<(), BoxError> {
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    if status != 200 {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&body)).into());
    }
    Ok(())
}

/// A kept-alive connection.
enum Warm {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

impl Warm {
    async fn h1<IO>(io: IO) -> Result<Self, BoxError>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (send, conn) = http1::handshake(TokioIo::new(io)).await?;
        tokio::spawn(conn);
        Ok(Self::H1(send))
    }

    async fn h2<IO>(io: IO) -> Result<Self, BoxError>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (send, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(io)).await?;
        tokio::spawn(conn);
        Ok(Self::H2(send))
    }

    async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<(), BoxError> {
        let resp = match self {
            Self::H1(send) => {
                send.ready().await?;
                send.send_request(req).await?
            }
            Self::H2(send) => {
                send.ready().await?;
                send.send_request(req).await?
            }
        };
        answer(resp).await
    }
}

/// A new connection for every request.
enum Cold {
    Plain {
        addr: SocketAddr,
    },
    Forward {
        addr: SocketAddr,
        tls: Arc<ClientConfig>,
    },
}

impl Cold {
    /// One request on a new connection; whether its TLS session was resumed.
    async fn send(&self) -> Result<bool, BoxError> {
        match self {
            Self::Plain { addr } => {
                let req = request(PATH, &addr.to_string(), KEY, true)?;
                Warm::h1(tcp(*addr).await?).await?.send(req).await?;
                Ok(false)
            }
            Self::Forward { addr, tls: config } => {
                let stream = tls(config, tunnel(*addr).await?).await?;
                let resumed = stream.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
                Warm::h1(stream)
                    .await?
                    .send(request(PATH, ZOOM, KEY, true)?)
                    .await?;
                Ok(resumed)
            }
        }
    }
}

enum Conn {
    Warm {
        conn: Warm,
        uri: String,
        host: String,
        bearer: String,
    },
    Cold(Cold),
}

struct Path {
    label: &'static str,
    conn: Conn,
    /// Nanoseconds, in the order measured.
    latencies: Vec<u64>,
    round_p50s: Vec<u64>,
    resumed: usize,
}

impl Path {
    fn warm(label: &'static str, conn: Warm, uri: String, host: &str, bearer: &str) -> Self {
        Self::new(
            label,
            Conn::Warm {
                conn,
                uri,
                host: host.to_owned(),
                bearer: bearer.to_owned(),
            },
        )
    }

    fn cold(label: &'static str, cold: Cold) -> Self {
        Self::new(label, Conn::Cold(cold))
    }

    fn new(label: &'static str, conn: Conn) -> Self {
        Self {
            label,
            conn,
            latencies: Vec::new(),
            round_p50s: Vec::new(),
            resumed: 0,
        }
    }

    fn is_warm(&self) -> bool {
        matches!(self.conn, Conn::Warm { .. })
    }

    /// `n` requests, one after another; timed if `record`.
    async fn run(&mut self, n: usize, record: bool) -> Result<(), BoxError> {
        for _ in 0..n {
            let started = Instant::now();
            let resumed = match &mut self.conn {
                Conn::Warm {
                    conn,
                    uri,
                    host,
                    bearer,
                } => {
                    // Building the request is the client's work on every path.
                    conn.send(request(uri, host, bearer, false)?).await?;
                    false
                }
                Conn::Cold(cold) => cold.send().await?,
            };
            let took = started.elapsed().as_nanos() as u64;
            if record {
                self.latencies.push(took);
                self.resumed += usize::from(resumed);
            }
        }
        Ok(())
    }

    fn into_row(mut self) -> Row {
        let n = self.latencies.len();
        let mean = self.latencies.iter().sum::<u64>() as f64 / n.max(1) as f64;
        self.latencies.sort_unstable();
        self.round_p50s.sort_unstable();
        let l = &self.latencies;
        Row {
            label: self.label,
            n,
            p50: percentile(l, 0.50),
            p90: percentile(l, 0.90),
            p99: percentile(l, 0.99),
            p999: percentile(l, 0.999),
            mean,
            round_p50_min: self.round_p50s.first().copied().unwrap_or(0),
            round_p50_max: self.round_p50s.last().copied().unwrap_or(0),
            resumed: self.resumed,
        }
    }
}

/// The nearest-rank percentile of sorted nanoseconds.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1);
    sorted.get(i).copied().unwrap_or(0)
}

struct Row {
    label: &'static str,
    n: usize,
    p50: u64,
    p90: u64,
    p99: u64,
    p999: u64,
    mean: f64,
    round_p50_min: u64,
    round_p50_max: u64,
    resumed: usize,
}

fn us(ns: f64) -> String {
    format!("{:.1}", ns / 1000.0)
}

fn added(ns: f64, base: f64) -> String {
    format!("{:+.1}", (ns - base) / 1000.0)
}

fn print_table(rows: &[Row]) {
    let Some(base) = rows.first() else { return };
    println!(
        "| path | requests | p50 µs | p90 µs | p99 µs | p99.9 µs | mean µs | added p50 µs | \
         added p99 µs | added mean µs | p50 per round, min–max µs |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let is_base = std::ptr::eq(r, base);
        let add = |v: u64, b: u64| {
            if is_base {
                "—".to_owned()
            } else {
                added(v as f64, b as f64)
            }
        };
        let mut label = r.label.to_owned();
        if r.resumed > 0 {
            label.push_str(&format!(" ({} of {} resumed)", r.resumed, r.n));
        }
        println!(
            "| {label} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {}–{} |",
            r.n,
            us(r.p50 as f64),
            us(r.p90 as f64),
            us(r.p99 as f64),
            us(r.p999 as f64),
            us(r.mean),
            add(r.p50, base.p50),
            add(r.p99, base.p99),
            if is_base {
                "—".to_owned()
            } else {
                added(r.mean, base.mean)
            },
            us(r.round_p50_min as f64),
            us(r.round_p50_max as f64),
        );
    }
}
