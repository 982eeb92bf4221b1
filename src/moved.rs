//! When something last moved (a connection wrote, an upload sent a byte),
//! noted from poll functions with one atomic and read by a watchdog.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::Instant;

/// The last time [`LastMoved::note`] was called, as milliseconds since creation.
#[derive(Debug)]
pub(crate) struct LastMoved {
    origin: Instant,
    ms: AtomicU64,
}

// === impl LastMoved ===

impl LastMoved {
    pub(crate) fn new() -> Self {
        Self {
            origin: Instant::now(),
            ms: AtomicU64::new(0),
        }
    }

    /// It moved now. Never moves the mark back.
    pub(crate) fn note(&self) {
        let now = self.origin.elapsed().as_millis() as u64;
        self.ms.fetch_max(now, Ordering::Relaxed);
    }

    /// When it last moved: its creation, if it never has.
    pub(crate) fn at(&self) -> Instant {
        self.origin + std::time::Duration::from_millis(self.ms.load(Ordering::Relaxed))
    }
}
