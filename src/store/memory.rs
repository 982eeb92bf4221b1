//! The in-memory store, for tests and the demo. Nothing survives the process.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

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
        let result = if self.fail_writes.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable(
                "writes disabled by test switch".into(),
            ))
        } else {
            let mut map = self.map();
            let stored = map.get(&grant.key).map(|g| g.version);
            match stored {
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
        };
        Box::pin(async move { result })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async { Ok(()) })
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
