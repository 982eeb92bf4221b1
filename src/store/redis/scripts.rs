//! Key names and the Lua scripts that make each multi-step change atomic in Redis.
//!
//! ```text
//! grantmux:grant:{ID}    hash  v = version, g = seal(serde_json(Grant), aad = ID)
//! grantmux:grants        set   every grant id, for start-up
//! grantmux:lock:{ID}     string  owner token of the replica refreshing ID (SET NX PX)
//! grantmux:intent:{ID}   string  "VERSION OWNER": a refresh of VERSION went to Zoom
//! grantmux:key_check     string  seal(KEY_CHECK_PLAINTEXT): every replica has one key
//! grantmux:changes       pub/sub channel, messages "INSTANCE ID"
//!
//! grantmux:outbox:{Q}        list  queue Q's waiting messages, oldest first (LINDEX 0 is the head)
//! grantmux:outbox_dead:{Q}   list  Q's dead letters, oldest first, at most MAX_DEAD_LETTERS
//! grantmux:outbox_claim:{Q}  string  instance token of the replica delivering Q (SET NX PX)
//! grantmux:outbox_ids        string  the last message id handed out (INCRBY)
//! ```
//!
//! An outbox item is `"ID:" + seal(serde_json(Envelope), aad = "outbox/Q")`:
//! the decimal id in the clear, so that a script can tell which message is at
//! a queue's head (sealing uses a fresh nonce, so equal envelopes never seal
//! alike), and the sealed envelope, which holds the id too and is checked
//! against it when opened. See `outbox.rs`.
//!
//! The braces are Redis Cluster hash tags, so that a grant's keys, or a queue's
//! two lists, would share a slot; the index set and a push to several queues do
//! not, and grantmux supports a single primary only.

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

/// Lua helpers of the outbox scripts. Ids are compared as decimal strings
/// (longer is larger), never as Lua numbers: those are doubles.
const OUTBOX_HELPERS: &str = r"
local function id_of(item)
  return string.match(item, '^(%d+):') or ''
end
local function above(a, b)
  return #a > #b or (#a == #b and a > b)
end
local function head_is(key, id)
  local head = redis.call('LINDEX', key, 0)
  return head and id_of(head) == id
end
";

/// Appends one item to each queue, all or none. KEYS: the id counter, then one
/// list per item. ARGV: the items. Returns 0, adding nothing, if a queue's
/// tail has a higher id than the item meant for it (another replica reserved
/// ids before us but pushed after): ids must rise in queue order, so the
/// caller reserves new ids and tries again. A counter below that tail (deleted
/// by hand) is raised to it, so that the next reservation passes.
const OUTBOX_PUSH: &str = r"
for i = 2, #KEYS do
  local tail = redis.call('LINDEX', KEYS[i], -1)
  if tail and above(id_of(tail), id_of(ARGV[i - 1])) then
    if above(id_of(tail), redis.call('GET', KEYS[1]) or '0') then
      redis.call('SET', KEYS[1], id_of(tail))
    end
    return 0
  end
end
for i = 2, #KEYS do
  redis.call('RPUSH', KEYS[i], ARGV[i - 1])
end
return 1
";

/// Rewrites the head if its id is the expected one. KEYS: queue. ARGV: id, item.
const OUTBOX_UPDATE: &str = r"
if head_is(KEYS[1], ARGV[1]) then
  redis.call('LSET', KEYS[1], 0, ARGV[2])
  return 1
end
return 0
";

/// Removes the head if its id is the expected one. KEYS: queue. ARGV: id.
const OUTBOX_ACK: &str = r"
if head_is(KEYS[1], ARGV[1]) then
  redis.call('LPOP', KEYS[1])
  return 1
end
return 0
";

/// Moves the head, if its id is the expected one, to the dead letters as
/// `item` (its final delivery record), keeping the newest `max`. KEYS: queue,
/// dead letters. ARGV: id, item, max.
const OUTBOX_BURY: &str = r"
if head_is(KEYS[1], ARGV[1]) then
  redis.call('LPOP', KEYS[1])
  redis.call('RPUSH', KEYS[2], ARGV[2])
  redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
  return 1
end
return 0
";

/// Takes a queue's delivery claim, or renews it if it is already ours.
/// KEYS: claim. ARGV: instance token, lease ms. Returns 1 if we hold it.
const OUTBOX_CLAIM: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
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
    pub(super) outbox_push: Script,
    pub(super) outbox_update: Script,
    pub(super) outbox_ack: Script,
    pub(super) outbox_bury: Script,
    pub(super) outbox_claim: Script,
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

    pub(super) fn outbox(queue: &str) -> String {
        format!("{PREFIX}outbox:{{{queue}}}")
    }

    pub(super) fn outbox_dead(queue: &str) -> String {
        format!("{PREFIX}outbox_dead:{{{queue}}}")
    }

    pub(super) fn outbox_claim(queue: &str) -> String {
        format!("{PREFIX}outbox_claim:{{{queue}}}")
    }

    pub(super) fn outbox_ids() -> String {
        format!("{PREFIX}outbox_ids")
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
            outbox_push: outbox_script(OUTBOX_PUSH),
            outbox_update: outbox_script(OUTBOX_UPDATE),
            outbox_ack: outbox_script(OUTBOX_ACK),
            outbox_bury: outbox_script(OUTBOX_BURY),
            outbox_claim: Script::new(OUTBOX_CLAIM),
        }
    }
}

/// An outbox script with the helpers it calls in front.
fn outbox_script(body: &str) -> Script {
    Script::new(&format!("{OUTBOX_HELPERS}{body}"))
}
