//! The file store's [`Outbox`]: queues in the grants database, so that a
//! message Zoom was told we took survives a restart or a `kill -9` with the
//! grants it concerns.
//!
//! A message is a row `(queue, id)`: redb orders tuple keys field by field, so
//! a queue is one contiguous range, oldest first, and its head is the first
//! row of the range. Ids come from one counter (`outbox_seq`), written in the
//! same transaction as the rows it numbered, so they rise across restarts even
//! when every queue is empty. Bodies hold users' data: each row is sealed like
//! a grant, bound to its table, queue and id, so a row copied elsewhere fails
//! to open instead of being delivered to the wrong target.
//!
//! Writes go through `blocking` (each commits with an fsync); reads are a
//! short range scan and run inline, as `load` does. A table that was never
//! written (a store older than the outbox) reads as empty.

use redb::{ReadTransaction, ReadableTable, TableDefinition};

use super::{
    at, blocking, open_if_present, FileStore, Inner, DEAD_LETTERS, LAST_ID, OUTBOX, OUTBOX_SEQ,
};
use crate::store::outbox::{Envelope, Message, Outbox, QueueCounts, MAX_DEAD_LETTERS};
use crate::store::{StoreError, StoreFuture};

type QueueTable = TableDefinition<'static, (&'static str, u64), &'static [u8]>;

/// Which of the two queue tables a row lives in; part of its sealing.
#[derive(Clone, Copy, Debug)]
enum Place {
    Waiting,
    Dead,
}

impl Outbox for FileStore {
    fn push<'a>(&'a self, queues: &'a [String], message: &'a Message) -> StoreFuture<'a, ()> {
        let (inner, queues, message) = (self.inner.clone(), queues.to_vec(), message.clone());
        Box::pin(blocking(move || inner.push(&queues, &message)))
    }

    fn head<'a>(&'a self, queue: &'a str) -> StoreFuture<'a, Option<Envelope>> {
        let head = self.inner.head(queue);
        Box::pin(async move { head })
    }

    fn update<'a>(&'a self, queue: &'a str, envelope: &'a Envelope) -> StoreFuture<'a, ()> {
        let (inner, queue, envelope) = (self.inner.clone(), queue.to_owned(), envelope.clone());
        Box::pin(blocking(move || inner.update_head(&queue, &envelope)))
    }

    fn ack<'a>(&'a self, queue: &'a str, id: u64) -> StoreFuture<'a, ()> {
        let (inner, queue) = (self.inner.clone(), queue.to_owned());
        Box::pin(blocking(move || inner.ack(&queue, id)))
    }

    fn bury<'a>(&'a self, queue: &'a str, envelope: &'a Envelope) -> StoreFuture<'a, ()> {
        let (inner, queue, envelope) = (self.inner.clone(), queue.to_owned(), envelope.clone());
        Box::pin(blocking(move || inner.bury(&queue, &envelope)))
    }

    fn counts<'a>(&'a self, queue: &'a str) -> StoreFuture<'a, QueueCounts> {
        let counts = self.inner.counts(queue);
        Box::pin(async move { counts })
    }

    fn dead<'a>(&'a self, queue: &'a str, limit: usize) -> StoreFuture<'a, Vec<Envelope>> {
        let dead = self.inner.dead(queue, limit);
        Box::pin(async move { dead })
    }
}

// === impl Inner ===

impl Inner {
    /// Numbers one copy of `message` per queue and writes them all, with the
    /// counter, in one durable transaction.
    fn push(&self, queues: &[String], message: &Message) -> Result<(), StoreError> {
        if queues.is_empty() {
            return Ok(());
        }
        self.write_txn(|txn| {
            let mut seq = txn.open_table(OUTBOX_SEQ).map_err(at(&self.folder))?;
            let mut last = seq
                .get(LAST_ID)
                .map_err(at(&self.folder))?
                .map_or(0, |v| v.value());
            let mut table = txn.open_table(OUTBOX).map_err(at(&self.folder))?;
            for queue in queues {
                last += 1;
                let envelope = Envelope {
                    id: last,
                    message: message.clone(),
                    attempts: 0,
                    not_before_ms: 0,
                    last_error: None,
                };
                let sealed = self.seal_envelope(Place::Waiting, queue, &envelope)?;
                table
                    .insert((queue.as_str(), last), sealed.as_slice())
                    .map_err(at(&self.folder))?;
            }
            seq.insert(LAST_ID, last).map_err(at(&self.folder))?;
            Ok(())
        })
    }

    fn head(&self, queue: &str) -> Result<Option<Envelope>, StoreError> {
        self.read(|txn| {
            let Some(table) = open_if_present(txn, OUTBOX, &self.folder)? else {
                return Ok(None);
            };
            let mut rows = table.range(range(queue)).map_err(at(&self.folder))?;
            let first = rows.next().transpose().map_err(at(&self.folder))?;
            first
                .map(|(key, sealed)| {
                    self.open_envelope(Place::Waiting, queue, key.value().1, sealed.value())
                })
                .transpose()
        })
    }

    /// Rewrites the head's delivery record if the head is still `envelope.id`.
    fn update_head(&self, queue: &str, envelope: &Envelope) -> Result<(), StoreError> {
        self.write_txn(|txn| {
            let mut table = txn.open_table(OUTBOX).map_err(at(&self.folder))?;
            if self.head_id(&table, queue)? == Some(envelope.id) {
                let sealed = self.seal_envelope(Place::Waiting, queue, envelope)?;
                table
                    .insert((queue, envelope.id), sealed.as_slice())
                    .map_err(at(&self.folder))?;
            }
            Ok(())
        })
    }

    fn ack(&self, queue: &str, id: u64) -> Result<(), StoreError> {
        self.write_txn(|txn| {
            let mut table = txn.open_table(OUTBOX).map_err(at(&self.folder))?;
            if self.head_id(&table, queue)? == Some(id) {
                table.remove((queue, id)).map_err(at(&self.folder))?;
            }
            Ok(())
        })
    }

    /// Moves the head, if it is still `envelope.id`, to the dead letters with
    /// `envelope`'s record, and drops the oldest beyond [`MAX_DEAD_LETTERS`].
    fn bury(&self, queue: &str, envelope: &Envelope) -> Result<(), StoreError> {
        self.write_txn(|txn| {
            let mut waiting = txn.open_table(OUTBOX).map_err(at(&self.folder))?;
            if self.head_id(&waiting, queue)? != Some(envelope.id) {
                return Ok(());
            }
            waiting
                .remove((queue, envelope.id))
                .map_err(at(&self.folder))?;
            let mut dead = txn.open_table(DEAD_LETTERS).map_err(at(&self.folder))?;
            let sealed = self.seal_envelope(Place::Dead, queue, envelope)?;
            dead.insert((queue, envelope.id), sealed.as_slice())
                .map_err(at(&self.folder))?;
            let ids = self.ids(&dead, queue)?;
            for id in &ids[..ids.len().saturating_sub(MAX_DEAD_LETTERS)] {
                dead.remove((queue, *id)).map_err(at(&self.folder))?;
            }
            Ok(())
        })
    }

    fn counts(&self, queue: &str) -> Result<QueueCounts, StoreError> {
        self.read(|txn| {
            Ok(QueueCounts {
                pending: self.count(txn, Place::Waiting, queue)?,
                dead: self.count(txn, Place::Dead, queue)?,
            })
        })
    }

    /// The newest `limit` dead letters, oldest first. The range is walked
    /// from its end, so only the rows returned are decrypted.
    fn dead(&self, queue: &str, limit: usize) -> Result<Vec<Envelope>, StoreError> {
        self.read(|txn| {
            let Some(table) = open_if_present(txn, DEAD_LETTERS, &self.folder)? else {
                return Ok(Vec::new());
            };
            let rows = table.range(range(queue)).map_err(at(&self.folder))?;
            let mut newest = Vec::new();
            for row in rows.rev().take(limit) {
                let (key, sealed) = row.map_err(at(&self.folder))?;
                newest.push(self.open_envelope(
                    Place::Dead,
                    queue,
                    key.value().1,
                    sealed.value(),
                )?);
            }
            newest.reverse();
            Ok(newest)
        })
    }

    fn count(&self, txn: &ReadTransaction, place: Place, queue: &str) -> Result<u64, StoreError> {
        match open_if_present(txn, place.table(), &self.folder)? {
            Some(table) => Ok(self.ids(&table, queue)?.len() as u64),
            None => Ok(0),
        }
    }

    /// The smallest id in `queue`: its head.
    fn head_id(
        &self,
        table: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
        queue: &str,
    ) -> Result<Option<u64>, StoreError> {
        let mut rows = table.range(range(queue)).map_err(at(&self.folder))?;
        let first = rows.next().transpose().map_err(at(&self.folder))?;
        Ok(first.map(|(key, _)| key.value().1))
    }

    /// Every id in `queue`, oldest first.
    fn ids(
        &self,
        table: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
        queue: &str,
    ) -> Result<Vec<u64>, StoreError> {
        let rows = table.range(range(queue)).map_err(at(&self.folder))?;
        rows.map(|row| row.map(|(key, _)| key.value().1).map_err(at(&self.folder)))
            .collect()
    }

    fn seal_envelope(
        &self,
        place: Place,
        queue: &str,
        envelope: &Envelope,
    ) -> Result<Vec<u8>, StoreError> {
        let json = serde_json::to_vec(envelope).map_err(|e| {
            StoreError::Corrupt(format!("encoding message {} of {queue}: {e}", envelope.id))
        })?;
        Ok(self
            .cipher
            .seal(place.aad(queue, envelope.id).as_bytes(), &json))
    }

    /// Opens the row `(queue, id)` of `place`: it must decrypt under its own
    /// place and hold the message of that id.
    fn open_envelope(
        &self,
        place: Place,
        queue: &str,
        id: u64,
        sealed: &[u8],
    ) -> Result<Envelope, StoreError> {
        let aad = place.aad(queue, id);
        let corrupt =
            |what: String| StoreError::Corrupt(format!("{}: {aad}: {what}", self.folder.display()));
        let json = self
            .cipher
            .open(aad.as_bytes(), sealed)
            .map_err(|e| corrupt(e.to_string()))?;
        let envelope: Envelope =
            serde_json::from_slice(&json).map_err(|e| corrupt(format!("undecodable: {e}")))?;
        match envelope.id == id {
            true => Ok(envelope),
            false => Err(corrupt(format!("record holds message {}", envelope.id))),
        }
    }
}

// === impl Place ===

impl Place {
    fn table(self) -> QueueTable {
        match self {
            Self::Waiting => OUTBOX,
            Self::Dead => DEAD_LETTERS,
        }
    }

    /// The associated data a row is sealed with: its table, queue and id.
    /// Unambiguous although a queue name may hold `/`: the id, last, has none.
    fn aad(self, queue: &str, id: u64) -> String {
        let table = match self {
            Self::Waiting => "outbox",
            Self::Dead => "dead",
        };
        format!("{table}/{queue}/{id}")
    }
}

/// Every key of `queue`: tuple keys order by queue first, then id.
fn range(queue: &str) -> std::ops::RangeInclusive<(&str, u64)> {
    (queue, 0)..=(queue, u64::MAX)
}
