//! grantmux's `tracing` output captured in memory, for tests that read what it logs.

use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing::subscriber::DefaultGuard;
use tracing::Level;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The captured log text. Clones share one buffer: the subscriber writes into
/// one, the test reads the other.
#[derive(Clone, Default)]
pub(crate) struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }
}

/// Captures this thread's logs up to `level` while the guard lives. On a
/// current-thread runtime every task of grantmux logs on this thread.
pub(crate) fn capture(level: Level) -> (Capture, DefaultGuard) {
    let (cap, subscriber) = subscriber(level);
    (cap, tracing::subscriber::set_default(subscriber))
}

/// Captures every thread's logs up to `level` for the rest of the process.
/// Global: only a test binary of its own can install it.
pub(crate) fn capture_every_thread(level: Level) -> Capture {
    let (cap, subscriber) = subscriber(level);
    subscriber.init();
    cap
}

fn subscriber(level: Level) -> (Capture, impl tracing::Subscriber + Send + Sync) {
    let cap = Capture::default();
    let writer = cap.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (cap, subscriber)
}
