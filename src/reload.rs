//! Reloading the config without a restart: on SIGHUP, and on a change to the
//! file with `serve --watch-config`.
//!
//! What may change live is applied by swapping each holder's copy (`ArcSwap`):
//! callers (added, removed, keys rotated), apps (added, secrets rotated,
//! weights), refresh and rate-limit settings, and the log level. Requests in
//! flight finish with what they started with; no connection is touched and no
//! grant state is read or written. What needs a restart (listeners, the store,
//! Zoom's URLs and client settings, interception, proxy limits) is not applied:
//! the log names each such section, and the rest of the change still is. A file
//! that does not validate changes nothing; the log names the key, as `check`
//! would. Every reload is counted by result.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use crate::config::Config;
use crate::grants::RefreshCtx;
use crate::metrics::{Metrics, ReloadLabels};
use crate::proxy::Proxy;
use crate::signal::Hangups;

/// How often `--watch-config` looks at the file.
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// Sets the log filter (`info`, `grantmux=debug`); `Err` says why not.
pub type LogLevelHook = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// How `serve` asks for reloads.
pub struct ReloadOptions {
    pub path: PathBuf,
    /// Also reload when the file changes (its modification time or size).
    pub watch: bool,
    /// Registered before the listeners opened (see [`Hangups::register`]).
    pub hangups: Hangups,
    /// Applies `log.level`; `None` when `GRANTMUX_LOG` decides the level.
    pub log: Option<LogLevelHook>,
}

impl std::fmt::Debug for ReloadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadOptions")
            .field("path", &self.path)
            .field("watch", &self.watch)
            .finish_non_exhaustive()
    }
}

/// The outcome of one reload, as counted in `grantmux_config_reloads_total`.
#[derive(Debug, PartialEq, Eq)]
pub enum Reloaded {
    Applied,
    /// Applied, but these sections changed too and need a restart.
    RestartNeeded(Vec<&'static str>),
    /// The file did not validate (or could not be read): nothing changed.
    Refused,
}

/// Holds the running config and everything a reload swaps.
pub struct Reloader {
    path: PathBuf,
    /// The config as last loaded (before `Running::start` filled in ports).
    running: Mutex<Config>,
    proxy: Arc<Proxy>,
    ctx: Arc<RefreshCtx>,
    log: Option<LogLevelHook>,
    metrics: Metrics,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

// === impl Reloader ===

impl Reloader {
    pub fn new(
        path: PathBuf,
        loaded: Config,
        proxy: Arc<Proxy>,
        ctx: Arc<RefreshCtx>,
        log: Option<LogLevelHook>,
        metrics: Metrics,
    ) -> Self {
        Self {
            path,
            running: Mutex::new(loaded),
            proxy,
            ctx,
            log,
            metrics,
        }
    }

    /// Applies the log level a freshly started process was configured with.
    pub fn apply_initial_log_level(&self) {
        let level = self.lock().log.level.clone();
        if let (Some(hook), Some(level)) = (&self.log, level) {
            if let Err(error) = hook(&level) {
                tracing::warn!(%error, "log.level not applied");
            }
        }
    }

    /// Re-reads the file and applies what may change live.
    pub fn reload(&self) -> Reloaded {
        let outcome = match Config::load(&self.path) {
            Err(error) => {
                tracing::error!(
                    %error,
                    key = error.key(),
                    path = %self.path.display(),
                    "config reload refused; the running config is kept"
                );
                Reloaded::Refused
            }
            Ok(new) => self.apply(new),
        };
        let result = match &outcome {
            Reloaded::Applied => "ok",
            Reloaded::RestartNeeded(_) => "restart_needed",
            Reloaded::Refused => "refused",
        };
        self.metrics
            .config_reloads
            .get_or_create(&ReloadLabels { result })
            .inc();
        outcome
    }

    fn apply(&self, new: Config) -> Reloaded {
        let mut running = self.lock();
        let restart = needs_restart(&running, &new);
        self.proxy.reload(&new);
        self.ctx.refresh.store(Arc::new(new.refresh.clone()));
        if new.log != running.log {
            let level = new.log.level.as_deref().unwrap_or("info");
            match &self.log {
                Some(hook) => {
                    if let Err(error) = hook(level) {
                        tracing::warn!(%error, "log.level not applied");
                    }
                }
                None => tracing::warn!("log.level changed, but GRANTMUX_LOG sets the level"),
            }
        }
        // What was applied becomes the running config; the rest stays as started.
        running.apps = new.apps;
        running.callers = new.callers;
        running.refresh = new.refresh;
        running.rate_limit = new.rate_limit;
        running.log = new.log;
        tracing::info!(
            callers = running.callers.len(),
            apps = running.apps.len(),
            "config reloaded"
        );
        if restart.is_empty() {
            Reloaded::Applied
        } else {
            tracing::warn!(
                sections = restart.join(", "),
                "config reload: these changes need a restart and were not applied"
            );
            Reloaded::RestartNeeded(restart)
        }
    }

    /// Reloads on each SIGHUP, and on each change of the file when `watch`,
    /// until shutdown.
    pub async fn run(
        self: Arc<Self>,
        mut hangups: Hangups,
        watch: bool,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut seen = stamp(&self.path);
        let mut every = tokio::time::interval(WATCH_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => return,
                () = hangups.recv() => {
                    tracing::info!("SIGHUP: reloading the config");
                    self.reload();
                    seen = stamp(&self.path);
                }
                _ = every.tick(), if watch => {
                    let now = stamp(&self.path);
                    if now != seen {
                        seen = now;
                        tracing::info!("config file changed: reloading");
                        self.reload();
                    }
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Config> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The sections that differ and only take effect at start.
fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    [
        ("listen", old.listen != new.listen),
        ("store", old.store != new.store),
        ("zoom", old.zoom != new.zoom),
        ("intercept", old.intercept != new.intercept),
        ("proxy", old.proxy != new.proxy),
        // Each target's courier and queue start with the process; the
        // tolerance and apps' secrets are read per event and reload.
        (
            "webhooks (listen, delivery, webhook_target, notify)",
            old.webhooks.listen != new.webhooks.listen
                || old.webhooks.delivery != new.webhooks.delivery
                || old.webhooks.targets != new.webhooks.targets
                || old.webhooks.notify != new.webhooks.notify,
        ),
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect()
}

/// What `--watch-config` compares: the file's modification time and size.
fn stamp(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}
