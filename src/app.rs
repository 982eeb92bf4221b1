//! Wiring: build the store, registry, upstream client and listeners from a
//! [`Config`], run them, and shut them down in order.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::Admin;
use crate::clock::Clock;
use crate::config::{Config, StoreBackend};
use crate::grants::vtoken::Signer;
use crate::grants::{Adopting, LegacyIndex, Lifecycle, RefreshCtx, Registry, Silent, Tasks};
use crate::intercept::{
    check_upstream, CaError, ForwardProxy, Intercepted, Interception, UpstreamLoop,
};
use crate::metrics::{GrantStates, MetricsRegistry};
use crate::oauth::ZoomTokenClient;
use crate::proxy::Proxy;
use crate::ratelimit::{RateLimiter, SharedBudget};
use crate::reload::{ReloadOptions, Reloader};
use crate::serve::{serve, ServerLimits};
use crate::store::{
    Coordinator, FileStore, GrantStore, Local, MemoryOutbox, MemoryStore, Outbox, RedisStore,
    StoreError,
};
use crate::upstream::{self, OriginPool, Resolver, ResolverSetupError, TlsSetupError};
use crate::webhooks::{Notifier, Outgoing, Webhooks};

/// Knobs for embedding grantmux (tests, `demo`); `serve` uses the defaults.
#[derive(Debug, Default)]
pub struct StartOptions {
    pub clock: Clock,
    /// Use this store (one only this process uses) instead of the one the
    /// config names. Delivery queues are then kept in memory.
    pub store: Option<Arc<dyn GrantStore>>,
    /// Reload the config on SIGHUP (and file changes): what `serve` does.
    pub reload: Option<ReloadOptions>,
}

/// A running grantmux: its bound addresses and handles for tests and admin.
#[derive(Debug)]
pub struct Running {
    pub proxy_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// `listen.forward_proxy`, once bound.
    pub forward_proxy_addr: Option<SocketAddr>,
    /// `listen.tls`, once bound.
    pub tls_addr: Option<SocketAddr>,
    /// `webhooks.listen`, once bound.
    pub webhooks_addr: Option<SocketAddr>,
    /// The interception CA's certificate, when a listener intercepts.
    pub intercept_ca_pem: Option<String>,
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
    #[error(transparent)]
    Resolver(#[from] ResolverSetupError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("interception CA: {0}")]
    Intercept(#[from] CaError),
    #[error(transparent)]
    UpstreamLoop(#[from] UpstreamLoop),
}

// === impl Running ===

impl Running {
    /// Starts every listener and background task.
    pub async fn start(config: Config, options: StartOptions) -> Result<Self, StartError> {
        // As loaded: a reload compares against this, not the ports filled in below.
        let loaded = options.reload.as_ref().map(|_| config.clone());
        let Opened {
            store,
            coord,
            outbox,
            shared_budget,
        } = match options.store {
            Some(store) => Opened {
                store,
                coord: Arc::new(Local),
                outbox: Arc::new(MemoryOutbox::new()),
                shared_budget: None,
            },
            None => open_store(&config).await?,
        };
        let tls = upstream::tls_config(config.zoom.ca_file.as_deref())?;
        // One resolver for both clients and the loop check below: with
        // `listen.tls`, DNS directly, since `/etc/hosts` may point Zoom here.
        let resolver = Resolver::for_config(&config)?;
        let client = upstream::client(&tls, config.zoom.connect_timeout, resolver.clone());
        let metrics = MetricsRegistry::new();
        let api_pool = OriginPool::new(
            &config.zoom.api_url,
            &tls,
            resolver.clone(),
            config.zoom.connect_timeout,
            metrics.metrics.upstream_connections.clone(),
        )?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let zoom = ZoomTokenClient::new(client.clone(), &config);
        let outgoing = Arc::new(Outgoing::new(
            &config,
            outbox,
            (shared_budget.is_some(), &tls),
            options.clock.clone(),
            metrics.metrics.clone(),
        ));
        let lifecycle: Arc<dyn Lifecycle> = match config.webhooks.notify.is_empty() {
            true => Arc::new(Silent),
            false => Arc::new(Notifier::new(outgoing.clone())),
        };
        let ctx = Arc::new(RefreshCtx {
            lifecycle,
            source: Arc::new(zoom.clone()),
            tasks: Tasks::default(),
            legacy: LegacyIndex::default(),
            adopting: Adopting::default(),
            store: store.clone(),
            coord,
            clock: options.clock.clone(),
            refresh: arc_swap::ArcSwap::from_pointee(config.refresh.clone()),
            metrics: metrics.metrics.clone(),
            shutdown: shutdown_rx.clone(),
        });
        let registry = Registry::load(ctx.clone()).await?;
        registry.resume_adoptions();
        metrics.register_collector(Box::new(GrantStates::new(
            registry.clone(),
            options.clock.clone(),
        )));

        // Before any listener opens: the exported bundle must exist by the time
        // `/healthz` answers, since apps in the pod start on it.
        let interception = if config.intercepts() {
            Some(Interception::start(&config)?)
        } else {
            None
        };
        let proxy_listener = bind("proxy", config.listen.proxy).await?;
        let admin_listener = bind("admin", config.listen.admin).await?;
        let proxy_addr = local_addr(&proxy_listener, "proxy", config.listen.proxy)?;
        let admin_addr = local_addr(&admin_listener, "admin", config.listen.admin)?;
        let forward_listener = match config.listen.forward_proxy {
            Some(addr) => Some(bind("forward_proxy", addr).await?),
            None => None,
        };
        let tls_listener = match config.listen.tls {
            Some(addr) => Some(bind("tls", addr).await?),
            None => None,
        };
        let webhooks_listener = match config.webhooks.listen {
            Some(addr) => Some(bind("webhooks", addr).await?),
            None => None,
        };
        let webhooks_addr = webhooks_listener
            .as_ref()
            .map(|l| local_addr(l, "webhooks", config.listen.proxy))
            .transpose()?;
        let forward_proxy_addr = forward_listener
            .as_ref()
            .map(|l| local_addr(l, "forward_proxy", config.listen.proxy))
            .transpose()?;
        let tls_addr = tls_listener
            .as_ref()
            .map(|l| local_addr(l, "tls", config.listen.proxy))
            .transpose()?;
        // With Zoom's names pointed here (hosts file, hostAliases), every
        // forwarded call would come back: refuse to start rather than loop.
        let own: Vec<(&'static str, SocketAddr)> = [
            Some(("proxy", proxy_addr)),
            tls_addr.map(|a| ("tls", a)),
            forward_proxy_addr.map(|a| ("forward_proxy", a)),
        ]
        .into_iter()
        .flatten()
        .collect();
        check_upstream(&config, &own, &resolver).await?;
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

        let limiter = RateLimiter::new(
            config.rate_limit.clone(),
            shared_budget,
            options.clock.clone(),
            metrics.metrics.clone(),
        );
        // Virtual tokens outlive a restart when the store keeps the signing key.
        let signer = store.signing_key().map_or_else(Signer::random, Signer::new);
        let webhooks = Arc::new(Webhooks::new(
            &config,
            registry.clone(),
            outgoing.clone(),
            options.clock.clone(),
            metrics.metrics.clone(),
        ));
        let proxy = Arc::new(Proxy::new(
            &config,
            registry.clone(),
            api_pool,
            zoom,
            (signer, options.clock.clone()),
            metrics.metrics.clone(),
            (limiter.clone(), webhooks.clone()),
        ));
        let admin = Arc::new(Admin::new(
            registry.clone(),
            metrics.clone(),
            options.clock.clone(),
            (limiter, outgoing.clone()),
        ));
        let mut tasks = outgoing.start(&shutdown_rx);
        if let Some(listener) = webhooks_listener {
            tasks.push(tokio::spawn(serve(
                listener,
                None,
                limits.clone(),
                move |req| webhooks.clone().serve(req),
                stopped(shutdown_rx.clone()),
            )));
        }
        if let (Some(reload), Some(loaded)) = (options.reload, loaded) {
            let reloader = Arc::new(Reloader::new(
                reload.path,
                loaded,
                proxy.clone(),
                ctx,
                reload.log,
                metrics.metrics.clone(),
            ));
            reloader.apply_initial_log_level();
            tasks.push(tokio::spawn(reloader.run(
                reload.hangups,
                reload.watch,
                shutdown_rx.clone(),
            )));
        }
        if let Some(interception) = &interception {
            if let Some(listener) = tls_listener {
                let proxy = proxy.clone();
                let acceptor = tokio_rustls::TlsAcceptor::from(interception.tls.clone());
                tasks.push(tokio::spawn(serve(
                    listener,
                    Some(acceptor),
                    limits.clone(),
                    move |mut req: http::Request<crate::serve::Incoming>| {
                        req.extensions_mut().insert(Intercepted);
                        proxy.clone().handle(req)
                    },
                    stopped(shutdown_rx.clone()),
                )));
            }
            if let Some(listener) = forward_listener {
                let forward = Arc::new(ForwardProxy::new(
                    &config,
                    proxy.clone(),
                    interception.tls.clone(),
                    shutdown_rx.clone(),
                ));
                let forward_limits = ServerLimits {
                    tunnels: true,
                    ..limits
                };
                tasks.push(tokio::spawn(serve(
                    listener,
                    None,
                    forward_limits,
                    move |req| forward.clone().handle(req),
                    stopped(shutdown_rx.clone()),
                )));
            }
        }
        tasks.extend([
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
        ]);
        tracing::info!(
            proxy = %proxy_addr,
            admin = %admin_addr,
            forward_proxy = forward_proxy_addr.map(|a| a.to_string()),
            tls = tls_addr.map(|a| a.to_string()),
            webhooks = webhooks_addr.map(|a| a.to_string()),
            delivery_queues = outgoing.queues().count(),
            zoom_dns = resolver.dns_servers().map(|s| format!("{s:?}")),
            ca = interception.as_ref().map(|i| i.authority.fingerprint().to_owned()),
            grants = registry.len(),
            "grantmux started"
        );
        Ok(Self {
            proxy_addr,
            admin_addr,
            forward_proxy_addr,
            tls_addr,
            webhooks_addr,
            intercept_ca_pem: interception.map(|i| i.authority.cert_pem().to_owned()),
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

/// What the store the config names gives: the grants' storage, how replicas
/// sharing it coordinate, the delivery queues, and (with Redis) the
/// rate-limit budgets every replica shares.
struct Opened {
    store: Arc<dyn GrantStore>,
    coord: Arc<dyn Coordinator>,
    outbox: Arc<dyn Outbox>,
    shared_budget: Option<SharedBudget>,
}

async fn open_store(config: &Config) -> Result<Opened, StartError> {
    match &config.store.backend {
        StoreBackend::Memory => Ok(Opened {
            store: Arc::new(MemoryStore::new()),
            coord: Arc::new(Local),
            outbox: Arc::new(MemoryOutbox::new()),
            shared_budget: None,
        }),
        StoreBackend::File { path } => {
            // Opening reads (and after a crash, repairs) the database: blocking work.
            let (path, key) = (path.clone(), config.store.key.clone());
            let store = tokio::task::spawn_blocking(move || FileStore::open(&path, &key))
                .await
                .map_err(|e| StoreError::Unavailable(format!("opening the file store: {e}")))??;
            Ok(Opened {
                store: Arc::new(store.clone()),
                coord: Arc::new(Local),
                outbox: Arc::new(store),
                shared_budget: None,
            })
        }
        StoreBackend::Redis(redis) => {
            let store = RedisStore::open(redis, &config.store.key).await?;
            Ok(Opened {
                shared_budget: Some(SharedBudget::new(store.primary())),
                store: Arc::new(store.clone()),
                coord: Arc::new(store.clone()),
                outbox: Arc::new(store),
            })
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
