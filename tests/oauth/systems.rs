//! DESIGN §1's scenario: a legacy system L and a new system N authorize the same
//! Zoom user, then both create and read meetings across several rotations.
//! Straight at Zoom, N's authorization breaks L; through grantmux, nobody breaks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use grantmux::harness::{Answer, Harness};
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::support::{self, authorize, create_and_read, gmx, refresh, tokens, Tokens, USER};

/// Clients refresh this long before `expires_in` runs out, as most do.
const MARGIN_MS: u64 = 60_000;
const CALLS_PER_ROUND: usize = 6;
/// How far the clock moves before each round: 3400 s lands in grantmux's
/// refresh-ahead window (a background refresh races the round's calls); 3600 s
/// is past every token's expiry (callers refresh, grantmux refreshes inline).
const ADVANCES_SECS: [u64; 5] = [3400, 3600, 3600, 3400, 3600];

/// One system: a well-behaved OAuth client. It refreshes one at a time when its
/// token is about to expire or on a 401 code 124, and retries that call once.
#[derive(Debug)]
struct System {
    base: String,
    held: tokio::sync::Mutex<Held>,
    ok: AtomicU64,
    failed: AtomicU64,
    /// Every 401 body the system saw, retried or not.
    unauthorized: Mutex<Vec<Value>>,
    /// Every refusal of its refresh token.
    refresh_errors: Mutex<Vec<Value>>,
}

#[derive(Debug)]
struct Held {
    tokens: Tokens,
    expires_at_ms: u64,
}

// === impl System ===

impl System {
    async fn authorize(h: &Harness, base: &str) -> Arc<Self> {
        let tokens = authorize(h, base, USER).await;
        Arc::new(Self {
            base: base.to_owned(),
            held: tokio::sync::Mutex::new(Held::new(h, tokens)),
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            unauthorized: Mutex::new(Vec::new()),
            refresh_errors: Mutex::new(Vec::new()),
        })
    }

    /// One unit of work: create a meeting and read it back.
    async fn work(&self, h: &Harness) {
        let counter = if self.try_work(h).await {
            &self.ok
        } else {
            &self.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    async fn try_work(&self, h: &Harness) -> bool {
        let Some(access) = self.access(h, None).await else {
            return false;
        };
        match create_and_read(h, &self.base, &access).await {
            Ok(()) => true,
            Err(a) if self.note_401(&a) => {
                let Some(fresh) = self.access(h, Some(&access)).await else {
                    return false;
                };
                let retried = create_and_read(h, &self.base, &fresh).await;
                retried.map_err(|a| self.note_401(&a)).is_ok()
            }
            Err(_) => false,
        }
    }

    /// A usable access token: refreshed first if it is about to expire, or if
    /// it is `rejected` and nobody has refreshed it yet. `None` when the
    /// refresh is refused.
    async fn access(&self, h: &Harness, rejected: Option<&str>) -> Option<String> {
        let mut held = self.held.lock().await;
        let expiring = h.clock.now_ms() + MARGIN_MS >= held.expires_at_ms;
        if expiring || rejected == Some(held.tokens.access.as_str()) {
            let refresh_token = held.tokens.refresh.clone().expect("a refresh token");
            let a = refresh(h, &self.base, &refresh_token).await;
            if a.status != 200 {
                self.refresh_errors.lock().expect("lock").push(a.json());
                return None;
            }
            *held = Held::new(h, tokens(&a));
        }
        Some(held.tokens.access.clone())
    }

    fn note_401(&self, a: &Answer) -> bool {
        let is_401 = a.status == 401;
        if is_401 {
            self.unauthorized.lock().expect("lock").push(a.json());
        }
        is_401
    }

    fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}

impl Held {
    fn new(h: &Harness, tokens: Tokens) -> Self {
        let expires_at_ms = h.clock.now_ms() + tokens.expires_in * 1000;
        Self {
            tokens,
            expires_at_ms,
        }
    }
}

/// Both systems work at once, `CALLS_PER_ROUND` calls each.
async fn round(h: &Arc<Harness>, systems: &[&Arc<System>]) {
    let mut calls = JoinSet::new();
    for system in systems {
        for _ in 0..CALLS_PER_ROUND {
            let (h, system) = (h.clone(), Arc::clone(system));
            calls.spawn(async move { system.work(&h).await });
        }
    }
    while let Some(done) = calls.join_next().await {
        done.expect("no panic");
    }
}

/// L authorizes and works; N authorizes the same user; both work across the
/// rotations `ADVANCES_SECS` drives. `base` picks Zoom or grantmux.
async fn scenario(h: &Arc<Harness>, base: &str) -> (Arc<System>, Arc<System>) {
    let l = System::authorize(h, base).await;
    round(h, &[&l]).await;
    assert_eq!(l.failed(), 0, "L works alone");
    let n = System::authorize(h, base).await;
    for secs in ADVANCES_SECS {
        round(h, &[&l, &n]).await;
        h.clock.advance(Duration::from_secs(secs));
    }
    round(h, &[&l, &n]).await;
    (l, n)
}

#[tokio::test]
async fn through_grantmux_both_systems_keep_working_across_rotations() {
    let h = Arc::new(support::start().await);
    let (l, n) = scenario(&h, &gmx(&h)).await;
    for (name, s) in [("L", &l), ("N", &n)] {
        assert_eq!(s.failed(), 0, "{name}: {:?}", s.unauthorized.lock());
        assert!(s.unauthorized.lock().expect("lock").is_empty(), "{name}");
        assert!(s.refresh_errors.lock().expect("lock").is_empty(), "{name}");
        assert!(s.ok.load(Ordering::Relaxed) > 0, "{name}");
    }
    let stats = h.sim.stats();
    assert_eq!(stats.token_requests.authorization_code, 2);
    assert!(
        stats.token_requests.refresh_token >= 3,
        "rotations: {}",
        stats.token_requests.refresh_token
    );
    assert_eq!(support::grant_versions(&h).await.len(), 1, "one real grant");
    shutdown(h).await;
}

#[tokio::test]
async fn straight_at_zoom_the_second_authorization_breaks_the_first_system() {
    let h = Arc::new(support::start().await);
    let (l, n) = scenario(&h, &h.sim.base_url()).await;
    assert!(l.failed() > 0, "L must break without grantmux");
    let seen = l.unauthorized.lock().expect("lock").clone();
    assert!(
        seen.contains(&json!({"code": 124, "message": "Invalid access token."})),
        "L's calls fail with 401 code 124 after N authorizes: {seen:?}"
    );
    let refused = l.refresh_errors.lock().expect("lock").clone();
    assert!(
        refused.contains(&json!({"reason": "Invalid Token!", "error": "invalid_grant"})),
        "{refused:?}"
    );
    assert_eq!(n.failed(), 0, "N, the last to authorize, works");
    shutdown(h).await;
}

async fn shutdown(h: Arc<Harness>) {
    Arc::try_unwrap(h)
        .expect("no task holds the harness")
        .shutdown()
        .await;
}
