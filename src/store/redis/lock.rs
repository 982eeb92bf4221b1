//! The per-grant refresh lock: `SET NX PX` with an owner token, renewed while
//! held, released by compare-and-delete.
//!
//! A replica that freezes (GC pause, SIGSTOP, a stalled VM) stops renewing, so
//! its lease runs out and another replica takes over. The frozen one may still
//! write when it wakes: the version fence in `SAVE` is what refuses that write,
//! not this lock. The lock only keeps replicas that are alive from calling Zoom
//! at the same time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::scripts::{Keys, Scripts};
use super::unavailable;
use crate::store::{HeldLock, StoreError};

/// Owner token of each lock this process holds, by grant id. `begin_refresh`
/// and `end_refresh` sign the intent marker with it. A std `Mutex`: each use is
/// one map operation with no `.await`.
pub(super) type Held = Arc<Mutex<HashMap<String, String>>>;

/// Polls for a busy lock this often at first, backing off to `MAX_POLL`.
const FIRST_POLL: Duration = Duration::from_millis(5);
const MAX_POLL: Duration = Duration::from_millis(50);

/// What a lock needs from the store; cloned into each lease's tasks.
#[derive(Clone, Debug)]
pub(super) struct Locker {
    pub(super) primary: super::Primary,
    pub(super) scripts: Arc<Scripts>,
    pub(super) held: Held,
    pub(super) lease: Duration,
}

/// A held lock. Dropping it stops the renewal and releases the lock.
struct LockGuard {
    locker: Locker,
    id: String,
    owner: String,
    renewal: JoinHandle<()>,
    /// Until when the lease is ours, by this process's clock: set from the moment
    /// each `SET`/renewal was sent, so it never runs later than Redis's.
    valid_until: Arc<Mutex<Instant>>,
    /// The primary's epoch the lock was taken under. After a failover the
    /// new primary may never have heard of it: no longer trusted.
    epoch: u64,
}

// === impl Locker ===

impl Locker {
    /// Takes grant `id`'s lock, waiting while another replica holds it, for at
    /// most two leases: a holder that is alive renews, and one that froze
    /// loses it after one lease. Fails at once if Redis cannot be reached.
    pub(super) async fn acquire(&self, id: &str) -> Result<Box<dyn HeldLock>, StoreError> {
        let owner = random_token();
        let epoch = self.primary.epoch();
        let deadline = Instant::now() + self.lease * 2;
        let mut poll = FIRST_POLL;
        let mut sent = Instant::now();
        while !self.try_take(id, &owner).await? {
            if Instant::now() >= deadline {
                return Err(StoreError::Unavailable(format!(
                    "grant {id}: another replica has held the refresh lock for {:?}",
                    self.lease * 2
                )));
            }
            tokio::time::sleep(jittered(poll)).await;
            poll = (poll * 2).min(MAX_POLL);
            sent = Instant::now();
        }
        self.lock_held().insert(id.to_owned(), owner.clone());
        let valid_until = Arc::new(Mutex::new(sent + self.lease));
        let renewal = tokio::spawn(self.clone().renew(
            id.to_owned(),
            owner.clone(),
            valid_until.clone(),
        ));
        Ok(Box::new(LockGuard {
            locker: self.clone(),
            id: id.to_owned(),
            owner,
            renewal,
            valid_until,
            epoch,
        }))
    }

    /// The owner token this process holds grant `id`'s lock with, if it does.
    pub(super) fn owner_of(&self, id: &str) -> Option<String> {
        self.lock_held().get(id).cloned()
    }

    async fn try_take(&self, id: &str, owner: &str) -> Result<bool, StoreError> {
        let set: Option<String> = redis::cmd("SET")
            .arg(Keys::lock(id))
            .arg(owner)
            .arg("NX")
            .arg("PX")
            .arg(self.lease_ms())
            .query_async(&mut self.primary.conn())
            .await
            .map_err(unavailable)?;
        Ok(set.is_some())
    }

    /// Extends the lease every third of it until the guard aborts this task or
    /// the lock turns out to be someone else's.
    async fn renew(self, id: String, owner: String, valid_until: Arc<Mutex<Instant>>) {
        let every = self.lease / 3;
        loop {
            tokio::time::sleep(every).await;
            let sent = Instant::now();
            let renewed: Result<i64, _> = self
                .scripts
                .renew
                .key(Keys::lock(&id))
                .arg(&owner)
                .arg(self.lease_ms())
                .invoke_async(&mut self.primary.conn())
                .await;
            match renewed {
                Ok(1) => *lock_ignoring_poison(&valid_until) = sent + self.lease,
                Ok(_) => {
                    tracing::warn!(grant = %id, "refresh lock lost (lease ran out); the version fence guards our write");
                    return;
                }
                // Try again next time; the lease may yet hold.
                Err(error) => tracing::warn!(grant = %id, %error, "cannot renew the refresh lock"),
            }
        }
    }

    fn lease_ms(&self) -> u64 {
        self.lease.as_millis() as u64
    }

    fn lock_held(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        lock_ignoring_poison(&self.held)
    }
}

// === impl LockGuard ===

impl HeldLock for LockGuard {
    fn still_held(&self) -> bool {
        // A tenth of the lease to spare: the lock must still be ours when the
        // request that follows this check reaches Zoom.
        Instant::now() + self.locker.lease / 10 < *lock_ignoring_poison(&self.valid_until)
            && self.locker.primary.epoch() == self.epoch
    }
}

/// Poisoning needs a panic inside one map operation or assignment, and none
/// panics: the value is still sound.
fn lock_ignoring_poison<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.renewal.abort();
        {
            let mut held = self.locker.lock_held();
            if held.get(&self.id) == Some(&self.owner) {
                held.remove(&self.id);
            }
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // no runtime left: the lease runs out on its own
        };
        let (locker, id, owner) = (self.locker.clone(), self.id.clone(), self.owner.clone());
        runtime.spawn(async move {
            let released: Result<i64, _> = locker
                .scripts
                .release
                .key(Keys::lock(&id))
                .arg(&owner)
                .invoke_async(&mut locker.primary.conn())
                .await;
            if let Err(error) = released {
                tracing::warn!(grant = %id, %error, "cannot release the refresh lock; its lease will run out");
            }
        });
    }
}

/// 128 random bits as hex: a lock owner, or this process's instance id.
pub(super) fn random_token() -> String {
    use rand::Rng as _;
    format!("{:032x}", rand::rng().random::<u128>())
}

/// `d` scaled by a random factor in [0.5, 1], so waiting replicas spread out.
fn jittered(d: Duration) -> Duration {
    use rand::Rng as _;
    d.mul_f64(rand::rng().random_range(0.5..=1.0))
}
