//! Starting a simulator and steering it while it runs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::codes::Challenge;
use super::config::{Faults, RateLimits, SimConfig};
use super::echo::RecordedRequest;
use super::grants::GrantKey;
use super::state::{lock, Settings, Shared};
use super::stats::{Counters, SimStats};
use super::{router, tls, SimError};
use crate::clock::Clock;
use crate::serve::{self, ServerLimits};

/// In-flight requests get this long after [`SimHandle::shutdown`].
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Starts simulators; see [`Sim::start`].
#[derive(Debug)]
pub struct Sim;

/// A running simulator. Cheap to clone; every clone steers the same instance.
///
/// Dropping the handles does not stop the simulator (a temporary handle must not
/// take it down): call [`SimHandle::shutdown`], or let the runtime end.
#[derive(Clone)]
pub struct SimHandle {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    addr: SocketAddr,
    base_url: String,
    ca_pem_path: Option<PathBuf>,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

// === impl Sim ===

impl Sim {
    /// Binds the listener, generates TLS material if asked, and starts serving.
    pub async fn start(cfg: SimConfig) -> Result<SimHandle, SimError> {
        if cfg.apps.is_empty() {
            return Err(SimError::NoApps);
        }
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| SimError::Bind {
                addr: cfg.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind {
            addr: cfg.listen,
            source,
        })?;
        let acceptor = match &cfg.tls {
            Some(path) => Some(tls::acceptor(path, cfg.tls_http1_only).await?),
            None => None,
        };
        let base_url = base_url(addr, acceptor.is_some());
        let ca_pem_path = cfg.tls.clone();
        let api_url = cfg.api_url.clone().unwrap_or_else(|| base_url.clone());
        let shared = Arc::new(Shared::new(cfg, api_url));

        let (stop, stopped) = oneshot::channel::<()>();
        let service_state = shared.clone();
        let service = move |req| router::handle(service_state.clone(), req);
        let limits = ServerLimits {
            shutdown_grace: SHUTDOWN_GRACE,
            ..ServerLimits::default()
        };
        let shutdown = async move {
            // A dropped sender means every handle is gone: keep serving (see SimHandle).
            if stopped.await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        let task = tokio::spawn(serve::serve(listener, acceptor, limits, service, shutdown));
        tracing::debug!(%addr, "simulator started");
        Ok(SimHandle {
            inner: Arc::new(Inner {
                shared,
                addr,
                base_url,
                ca_pem_path,
                stop: Mutex::new(Some(stop)),
                task: Mutex::new(Some(task)),
            }),
        })
    }
}

/// `http://127.0.0.1:PORT`, or `https://localhost:PORT` to match the leaf's name.
fn base_url(addr: SocketAddr, tls: bool) -> String {
    let port = addr.port();
    if tls {
        return format!("https://localhost:{port}");
    }
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, port))
}

// === impl SimHandle ===

impl SimHandle {
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    pub fn base_url(&self) -> String {
        self.inner.base_url.clone()
    }

    pub fn ca_pem_path(&self) -> Option<PathBuf> {
        self.inner.ca_pem_path.clone()
    }

    /// The clock every expiry decision reads (a clone of [`SimConfig::clock`]).
    pub fn clock(&self) -> Clock {
        self.inner.shared.clock.clone()
    }

    pub fn stats(&self) -> SimStats {
        self.inner.shared.counters.snapshot()
    }

    /// Faults of `/oauth/token` and `/oauth/revoke`, for requests that arrive from now
    /// on (one already waiting out `answer_delay` keeps its delay).
    pub fn set_token_faults(&self, f: Faults) {
        self.update(|s| s.token_faults = f);
    }

    pub fn set_api_faults(&self, f: Faults) {
        self.update(|s| s.api_faults = f);
    }

    pub fn set_invalidate_previous_access(&self, on: bool) {
        self.update(|s| s.invalidate_previous_access = on);
    }

    pub fn set_legacy_s2s(&self, on: bool) {
        self.update(|s| s.legacy_s2s = on);
    }

    pub fn set_rate_limits(&self, r: Option<RateLimits>) {
        self.update(|s| s.rate_limits = r);
    }

    /// From now on, access tokens are opaque random strings (`true`) or JWTs with a
    /// `uid` claim (`false`); see [`SimConfig::opaque_tokens`]. Tokens already issued
    /// keep working either way.
    pub fn set_opaque_tokens(&self, on: bool) {
        lock(&self.inner.shared.grants).set_opaque_access(on);
    }

    /// Applies to tokens issued from now on.
    pub fn set_user_token_ttl(&self, d: Duration) {
        self.update(|s| s.user_token_ttl = d);
    }

    /// Applies to tokens issued from now on.
    pub fn set_s2s_token_ttl(&self, d: Duration) {
        self.update(|s| s.s2s_token_ttl = d);
    }

    /// `/oauth/authorize` without HTTP: same code store and rules (no PKCE), and
    /// counted in `authorize_requests`.
    pub fn issue_code(&self, client_id: &str, user: &str, redirect_uri: &str) -> String {
        let shared = &self.inner.shared;
        Counters::bump(&shared.counters.authorize_requests);
        shared.issue_code(client_id, user, redirect_uri, None::<Challenge>)
    }

    /// The newest live access token of `user`'s grant for `client_id`.
    pub fn current_access_token(&self, client_id: &str, user: &str) -> Option<String> {
        let key = GrantKey::User {
            client_id: client_id.to_owned(),
            user: user.to_owned(),
        };
        lock(&self.inner.shared.grants).current_access(&key)
    }

    /// The last `/v2/*` request the sim read (any route, including refused ones).
    pub fn last_api_request(&self) -> Option<RecordedRequest> {
        lock(&self.inner.shared.last_request).clone()
    }

    /// Stops accepting, lets in-flight requests finish (up to a grace period), and
    /// returns when the listener is closed. Later calls on other clones return at once.
    pub async fn shutdown(self) {
        if let Some(stop) = lock(&self.inner.stop).take() {
            let _ = stop.send(());
        }
        let task = lock(&self.inner.task).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    fn update(&self, f: impl FnOnce(&mut Settings)) {
        f(&mut lock(&self.inner.shared.settings));
    }
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("addr", &self.inner.addr)
            .field("base_url", &self.inner.base_url)
            .finish_non_exhaustive()
    }
}
