//! Static caller keys (`[[caller]]`): a key selects a grant.

use std::collections::HashMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Caller;
use crate::grants::GrantKey;
use crate::ratelimit::Flow;

/// Keys are indexed by their SHA-256, so the lookup's timing depends on a hash
/// the attacker cannot steer toward a real key; the final comparison is constant-time.
#[derive(Debug, Default)]
pub struct CallerKeys {
    by_digest: HashMap<[u8; 32], (StaticCaller, GrantKey)>,
}

/// What grantmux knows of a `[[caller]]` once its key matched.
#[derive(Debug)]
pub struct StaticCaller {
    pub name: String,
    /// Its rate-limit flow: `caller:<name>` and its weight.
    pub flow: Flow,
}

// === impl CallerKeys ===

impl CallerKeys {
    pub fn new(callers: &[Caller]) -> Self {
        let by_digest = callers
            .iter()
            .map(|c| {
                let caller = StaticCaller {
                    name: c.name.clone(),
                    flow: Flow {
                        id: Arc::from(format!("caller:{}", c.name)),
                        weight: c.weight,
                    },
                };
                (digest(c.key.expose()), (caller, c.grant.clone()))
            })
            .collect();
        Self { by_digest }
    }

    /// The caller and its grant for a presented key.
    pub fn lookup(&self, presented: &str) -> Option<(&StaticCaller, &GrantKey)> {
        let d = digest(presented);
        let (stored, (caller, grant)) = self.by_digest.get_key_value(&d)?;
        bool::from(stored.ct_eq(&d)).then_some((caller, grant))
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}
