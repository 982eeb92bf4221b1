//! Waiting for the operator's stop: SIGTERM (Kubernetes) or Ctrl-C.

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
