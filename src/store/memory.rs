//! The in-memory store, for tests and the demo. Nothing survives the process.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

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
