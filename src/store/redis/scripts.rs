//! Key names and the Lua scripts that make each multi-step change atomic in Redis.
//!
//! ```text
//! grantmux:grant:{ID}    hash  v = version, g = seal(serde_json(Grant), aad = ID)
//! grantmux:grants        set   every grant id, for start-up
//! grantmux:lock:{ID}     string  owner token of the replica refreshing ID (SET NX PX)
//! grantmux:intent:{ID}   string  "VERSION OWNER": a refresh of VERSION went to Zoom
//! grantmux:key_check     string  seal(KEY_CHECK_PLAINTEXT): every replica has one key
//! grantmux:changes       pub/sub channel, messages "INSTANCE ID"
//! ```
//!
//! The braces are Redis Cluster hash tags, so that a grant's keys would share a
//! slot; the index set does not, and grantmux supports a single primary only.

use redis::Script;

const PREFIX: &str = "grantmux:";

/// Every Redis name grantmux uses, built in one place.
#[derive(Clone, Debug)]
pub(super) struct Keys;

/// Fenced write. KEYS: grant hash, index set. ARGV: version, sealed grant, id.
/// Returns -1 when written, else the stored version that refused it.
pub(super) const SAVE: &str = r"
local stored = redis.call('HGET', KEYS[1], 'v')
if stored and tonumber(stored) >= tonumber(ARGV[1]) then
  return tonumber(stored)
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'g', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
return -1
";

/// Extends the lock's lease if we still own it. KEYS: lock. ARGV: owner, lease ms.
pub(super) const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// Deletes the lock if we still own it. KEYS: lock. ARGV: owner.
pub(super) const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Marks a refresh of the stored version as sent to Zoom. KEYS: intent, grant
/// hash. ARGV: owner, marker TTL ms. Returns 1 if a marker for the same
/// version was already there: that refresh never finished. A marker for an
/// older version is stale, since someone stored a newer grant after it.
pub(super) const BEGIN_REFRESH: &str = r"
local version = redis.call('HGET', KEYS[2], 'v') or '0'
local prev = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], version .. ' ' .. ARGV[1], 'PX', ARGV[2])
if prev and string.sub(prev, 1, #version + 1) == version .. ' ' then
  return 1
end
return 0
";

/// Clears the intent marker if it is ours. KEYS: intent. ARGV: owner.
pub(super) const END_REFRESH: &str = r"
local marker = redis.call('GET', KEYS[1])
local mine = ' ' .. ARGV[1]
if marker and string.sub(marker, -#mine) == mine then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// The scripts, hashed once (`EVALSHA`, falling back to `EVAL` after a restart).
#[derive(Debug)]
pub(super) struct Scripts {
    pub(super) save: Script,
    pub(super) renew: Script,
    pub(super) release: Script,
    pub(super) begin_refresh: Script,
    pub(super) end_refresh: Script,
}

// === impl Keys ===

impl Keys {
    pub(super) fn grant(id: &str) -> String {
        format!("{PREFIX}grant:{{{id}}}")
    }

    pub(super) fn lock(id: &str) -> String {
        format!("{PREFIX}lock:{{{id}}}")
    }

    pub(super) fn intent(id: &str) -> String {
        format!("{PREFIX}intent:{{{id}}}")
    }

    pub(super) fn index() -> String {
        format!("{PREFIX}grants")
    }

    pub(super) fn key_check() -> String {
        format!("{PREFIX}key_check")
    }

    pub(super) fn channel() -> String {
        format!("{PREFIX}changes")
    }
}

// === impl Scripts ===

impl Scripts {
    pub(super) fn new() -> Self {
        Self {
            save: Script::new(SAVE),
            renew: Script::new(RENEW),
            release: Script::new(RELEASE),
            begin_refresh: Script::new(BEGIN_REFRESH),
            end_refresh: Script::new(END_REFRESH),
        }
    }
}
