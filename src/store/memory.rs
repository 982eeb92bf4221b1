//! The in-memory store, for tests and the demo. Nothing survives the process.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::watch;

use super::outbox::{Envelope, Message, Outbox, QueueCounts, MAX_DEAD_LETTERS};
use super::{GrantStore, StoreError, StoreFuture};
use crate::grants::{Grant, GrantKey};

/// Grants in a `HashMap` behind a std `Mutex`: critical sections are a map
/// operation with no `.await`, so a blocking mutex is the cheap, right choice.
#[derive(Debug, Default)]
pub struct MemoryStore {
    grants: Mutex<HashMap<GrantKey, Grant>>,
    /// Test switch: make every write fail, to exercise the unpersisted path.
    fail_writes: AtomicBool,
    /// Test hook: made by the first [`MemoryStore::hold_writes`], so a store
    /// never held pays one atomic load per write for it.
    gate: OnceLock<Arc<Gate>>,
}

/// A hold on a [`MemoryStore`]'s writes, from [`MemoryStore::hold_writes`].
/// Writes made while it stands land only once it is dropped.
#[derive(Debug)]
#[must_use = "writes are held only while the WriteHold lives"]
pub struct WriteHold {
    gate: Arc<Gate>,
    /// [`Gate::arrived`] when this hold was taken.
    arrived_before: u64,
}

/// Where held writes wait. `watch` channels, because each is one value that
/// waiters need to see change, without a wake-up lost between check and wait.
#[derive(Debug)]
struct Gate {
    /// How many [`WriteHold`]s stand; writes wait while it is above zero.
    holds: watch::Sender<usize>,
    /// How many writes have ever been made while a hold stood.
    arrived: watch::Sender<u64>,
}

// === impl MemoryStore ===

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes writes fail (`true`) or succeed again (`false`).
    pub fn set_fail_writes(&self, fail: bool) {
        self.fail_writes.store(fail, Ordering::SeqCst);
    }

    /// Holds every write from now until the returned [`WriteHold`] is
    /// dropped: a write waits, unwritten, then lands. For tests that act
    /// (hang up, crash) while a write is in flight, as a slow disk or a
    /// Redis failover holds one; [`WriteHold::reached`] says when one is.
    pub fn hold_writes(&self) -> WriteHold {
        let gate = self.gate.get_or_init(|| Arc::new(Gate::new())).clone();
        gate.holds.send_modify(|n| *n += 1);
        let arrived_before = *gate.arrived.borrow();
        WriteHold {
            gate,
            arrived_before,
        }
    }

    /// Stores `grant` now, fenced by version, unless writes are switched off.
    fn write(&self, grant: &Grant) -> Result<(), StoreError> {
        if self.fail_writes.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(
                "writes disabled by test switch".into(),
            ));
        }
        let mut map = self.map();
        match map.get(&grant.key).map(|g| g.version) {
            Some(v) if v >= grant.version => Err(StoreError::Conflict {
                key: grant.key.id(),
                stored: v,
                attempted: grant.version,
            }),
            _ => {
                map.insert(grant.key.clone(), grant.clone());
                Ok(())
            }
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<GrantKey, Grant>> {
        // A poisoned map only means a panic elsewhere mid-insert; the data is still whole.
        self.grants.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl GrantStore for MemoryStore {
    fn load_all(&self) -> StoreFuture<'_, Vec<Grant>> {
        let all = self.map().values().cloned().collect();
        Box::pin(async move { Ok(all) })
    }

    fn load<'a>(&'a self, key: &'a GrantKey) -> StoreFuture<'a, Option<Grant>> {
        let found = self.map().get(key).cloned();
        Box::pin(async move { Ok(found) })
    }

    fn save<'a>(&'a self, grant: &'a Grant) -> StoreFuture<'a, ()> {
        // `save_wiped` is this too: the memory store keeps no old copies.
        if let Some(released) = self.gate.get().and_then(|gate| gate.enter()) {
            return Box::pin(async move {
                released.await;
                self.write(grant)
            });
        }
        let result = self.write(grant);
        Box::pin(async move { result })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }
}

// === impl WriteHold ===

impl WriteHold {
    /// Returns once a write has been made since this hold was taken: it waits
    /// at the hold, unwritten.
    pub async fn reached(&self) {
        let mut arrived = self.gate.arrived.subscribe();
        // The sender lives in the gate this hold keeps: the wait cannot fail.
        let _ = arrived.wait_for(|n| *n > self.arrived_before).await;
    }
}

impl Drop for WriteHold {
    fn drop(&mut self) {
        self.gate.holds.send_modify(|n| *n -= 1);
    }
}

// === impl Gate ===

impl Gate {
    fn new() -> Self {
        Self {
            holds: watch::channel(0).0,
            arrived: watch::channel(0).0,
        }
    }

    /// For a write being made: `None` if no hold stands, else it is counted
    /// as arrived and waits on the returned future until every hold is gone.
    fn enter(&self) -> Option<impl Future<Output = ()> + Send + 'static> {
        if *self.holds.borrow() == 0 {
            return None;
        }
        let mut holds = self.holds.subscribe();
        self.arrived.send_modify(|n| *n += 1);
        Some(async move {
            // `wait_for` checks the value first: a release since the check
            // above is seen, not waited for.
            let _ = holds.wait_for(|n| *n == 0).await;
        })
    }
}

/// Queues in memory, for tests and the demo: the [`Outbox`] of a process
/// whose grants are in memory too.
#[derive(Debug, Default)]
pub struct MemoryOutbox {
    queues: Mutex<MemoryQueues>,
}

#[derive(Debug, Default)]
struct MemoryQueues {
    next_id: u64,
    pending: HashMap<String, VecDeque<Envelope>>,
    dead: HashMap<String, VecDeque<Envelope>>,
}

// === impl MemoryOutbox ===

impl MemoryOutbox {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `f` on the queues. Critical sections never `.await`.
    fn with<T>(&self, f: impl FnOnce(&mut MemoryQueues) -> T) -> T {
        f(&mut self.queues.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The head of `queue` if its id is `id`, removed.
    fn take_head(queues: &mut MemoryQueues, queue: &str, id: u64) -> Option<Envelope> {
        let pending = queues.pending.get_mut(queue)?;
        match pending.front() {
            Some(head) if head.id == id => pending.pop_front(),
            _ => None,
        }
    }
}

impl Outbox for MemoryOutbox {
    fn push<'a>(&'a self, queues: &'a [String], message: &'a Message) -> StoreFuture<'a, ()> {
        self.with(|q| {
            for name in queues {
                q.next_id += 1;
                let envelope = Envelope {
                    id: q.next_id,
                    message: message.clone(),
                    attempts: 0,
                    not_before_ms: 0,
                    last_error: None,
                };
                q.pending
                    .entry(name.clone())
                    .or_default()
                    .push_back(envelope);
            }
        });
        Box::pin(async { Ok(()) })
    }

    fn head<'a>(&'a self, queue: &'a str) -> StoreFuture<'a, Option<Envelope>> {
        let head = self.with(|q| q.pending.get(queue).and_then(|p| p.front().cloned()));
        Box::pin(async move { Ok(head) })
    }

    fn update<'a>(&'a self, queue: &'a str, envelope: &'a Envelope) -> StoreFuture<'a, ()> {
        self.with(|q| {
            let head = q.pending.get_mut(queue).and_then(|p| p.front_mut());
            if let Some(head) = head.filter(|h| h.id == envelope.id) {
                *head = envelope.clone();
            }
        });
        Box::pin(async { Ok(()) })
    }

    fn ack<'a>(&'a self, queue: &'a str, id: u64) -> StoreFuture<'a, ()> {
        self.with(|q| Self::take_head(q, queue, id));
        Box::pin(async { Ok(()) })
    }

    fn bury<'a>(&'a self, queue: &'a str, envelope: &'a Envelope) -> StoreFuture<'a, ()> {
        self.with(|q| {
            if Self::take_head(q, queue, envelope.id).is_some() {
                let dead = q.dead.entry(queue.to_owned()).or_default();
                dead.push_back(envelope.clone());
                while dead.len() > MAX_DEAD_LETTERS {
                    dead.pop_front();
                }
            }
        });
        Box::pin(async { Ok(()) })
    }

    fn counts<'a>(&'a self, queue: &'a str) -> StoreFuture<'a, QueueCounts> {
        let counts = self.with(|q| QueueCounts {
            pending: q.pending.get(queue).map_or(0, |p| p.len() as u64),
            dead: q.dead.get(queue).map_or(0, |d| d.len() as u64),
        });
        Box::pin(async move { Ok(counts) })
    }

    fn dead<'a>(&'a self, queue: &'a str, limit: usize) -> StoreFuture<'a, Vec<Envelope>> {
        let dead = self.with(|q| {
            q.dead.get(queue).map_or_else(Vec::new, |d| {
                d.iter()
                    .skip(d.len().saturating_sub(limit))
                    .cloned()
                    .collect()
            })
        });
        Box::pin(async move { Ok(dead) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::outbox::contract;

    #[tokio::test]
    async fn memory_outbox_keeps_the_contract() {
        contract::run(&MemoryOutbox::new()).await;
        contract::dead_letters_are_capped(&MemoryOutbox::new()).await;
    }
}
