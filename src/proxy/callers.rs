//! Static caller keys (`[[caller]]`): a key selects a grant.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::config::Caller;
use crate::grants::GrantKey;
use crate::ratelimit::Flow;

/// Keys are indexed by their SHA-256, so the lookup's timing, the map's
/// comparison of digests included, depends on a hash the attacker cannot
/// steer toward a real key: how much of a digest matched tells nothing of
/// the key behind it. (A constant-time comparison after the map's own one,
/// as there was, added 300 instructions a request and no secrecy.)
#[derive(Debug, Default)]
pub struct CallerKeys {
    by_digest: HashMap<[u8; 32], (StaticCaller, GrantKey), DigestHasher>,
}

/// Buckets a SHA-256 digest by its first eight bytes. A digest is already
/// uniform, and no caller can steer it, so hashing it again (SipHash, the
/// map's default, about 250 instructions for 32 bytes) adds nothing.
#[derive(Clone, Copy, Debug, Default)]
struct DigestHasher;

/// The [`Hasher`] of [`DigestHasher`]: keeps the first eight bytes written.
#[derive(Debug, Default)]
struct DigestBits(u64);

impl BuildHasher for DigestHasher {
    type Hasher = DigestBits;

    fn build_hasher(&self) -> DigestBits {
        DigestBits(0)
    }
}

impl Hasher for DigestBits {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // `[u8; 32]` writes its length, the same for every key, then its
        // bytes: the result is the digest's first eight bytes, shifted by a
        // constant.
        let mut first = [0; 8];
        let n = bytes.len().min(8);
        first[..n].copy_from_slice(&bytes[..n]);
        self.0 ^= u64::from_le_bytes(first);
    }
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
        let (caller, grant) = self.by_digest.get(&digest(presented))?;
        Some((caller, grant))
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grants::Subject;
    use crate::secret::Secret;

    #[test]
    fn each_key_finds_its_own_caller_and_grant_and_no_other_key_finds_one() {
        let caller = |name: &str, key: &str, account: &str| Caller {
            name: name.into(),
            key: Secret::new(key),
            grant: GrantKey::new("app", Subject::Account(account.into())),
            weight: 1,
        };
        let callers = (0..50)
            .map(|i| caller(&format!("c{i}"), &format!("key-{i}"), &format!("acct-{i}")))
            .collect::<Vec<_>>();
        let keys = CallerKeys::new(&callers);
        for i in 0..50 {
            let (found, grant) = keys.lookup(&format!("key-{i}")).expect("a known key");
            assert_eq!(found.name, format!("c{i}"));
            assert_eq!(grant.subject, Subject::Account(format!("acct-{i}")));
            assert_eq!(&*found.flow.id, format!("caller:c{i}"));
        }
        for unknown in ["", "key-50", "key-1 ", "KEY-1"] {
            assert!(keys.lookup(unknown).is_none(), "{unknown:?}");
        }
    }
}
