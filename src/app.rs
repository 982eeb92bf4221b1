//! Wiring: build the store, registry, upstream client and listeners from a
//! [`Config`], run them, and shut them down in order.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::{Admin, GrantExpiry};
use crate::clock::Clock;
use crate::config::{Config, StoreBackend};
use crate::grants::vtoken::Signer;
use crate::grants::{Adopting, LegacyIndex, RefreshCtx, Registry, Tasks};
use crate::metrics::MetricsRegistry;
use crate::oauth::ZoomTokenClient;
use crate::proxy::Proxy;
use crate::serve::{serve, ServerLimits};
use crate::store::{
    Coordinator, FileStore, GrantStore, Local, MemoryStore, RedisStore, StoreError,
};
use crate::upstream::{self, OriginPool, TlsSetupError};

/// Knobs for embedding grantmux (tests, `demo`); `serve` uses the defaults.
#[derive(Debug, Default)]
pub struct StartOptions {
    pub clock: Clock,
    /// Use this store (one only this process uses) instead of the one the config names.
    pub store: Option<Arc<dyn GrantStore>>,
}

/// A running grantmux: its bound addresses and handles for tests and admin.
#[derive(Debug)]
pub struct Running {
    pub proxy_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub registry: Arc<Registry>,
    pub metrics: MetricsRegistry,
    pub store: Arc<dyn GrantStore>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {what} address {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

// === impl Running ===

impl Running {
    /// Starts every listener and background task.
    pub async fn start(config: Config, options: StartOptions) -> Result<Self, StartError> {
        let (store, coord) = match options.store {
            Some(store) => (store, Arc::new(Local) as Arc<dyn Coordinator>),
            None => open_store(&config).await?,
        };
        let tls = upstream::tls_config(config.zoom.ca_file.as_deref())?;
        let client = upstream::client(&tls, config.zoom.connect_timeout);
        let metrics = MetricsRegistry::new();
        let api_pool = OriginPool::new(
            &config.zoom.api_url,
            &tls,
            config.zoom.connect_timeout,
            metrics.metrics.upstream_connections.clone(),
        )?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let zoom = ZoomTokenClient::new(client.clone(), &config);
        let ctx = Arc::new(RefreshCtx {
            source: Arc::new(zoom.clone()),
            tasks: Tasks::default(),
            legacy: LegacyIndex::default(),
            adopting: Adopting::default(),
            store: store.clone(),
            coord,
            clock: options.clock.clone(),
            refresh: config.refresh.clone(),
            metrics: metrics.metrics.clone(),
            shutdown: shutdown_rx.clone(),
        });
        let registry = Registry::load(ctx).await?;
        registry.resume_adoptions();
        metrics.register_collector(Box::new(GrantExpiry {
            registry: registry.clone(),
            clock: options.clock.clone(),
        }));

        let proxy_listener = bind("proxy", config.listen.proxy).await?;
        let admin_listener = bind("admin", config.listen.admin).await?;
        let proxy_addr = local_addr(&proxy_listener, "proxy", config.listen.proxy)?;
        let admin_addr = local_addr(&admin_listener, "admin", config.listen.admin)?;
        let limits = ServerLimits::from(&config);
        // The struct-update below only reads `Copy` fields of `limits`.
        let admin_limits = ServerLimits {
            max_connections: config.listen.admin_max_connections,
            ..limits
        };
        let mut config = config;
        // `proxy = "127.0.0.1:0"` (tests, demo): the public URL names the port we got.
        if config.listen.proxy.port() == 0 {
            config.listen.public_url = format!("http://{proxy_addr}");
        }

        // Virtual tokens outlive a restart when the store keeps the signing key.
        let signer = store.signing_key().map_or_else(Signer::random, Signer::new);
        let proxy = Arc::new(Proxy::new(
            &config,
            registry.clone(),
            api_pool,
            zoom,
            (signer, options.clock.clone()),
            metrics.metrics.clone(),
        ));
        let admin = Arc::new(Admin::new(
            registry.clone(),
            metrics.clone(),
            options.clock.clone(),
        ));
        let tasks = vec![
            tokio::spawn(serve(
                proxy_listener,
                None,
                limits,
                move |req| proxy.clone().handle(req),
                stopped(shutdown_rx.clone()),
            )),
            tokio::spawn(serve(
                admin_listener,
                None,
                admin_limits,
                move |req| admin.clone().handle(req),
                stopped(shutdown_rx.clone()),
            )),
            tokio::spawn(registry.clone().keepalive_loop()),
            tokio::spawn(registry.clone().follow_changes()),
        ];
        tracing::info!(proxy = %proxy_addr, admin = %admin_addr, grants = registry.len(), "grantmux started");
        Ok(Self {
            proxy_addr,
            admin_addr,
            registry,
            metrics,
            store,
            shutdown,
            tasks,
        })
    }

    /// Stops accepting, lets in-flight requests finish within the grace period,
    /// waits for every call to Zoom still in flight to be taken in, then makes a
    /// last write of every rotated token the store has not taken yet. Returns
    /// when everything has stopped; an error names each grant still unsaved.
    pub async fn shutdown(self) -> Result<(), Unsaved> {
        // Every receiver lives in `self`, so the send cannot fail.
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            if let Err(error) = task.await {
                tracing::error!(%error, "a listener or background task ended abnormally");
            }
        }
        let unsaved = self.registry.flush().await;
        if unsaved.is_empty() {
            tracing::info!("grantmux stopped");
            Ok(())
        } else {
            Err(Unsaved(unsaved))
        }
    }
}

/// Grants whose rotated refresh token is only in this process's memory at
/// exit: the store refused the last write. Zoom holds no other valid copy.
#[derive(Debug, thiserror::Error)]
#[error(
    "the rotated tokens of {} grant(s) could not be saved and are lost with this process: {}",
    .0.len(),
    .0.join(", ")
)]
#[must_use]
pub struct Unsaved(pub Vec<String>);

/// Why `grantmux serve` ended badly.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Unsaved(#[from] Unsaved),
}

/// The store the config names, and how replicas sharing it coordinate.
async fn open_store(
    config: &Config,
) -> Result<(Arc<dyn GrantStore>, Arc<dyn Coordinator>), StartError> {
    let local = Arc::new(Local);
    match &config.store.backend {
        StoreBackend::Memory => Ok((Arc::new(MemoryStore::new()), local)),
        StoreBackend::File { path } => {
            // Opening reads (and after a crash, repairs) the database: blocking work.
            let (path, key) = (path.clone(), config.store.key.clone());
            let store = tokio::task::spawn_blocking(move || FileStore::open(&path, &key))
                .await
                .map_err(|e| StoreError::Unavailable(format!("opening the file store: {e}")))??;
            Ok((Arc::new(store), local))
        }
        StoreBackend::Redis { url, lock_lease } => {
            let store = RedisStore::open(url, &config.store.key, *lock_lease).await?;
            Ok((Arc::new(store.clone()), Arc::new(store)))
        }
    }
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { what, addr, source })
}

fn local_addr(
    listener: &TcpListener,
    what: &'static str,
    addr: SocketAddr,
) -> Result<SocketAddr, StartError> {
    listener
        .local_addr()
        .map_err(|source| StartError::Bind { what, addr, source })
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}
