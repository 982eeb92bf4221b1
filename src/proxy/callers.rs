//! Static caller keys (`[[caller]]`): a key selects a grant.

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Caller;
use crate::grants::GrantKey;

/// Keys are indexed by their SHA-256, so the lookup's timing depends on a hash
/// the attacker cannot steer toward a real key; the final comparison is constant-time.
#[derive(Debug, Default)]
pub struct CallerKeys {
    by_digest: HashMap<[u8; 32], (String, GrantKey)>,
}

// === impl CallerKeys ===

impl CallerKeys {
    pub fn new(callers: &[Caller]) -> Self {
        let by_digest = callers
            .iter()
            .map(|c| (digest(c.key.expose()), (c.name.clone(), c.grant.clone())))
            .collect();
        Self { by_digest }
    }

    /// The caller's name and grant for a presented key.
    pub fn lookup(&self, presented: &str) -> Option<(&str, &GrantKey)> {
        let d = digest(presented);
        let (stored, (name, grant)) = self.by_digest.get_key_value(&d)?;
        bool::from(stored.ct_eq(&d)).then_some((name.as_str(), grant))
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}
