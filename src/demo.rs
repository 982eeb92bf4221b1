//! `grantmux demo`: DESIGN §1's scenario, played twice in one process.
//!
//! A simulator with short token lifetimes and a grantmux in front of it run on
//! loopback. Two systems, L (legacy) and N (new), authorize the same Zoom user
//! and then create and read meetings concurrently, refreshing their own tokens
//! as real clients do. Straight at Zoom, N's authorization revokes L's grant and
//! L breaks; through grantmux, neither does. Real wall-clock time: it is a demo.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use http::Method;
use serde_json::json;
use tokio::task::JoinSet;

use crate::harness::{Answer, Harness, HarnessError};
use crate::sim::{SimConfig, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_USER};

/// How long each system works between requests; keeps the counts readable.
const PACE: Duration = Duration::from_millis(25);
const REDIRECT: &str = "http://localhost/callback";

/// How the scenario is played; [`DemoOptions::default`] is what `grantmux demo` runs.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// How long each of the two scenarios runs.
    pub duration: Duration,
    /// The simulator's user access-token lifetime: short, so the grant rotates often.
    pub user_token_ttl: Duration,
    /// Concurrent workers per system.
    pub workers: usize,
}

/// Both scenarios' results.
#[derive(Clone, Debug)]
pub struct Report {
    pub without: Outcome,
    pub with: Outcome,
}

/// One scenario's results.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub l: Counts,
    pub n: Counts,
    /// Every `/oauth/token` request Zoom received.
    pub token_calls: u64,
    /// Refreshes Zoom answered with new tokens.
    pub rotations: u64,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    pub ok: u64,
    pub failed: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Harness(#[from] HarnessError),
    #[error("the first authorization failed: {0}")]
    Authorize(String),
}

/// One system: a well-behaved OAuth client. It refreshes (one at a time) when
/// its token is about to expire or on a 401, retries that call once, and after
/// `invalid_grant` gives up until its user authorizes again.
#[derive(Debug)]
struct System {
    base: String,
    held: tokio::sync::Mutex<Held>,
    ok: AtomicU64,
    failed: AtomicU64,
}

#[derive(Debug)]
struct Held {
    access: String,
    refresh: String,
    /// Clients refresh in the last tenth of a token's lifetime, as many do.
    refresh_at_ms: u64,
    /// Zoom refused the refresh token: only a new authorization helps.
    broken: bool,
}

// === impl DemoOptions ===

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(10),
            user_token_ttl: Duration::from_secs(3),
            workers: 2,
        }
    }
}

/// Plays the scenario straight at the simulator, then through grantmux.
pub async fn run(options: &DemoOptions) -> Result<Report, DemoError> {
    let without = play(options, false).await?;
    let with = play(options, true).await?;
    Ok(Report { without, with })
}

/// `grantmux demo`: plays both scenarios and prints the table.
pub async fn main(options: DemoOptions) -> Result<(), DemoError> {
    let secs = options.duration.as_secs();
    println!("grantmux demo: systems L and N authorize the same Zoom user, then create and");
    println!(
        "read meetings for {secs} s while the simulator's tokens live {} s.\n",
        options.user_token_ttl.as_secs()
    );
    println!("1/2 straight at the Zoom simulator ...");
    let without = play(&options, false).await?;
    println!("2/2 through grantmux ...\n");
    let with = play(&options, true).await?;
    print!("{}", render(&Report { without, with }));
    Ok(())
}

/// One scenario on a fresh simulator and grantmux; `through` picks grantmux.
async fn play(options: &DemoOptions, through: bool) -> Result<Outcome, DemoError> {
    let sim = SimConfig {
        user_token_ttl: options.user_token_ttl,
        ..SimConfig::default()
    };
    let h = Arc::new(Harness::start(sim, |_| {}).await?);
    let base = if through {
        h.proxy_url("")
    } else {
        h.sim.base_url()
    };
    let deadline = Instant::now() + options.duration;
    let mut workers = JoinSet::new();
    let l = System::authorize(&h, &base).await?;
    spawn(&mut workers, &h, &l, deadline, options.workers);
    // L works alone for a while, as the legacy system did for years.
    tokio::time::sleep(options.duration / 5).await;
    let n = System::authorize(&h, &base).await?;
    spawn(&mut workers, &h, &n, deadline, options.workers);
    while workers.join_next().await.is_some() {}

    let stats = h.sim.stats();
    let t = &stats.token_requests;
    let outcome = Outcome {
        l: l.counts(),
        n: n.counts(),
        token_calls: t.authorization_code + t.refresh_token + t.account_credentials,
        // Authorization codes are never refused here, so every error is a refused refresh.
        rotations: t.refresh_token.saturating_sub(stats.token_errors),
    };
    if let Ok(h) = Arc::try_unwrap(h) {
        h.shutdown().await;
    }
    Ok(outcome)
}

fn spawn(
    workers: &mut JoinSet<()>,
    h: &Arc<Harness>,
    system: &Arc<System>,
    deadline: Instant,
    count: usize,
) {
    for _ in 0..count {
        let (h, system) = (h.clone(), system.clone());
        workers.spawn(async move {
            while Instant::now() < deadline {
                system.work(&h).await;
                tokio::time::sleep(PACE).await;
            }
        });
    }
}

/// The side-by-side table and what it means.
pub fn render(report: &Report) -> String {
    let (w, g) = (&report.without, &report.with);
    let rows: [(&str, u64, u64); 6] = [
        ("system L  requests ok", w.l.ok, g.l.ok),
        ("system L  requests failed", w.l.failed, g.l.failed),
        ("system N  requests ok", w.n.ok, g.n.ok),
        ("system N  requests failed", w.n.failed, g.n.failed),
        ("token calls Zoom saw", w.token_calls, g.token_calls),
        ("rotations of the real grant", w.rotations, g.rotations),
    ];
    let mut out = format!(
        "{:<30}{:>18}{:>16}\n",
        "", "without grantmux", "with grantmux"
    );
    for (label, without, with) in rows {
        let _ = writeln!(out, "{label:<30}{without:>18}{with:>16}");
    }
    out.push_str(
        "\nWithout grantmux, N's authorization of the same Zoom user made Zoom revoke L's\n\
         grant: L's next call got 401 code 124, its refresh token was refused with\n\
         invalid_grant, and L stays broken until its user authorizes again. With grantmux,\n\
         both systems hold virtual tokens for the one real grant: grantmux adopted N's\n\
         authorization into that grant, refreshed it once per rotation ahead of expiry,\n\
         and replayed any call that raced a rotation, so neither system saw an error and\n\
         neither changed a line of code, only its token URL and API base URL.\n",
    );
    out
}

// === impl System ===

impl System {
    /// The user approves (the simulator issues a code); the system exchanges it.
    async fn authorize(h: &Harness, base: &str) -> Result<Arc<Self>, DemoError> {
        let code = h.sim.issue_code(DEFAULT_CLIENT_ID, DEFAULT_USER, REDIRECT);
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
        ];
        let a = token_call(h, base, &form).await;
        let held = a
            .as_ref()
            .ok()
            .and_then(|a| Held::from_answer(h, a))
            .ok_or_else(|| DemoError::Authorize(describe(&a)))?;
        Ok(Arc::new(Self {
            base: base.to_owned(),
            held: tokio::sync::Mutex::new(held),
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }))
    }

    /// Creates a meeting and reads it back: two API requests.
    async fn work(&self, h: &Harness) {
        let body = json!({"topic": "weekly sync", "type": 2}).to_string();
        let created = self
            .call(h, Method::POST, "/v2/users/me/meetings", &body)
            .await;
        let Some(meeting) = created.and_then(|a| a.json()["id"].as_u64()) else {
            return;
        };
        let path = format!("/v2/meetings/{meeting}");
        self.call(h, Method::GET, &path, "").await;
    }

    /// One API request, counted once with its final outcome.
    async fn call(&self, h: &Harness, method: Method, path: &str, body: &str) -> Option<Answer> {
        let mut rejected = None;
        for _ in 0..2 {
            let Some(access) = self.access(h, rejected.as_deref()).await else {
                break;
            };
            let Ok(a) = api(h, &self.base, method.clone(), path, &access, body).await else {
                break;
            };
            if a.status.is_success() {
                self.ok.fetch_add(1, Ordering::Relaxed);
                return Some(a);
            }
            if a.status != http::StatusCode::UNAUTHORIZED {
                break;
            }
            rejected = Some(access);
        }
        self.failed.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// A token to use: refreshed first when it is about to expire, or when it
    /// was `rejected` and no other worker has refreshed it since.
    async fn access(&self, h: &Harness, rejected: Option<&str>) -> Option<String> {
        let mut held = self.held.lock().await;
        if held.broken {
            return None;
        }
        let expiring = h.clock.now_ms() >= held.refresh_at_ms;
        if expiring || rejected == Some(held.access.as_str()) {
            let form = [
                ("grant_type", "refresh_token"),
                ("refresh_token", held.refresh.as_str()),
            ];
            let a = token_call(h, &self.base, &form).await;
            match a.as_ref().ok().and_then(|a| Held::from_answer(h, a)) {
                Some(fresh) => *held = fresh,
                None => {
                    held.broken = true;
                    return None;
                }
            }
        }
        Some(held.access.clone())
    }

    fn counts(&self) -> Counts {
        Counts {
            ok: self.ok.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

// === impl Held ===

impl Held {
    fn from_answer(h: &Harness, a: &Answer) -> Option<Self> {
        if a.status != http::StatusCode::OK {
            return None;
        }
        let v = a.json();
        Some(Self {
            access: v["access_token"].as_str()?.to_owned(),
            refresh: v["refresh_token"].as_str()?.to_owned(),
            refresh_at_ms: h.clock.now_ms() + v["expires_in"].as_u64()? * 900,
            broken: false,
        })
    }
}

async fn token_call(h: &Harness, base: &str, form: &[(&str, &str)]) -> Result<Answer, String> {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let credentials = format!("{DEFAULT_CLIENT_ID}:{DEFAULT_CLIENT_SECRET}");
    let basic = base64::engine::general_purpose::STANDARD.encode(credentials);
    let headers = [
        ("authorization", format!("Basic {basic}")),
        (
            "content-type",
            "application/x-www-form-urlencoded".to_owned(),
        ),
    ];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    h.call(Method::POST, &format!("{base}/oauth/token"), &headers, body)
        .await
}

async fn api(
    h: &Harness,
    base: &str,
    method: Method,
    path: &str,
    access: &str,
    body: &str,
) -> Result<Answer, String> {
    let bearer = format!("Bearer {access}");
    let mut headers = vec![("authorization", bearer.as_str())];
    if !body.is_empty() {
        headers.push(("content-type", "application/json"));
    }
    h.call(method, &format!("{base}{path}"), &headers, body.to_owned())
        .await
}

/// What went wrong, without the body (an error can quote the code).
fn describe(answer: &Result<Answer, String>) -> String {
    match answer {
        Ok(a) => format!("HTTP {}", a.status.as_u16()),
        Err(e) => e.clone(),
    }
}
