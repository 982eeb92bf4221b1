//! One budget for every replica: the pacing state and the daily closures in
//! Redis, changed by Lua scripts so that a take is atomic across replicas.
//!
//! ```text
//! grantmux:rl:{ACCOUNT}:{CATEGORY}      string  next free instant, µs of Redis's clock (GCRA)
//! grantmux:rl-closed:{ACCOUNT}:{CATEGORY}  string  JSON Closure, expiring at Zoom's reset
//! grantmux:rl-closed:{ACCOUNT}:user:{USER} string  the same, for a user's meeting-write cap
//! ```
//!
//! The scripts read Redis's own clock (`TIME`), so replicas with skewed clocks
//! still pace one stream. While Redis does not answer, each replica paces
//! alone (the caller falls back to its local state) and asks Redis again after
//! [`RETRY_AFTER_FAILURE`]: a replica never waits on a dead Redis per request.

use std::sync::Mutex;
use std::time::Duration;

use crate::store::RedisPrimary as Primary;
use redis::Script;
use tokio::time::Instant;

use super::{Bucket, BucketKey, ClosedKey, Closure};

/// A take that takes longer than this is treated as Redis being unreachable.
const TAKE_TIMEOUT: Duration = Duration::from_millis(250);
/// After a failure, local pacing only for this long.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// KEYS: pacing state, closure. ARGV: interval µs, slack µs (see `slack`).
/// Returns {0} taken, {1, µs to wait}, or {2, closure JSON}.
const TAKE: &str = r"
local closed = redis.call('GET', KEYS[2])
if closed then return {2, closed} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local free = tonumber(redis.call('GET', KEYS[1]) or '0')
if free > now then return {1, free - now} end
local interval = tonumber(ARGV[1])
local from = math.max(free, now - tonumber(ARGV[2]))
redis.call('SET', KEYS[1], string.format('%d', from + interval), 'PX', math.ceil(interval / 1000) + 1000)
return {0}
";

/// KEYS: pacing state. ARGV: µs from now before which nothing is free.
const DEFER: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local free = tonumber(redis.call('GET', KEYS[1]) or '0')
local until_ = now + tonumber(ARGV[1])
if until_ > free then
  redis.call('SET', KEYS[1], string.format('%d', until_), 'PX', math.ceil(tonumber(ARGV[1]) / 1000) + 1000)
end
return 0
";

/// The Redis side of the budgets. `Debug` shows nothing of the connection.
pub struct SharedBudget {
    primary: Primary,
    take: Script,
    defer: Script,
    down_until: Mutex<Option<Instant>>,
}

pub(super) enum Took {
    Yes,
    Later(Duration),
    Closed(Closure),
}

impl std::fmt::Debug for SharedBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedBudget").finish_non_exhaustive()
    }
}

// === impl SharedBudget ===

impl SharedBudget {
    pub fn new(primary: Primary) -> Self {
        Self {
            primary,
            take: Script::new(TAKE),
            defer: Script::new(DEFER),
            down_until: Mutex::new(None),
        }
    }

    /// `Err(())`: Redis did not answer; the caller paces locally.
    pub(super) async fn take(
        &self,
        bucket: &Bucket,
        interval: Duration,
        slack: Duration,
    ) -> Result<Took, ()> {
        self.usable()?;
        let mut conn = self.primary.conn();
        let mut call = self.take.prepare_invoke();
        call.key(&bucket.shared_key)
            .key(closed_key(&ClosedKey::Category(bucket.key.clone())))
            .arg(u64::try_from(interval.as_micros()).unwrap_or(u64::MAX))
            .arg(u64::try_from(slack.as_micros()).unwrap_or(0));
        let answer: redis::Value = self.guard(call.invoke_async(&mut conn)).await?;
        let redis::Value::Array(items) = answer else {
            return Err(());
        };
        let code = items.first().and_then(as_int);
        Ok(match code {
            Some(0) => Took::Yes,
            Some(1) => Took::Later(Duration::from_micros(
                items.get(1).and_then(as_int).unwrap_or(1000).max(1) as u64,
            )),
            Some(2) => match items.get(1) {
                Some(redis::Value::BulkString(json)) => {
                    Took::Closed(serde_json::from_slice(json).map_err(|_| ())?)
                }
                _ => return Err(()),
            },
            _ => return Err(()),
        })
    }

    pub(super) async fn defer(&self, bucket: &Bucket, wait: Duration) -> Result<(), ()> {
        self.usable()?;
        let mut conn = self.primary.conn();
        let mut call = self.defer.prepare_invoke();
        call.key(&bucket.shared_key)
            .arg(u64::try_from(wait.as_micros()).unwrap_or(u64::MAX));
        let _: i64 = self.guard(call.invoke_async(&mut conn)).await?;
        Ok(())
    }

    pub(super) async fn close(
        &self,
        key: &ClosedKey,
        closure: &Closure,
        ttl_ms: u64,
    ) -> Result<(), ()> {
        self.usable()?;
        let json = serde_json::to_string(closure).map_err(|_| ())?;
        let mut conn = self.primary.conn();
        let mut cmd = redis::cmd("SET");
        cmd.arg(closed_key(key))
            .arg(json)
            .arg("PX")
            .arg(ttl_ms.max(1));
        let _: () = self.guard(cmd.query_async(&mut conn)).await?;
        Ok(())
    }

    fn usable(&self) -> Result<(), ()> {
        let down = self.down_until.lock().unwrap_or_else(|p| p.into_inner());
        match *down {
            Some(until) if Instant::now() < until => Err(()),
            _ => Ok(()),
        }
    }

    async fn guard<T>(
        &self,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, ()> {
        match tokio::time::timeout(TAKE_TIMEOUT, call).await {
            Ok(Ok(v)) => {
                *self.down_until.lock().unwrap_or_else(|p| p.into_inner()) = None;
                Ok(v)
            }
            failed => {
                let mut down = self.down_until.lock().unwrap_or_else(|p| p.into_inner());
                if down.is_none() {
                    let why = match failed {
                        Ok(Err(e)) => format!("{:?}", e.kind()),
                        _ => "timed out".to_owned(),
                    };
                    tracing::warn!(
                        error = why,
                        "rate-limit budgets: Redis unreachable, pacing locally"
                    );
                }
                *down = Some(Instant::now() + RETRY_AFTER_FAILURE);
                Err(())
            }
        }
    }
}

fn as_int(v: &redis::Value) -> Option<i64> {
    match v {
        redis::Value::Int(n) => Some(*n),
        _ => None,
    }
}

pub(super) fn bucket_key(key: &BucketKey) -> String {
    format!("grantmux:rl:{}:{}", key.account, key.category.label())
}

fn closed_key(key: &ClosedKey) -> String {
    match key {
        ClosedKey::Category(k) => {
            format!("grantmux:rl-closed:{}:{}", k.account, k.category.label())
        }
        ClosedKey::UserWrites { account, user } => {
            format!("grantmux:rl-closed:{account}:user:{user}")
        }
    }
}
