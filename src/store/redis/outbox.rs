//! The [`Outbox`] in Redis: one list per queue, shared by every replica.
//!
//! An item is `"ID:" + seal(serde_json(Envelope), aad = "outbox/QUEUE")`
//! ([`scripts`](super::scripts) lists the keys). Bodies hold users' data, so
//! they are sealed like grants; the associated data binds a record to its
//! queue, so one copied into another queue does not open. The id is in the
//! clear as well because sealing draws a fresh nonce: the scripts that change
//! a queue find its head's id by reading that prefix, and only act if it is
//! the id the courier expects. Opening checks the sealed id against the prefix.
//!
//! Ids come from `INCRBY` on one counter, reserved before sealing (a sealed
//! envelope holds its id). A replica can reserve ids before another and push
//! after it; the push script then refuses, and the push reserves again, so
//! that ids rise in queue order as [`Envelope::id`] promises.
//!
//! Durability is Redis's: a push is as durable as its persistence makes an
//! acknowledged write (`appendonly yes` with `appendfsync always` loses
//! nothing; `everysec`, Redis's default, up to a second; a failover to a
//! replica, what it had not yet copied). With `store.min_replicas_acked`, a
//! push also waits for replicas (`WAIT`) before it counts as done.

use std::time::Duration;

use super::scripts::Keys;
use super::{unavailable, Inner, RedisStore};
use crate::store::outbox::{Envelope, Message, Outbox, QueueCounts, MAX_DEAD_LETTERS};
use crate::store::{StoreError, StoreFuture};

/// Reservations a push makes before giving up: each refusal means another
/// replica's push landed, so even a busy queue lets one through in a few.
const PUSH_ATTEMPTS: usize = 16;

impl Outbox for RedisStore {
    fn push<'a>(&'a self, queues: &'a [String], message: &'a Message) -> StoreFuture<'a, ()> {
        Box::pin(self.inner.push(queues, message))
    }

    fn head<'a>(&'a self, queue: &'a str) -> StoreFuture<'a, Option<Envelope>> {
        Box::pin(self.inner.head(queue))
    }

    fn update<'a>(&'a self, queue: &'a str, envelope: &'a Envelope) -> StoreFuture<'a, ()> {
        Box::pin(self.inner.update(queue, envelope))
    }

    fn ack<'a>(&'a self, queue: &'a str, id: u64) -> StoreFuture<'a, ()> {
        Box::pin(self.inner.ack(queue, id))
    }

    fn bury<'a>(&'a self, queue: &'a str, envelope: &'a Envelope) -> StoreFuture<'a, ()> {
        Box::pin(self.inner.bury(queue, envelope))
    }

    fn counts<'a>(&'a self, queue: &'a str) -> StoreFuture<'a, QueueCounts> {
        Box::pin(self.inner.counts(queue))
    }

    fn dead<'a>(&'a self, queue: &'a str, limit: usize) -> StoreFuture<'a, Vec<Envelope>> {
        Box::pin(self.inner.dead(queue, limit))
    }

    fn claim<'a>(&'a self, queue: &'a str, ttl: Duration) -> StoreFuture<'a, bool> {
        Box::pin(self.inner.claim(queue, ttl))
    }
}

// === impl Inner ===

impl Inner {
    /// One id per queue, reserved, then one script appends to every queue.
    /// Returns once Redis has acknowledged the script: durable as far as its
    /// persistence goes (see the module's doc).
    async fn push(&self, queues: &[String], message: &Message) -> Result<(), StoreError> {
        if queues.is_empty() {
            return Ok(());
        }
        for _ in 0..PUSH_ATTEMPTS {
            let first = self.reserve_ids(queues.len()).await?;
            let items = queues
                .iter()
                .zip(first..)
                .map(|(queue, id)| self.seal(queue, &fresh(id, message)))
                .collect::<Result<Vec<_>, _>>()?;
            if self.append(queues, &items).await? {
                return Ok(());
            }
        }
        Err(StoreError::Unavailable(format!(
            "redis: outbox push: other replicas' pushes landed first {PUSH_ATTEMPTS} times"
        )))
    }

    /// Reserves `n` consecutive ids; returns the first.
    async fn reserve_ids(&self, n: usize) -> Result<u64, StoreError> {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        let last: i64 = redis::cmd("INCRBY")
            .arg(Keys::outbox_ids())
            .arg(n)
            .query_async(&mut self.primary.conn())
            .await
            .map_err(unavailable)?;
        // Below zero only if someone wrote a negative count by hand.
        u64::try_from(last - n + 1)
            .map_err(|_| StoreError::Corrupt(format!("redis: {} is negative", Keys::outbox_ids())))
    }

    /// Appends `items[i]` to `queues[i]`, all or none. `false`: refused, since
    /// a queue's tail has a higher id.
    async fn append(&self, queues: &[String], items: &[Vec<u8>]) -> Result<bool, StoreError> {
        let mut script = self.scripts.outbox_push.key(Keys::outbox_ids());
        for (queue, item) in queues.iter().zip(items) {
            script.key(Keys::outbox(queue)).arg(item.as_slice());
        }
        let (appended, mut conn) = self.invoke_acked(&script).await?;
        if appended == 1 {
            self.replicated(&mut conn).await?;
        }
        Ok(appended == 1)
    }

    async fn head(&self, queue: &str) -> Result<Option<Envelope>, StoreError> {
        let item: Option<Vec<u8>> = redis::cmd("LINDEX")
            .arg(Keys::outbox(queue))
            .arg(0)
            .query_async(&mut self.primary.conn())
            .await
            .map_err(unavailable)?;
        item.map(|item| self.open(queue, &item)).transpose()
    }

    async fn update(&self, queue: &str, envelope: &Envelope) -> Result<(), StoreError> {
        let item = self.seal(queue, envelope)?;
        let _: i64 = self
            .scripts
            .outbox_update
            .key(Keys::outbox(queue))
            .arg(envelope.id)
            .arg(item)
            .invoke_async(&mut self.primary.conn())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn ack(&self, queue: &str, id: u64) -> Result<(), StoreError> {
        let _: i64 = self
            .scripts
            .outbox_ack
            .key(Keys::outbox(queue))
            .arg(id)
            .invoke_async(&mut self.primary.conn())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn bury(&self, queue: &str, envelope: &Envelope) -> Result<(), StoreError> {
        let item = self.seal(queue, envelope)?;
        let _: i64 = self
            .scripts
            .outbox_bury
            .key(Keys::outbox(queue))
            .key(Keys::outbox_dead(queue))
            .arg(envelope.id)
            .arg(item)
            .arg(MAX_DEAD_LETTERS)
            .invoke_async(&mut self.primary.conn())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Both lengths at one instant (`MULTI`), so a burial in between is
    /// counted once.
    async fn counts(&self, queue: &str) -> Result<QueueCounts, StoreError> {
        let (pending, dead): (u64, u64) = redis::pipe()
            .atomic()
            .cmd("LLEN")
            .arg(Keys::outbox(queue))
            .cmd("LLEN")
            .arg(Keys::outbox_dead(queue))
            .query_async(&mut self.primary.conn())
            .await
            .map_err(unavailable)?;
        Ok(QueueCounts { pending, dead })
    }

    async fn dead(&self, queue: &str, limit: usize) -> Result<Vec<Envelope>, StoreError> {
        // `LRANGE key -0 -1` would be the whole list.
        if limit == 0 {
            return Ok(Vec::new());
        }
        let from = -i64::try_from(limit).unwrap_or(i64::MAX);
        let items: Vec<Vec<u8>> = redis::cmd("LRANGE")
            .arg(Keys::outbox_dead(queue))
            .arg(from)
            .arg(-1)
            .query_async(&mut self.primary.conn())
            .await
            .map_err(unavailable)?;
        items.iter().map(|item| self.open(queue, item)).collect()
    }

    /// Our claim on `queue`, taken or renewed under this store's instance
    /// token: the replica's, so every courier of this process shares it.
    async fn claim(&self, queue: &str, ttl: Duration) -> Result<bool, StoreError> {
        // `PX 0` is an error in Redis; a lease shorter than a millisecond is one.
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let held: i64 = self
            .scripts
            .outbox_claim
            .key(Keys::outbox_claim(queue))
            .arg(&self.instance)
            .arg(ttl_ms)
            .invoke_async(&mut self.primary.conn())
            .await
            .map_err(unavailable)?;
        Ok(held == 1)
    }

    /// `envelope` as a list item of `queue`: `"ID:" + sealed envelope`.
    fn seal(&self, queue: &str, envelope: &Envelope) -> Result<Vec<u8>, StoreError> {
        let json = serde_json::to_vec(envelope).map_err(|e| {
            StoreError::Corrupt(format!(
                "encoding outbox {queue} message {}: {e}",
                envelope.id
            ))
        })?;
        let mut item = format!("{}:", envelope.id).into_bytes();
        item.extend(self.cipher.seal(aad(queue).as_bytes(), &json));
        Ok(item)
    }

    /// Opens a list item of `queue`; its id prefix must match the sealed id.
    fn open(&self, queue: &str, item: &[u8]) -> Result<Envelope, StoreError> {
        let corrupt = |what: String| StoreError::Corrupt(format!("redis: outbox {queue}: {what}"));
        let (id, sealed) = split_id(item).ok_or_else(|| corrupt("item has no id prefix".into()))?;
        let json = self
            .cipher
            .open(aad(queue).as_bytes(), sealed)
            .map_err(|e| corrupt(format!("message {id}: {e}")))?;
        let envelope: Envelope = serde_json::from_slice(&json)
            .map_err(|e| corrupt(format!("message {id}: undecodable: {e}")))?;
        if envelope.id != id {
            return Err(corrupt(format!("item {id} holds message {}", envelope.id)));
        }
        Ok(envelope)
    }
}

/// A newly queued message: no attempt yet.
fn fresh(id: u64, message: &Message) -> Envelope {
    Envelope {
        id,
        message: message.clone(),
        attempts: 0,
        not_before_ms: 0,
        last_error: None,
    }
}

/// The associated data of `queue`'s records.
fn aad(queue: &str) -> String {
    format!("outbox/{queue}")
}

/// `"ID:REST"` as `(ID, REST)`.
fn split_id(item: &[u8]) -> Option<(u64, &[u8])> {
    let colon = item.iter().position(|&b| b == b':')?;
    let id = std::str::from_utf8(&item[..colon]).ok()?.parse().ok()?;
    Some((id, &item[colon + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_splits_at_its_first_colon() {
        assert_eq!(split_id(b"42:\x01a:b"), Some((42, &b"\x01a:b"[..])));
        assert_eq!(split_id(b"42"), None);
        assert_eq!(split_id(b"x:1"), None);
        assert_eq!(split_id(b":1"), None);
    }
}
