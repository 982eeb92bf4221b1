//! Wall-clock time that tests can move forward.
//!
//! Token expiry is wall-clock time (`exp`, `expires_in`), shared between the
//! simulator and grantmux. Tests that need "the grant has expired" advance one
//! shared [`Clock`] instead of sleeping, so they stay deterministic on a noisy
//! machine. In production the offset is always zero.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

/// Unix time in milliseconds.
pub type UnixMillis = u64;

/// A wall clock with an adjustable forward offset. Cheap to clone; clones share the offset.
#[derive(Clone, Debug)]
pub struct Clock {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    offset_ms: AtomicU64,
    /// Bumped on every `advance`, so sleepers re-check their deadline at once.
    advanced: watch::Sender<u64>,
}

// === impl Clock ===

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    pub fn new() -> Self {
        let (advanced, _) = watch::channel(0);
        Self {
            inner: Arc::new(Inner {
                offset_ms: AtomicU64::new(0),
                advanced,
            }),
        }
    }

    /// Milliseconds since the Unix epoch, offset included.
    pub fn now_ms(&self) -> UnixMillis {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        real + self.inner.offset_ms.load(Ordering::Relaxed)
    }

    /// Seconds since the Unix epoch, offset included.
    pub fn now_secs(&self) -> u64 {
        self.now_ms() / 1000
    }

    /// Moves this clock (and every clone) forward, waking every [`Clock::sleep_until`].
    pub fn advance(&self, by: Duration) {
        self.inner
            .offset_ms
            .fetch_add(by.as_millis() as u64, Ordering::Relaxed);
        self.inner.advanced.send_modify(|n| *n += 1);
    }

    /// Sleeps until the clock reads at least `deadline_ms`, waking early if it is advanced.
    pub async fn sleep_until(&self, deadline_ms: UnixMillis) {
        let mut advanced = self.inner.advanced.subscribe();
        loop {
            let now = self.now_ms();
            if now >= deadline_ms {
                return;
            }
            let wait = Duration::from_millis(deadline_ms - now);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = advanced.changed() => {}
            }
        }
    }

    /// Sleeps for `d` of this clock's time.
    pub async fn sleep(&self, d: Duration) {
        let deadline = self.now_ms() + d.as_millis() as u64;
        self.sleep_until(deadline).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn advance_wakes_sleepers() {
        let clock = Clock::new();
        let c2 = clock.clone();
        let deadline = clock.now_ms() + 3_600_000;
        let sleeper = tokio::spawn(async move { c2.sleep_until(deadline).await });
        tokio::task::yield_now().await;
        clock.advance(Duration::from_secs(3601));
        tokio::time::timeout(Duration::from_secs(10), sleeper)
            .await
            .expect("sleeper woke")
            .expect("no panic");
        assert!(clock.now_ms() >= deadline);
    }
}
