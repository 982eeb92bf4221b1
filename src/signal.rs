//! The operator's signals: the stop (SIGTERM from Kubernetes, or Ctrl-C) and
//! the reload (SIGHUP).

use std::future::Future;

/// Starts watching for SIGTERM and SIGINT at once, and returns a future that
/// resolves on the first of them.
///
/// Call it before the listeners open: until a handler is registered, SIGTERM
/// keeps its default action and kills the process outright, so a stop that
/// arrives between "ready" and the first poll would skip the drain and the
/// last write of unsaved grants.
pub fn shutdown_requested() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                (Err(error), _) | (_, Err(error)) => {
                    tracing::warn!(%error, "cannot watch SIGTERM or SIGINT; falling back to Ctrl-C");
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// SIGHUPs, the operator's "reload the config". Registered at creation, so
/// create it before the listeners open: until then SIGHUP keeps its default
/// action and ends the process (exit 129).
#[derive(Debug)]
pub struct Hangups {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangups {
    pub fn register() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let signal = signal(SignalKind::hangup())
                .map_err(
                    |error| tracing::warn!(%error, "cannot watch SIGHUP; reload by SIGHUP is off"),
                )
                .ok();
            Self { signal }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    /// The next SIGHUP; pending forever where there are none to watch.
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(signal) = &mut self.signal {
            if signal.recv().await.is_some() {
                return;
            }
        }
        std::future::pending::<()>().await;
    }
}
