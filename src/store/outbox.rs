//! Durable delivery queues: webhook fan-out and grant notifications wait here
//! until their target takes them.
//!
//! One queue per target, first in first out. Delivery is head-of-line: a
//! courier retries the oldest message of its queue until the target takes it
//! or it is buried in the queue's dead letters, and only then moves on, so a
//! target sees its messages in the order they were queued. A queue lives in
//! the store the grants live in (memory, file, Redis), so that a restart, or
//! a `kill -9`, loses nothing a Zoom acknowledgement promised.
//!
//! Every method that changes a queue names the message it expects at its head
//! (`id`) and does nothing if another writer moved the queue on: two couriers
//! racing on one queue (replicas before their claim settles) cost at most a
//! repeated delivery, never a lost one.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::StoreFuture;

/// The most dead letters kept per queue; older ones are dropped first.
pub const MAX_DEAD_LETTERS: usize = 1000;

/// What is to be delivered: a request body and the headers that go with it.
/// Serialized into the store (sealed where the store seals).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `"zoom"`: a Zoom event fanned out; `"grant"`: a grantmux notification.
    pub kind: String,
    /// The event type (`meeting.created`, `grant.dead`, ...), for logs and filters.
    pub event: String,
    /// The app (client_id) the event belongs to: its secret signs a Zoom event.
    #[serde(default)]
    pub app: Option<String>,
    /// The body, byte for byte as it arrived (JSON text).
    pub body: String,
    /// Headers to send with it, beside those the courier sets.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// When it was queued, Unix milliseconds.
    pub queued_at_ms: u64,
}

/// A message in a queue, with its delivery record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Assigned by [`Outbox::push`]; rises in queue order.
    pub id: u64,
    pub message: Message,
    /// Failed attempts so far.
    #[serde(default)]
    pub attempts: u32,
    /// No attempt before this time, Unix milliseconds (backoff).
    #[serde(default)]
    pub not_before_ms: u64,
    /// Why the last attempt failed. Never holds a secret: the courier writes
    /// a status code or a connection error's kind.
    #[serde(default)]
    pub last_error: Option<String>,
}

/// How many messages a queue holds, waiting and dead.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueCounts {
    pub pending: u64,
    pub dead: u64,
}

/// Durable FIFO queues by name. Object-safe, held as `Arc<dyn Outbox>`.
pub trait Outbox: Send + Sync + std::fmt::Debug + 'static {
    /// Appends `message` to every queue in `queues`, in one durable write:
    /// all of them or none. Returns when the write is durable.
    fn push<'a>(&'a self, queues: &'a [String], message: &'a Message) -> StoreFuture<'a, ()>;

    /// The oldest message of `queue`, if any.
    fn head<'a>(&'a self, queue: &'a str) -> StoreFuture<'a, Option<Envelope>>;

    /// Rewrites the delivery record (attempts, not_before_ms, last_error) of
    /// the head message, if its id is still `envelope.id`.
    fn update<'a>(&'a self, queue: &'a str, envelope: &'a Envelope) -> StoreFuture<'a, ()>;

    /// Removes the head message if its id is `id`: delivered.
    fn ack<'a>(&'a self, queue: &'a str, id: u64) -> StoreFuture<'a, ()>;

    /// Moves the head message, if its id is `envelope.id`, to the queue's dead
    /// letters, with `envelope`'s delivery record. At most
    /// [`MAX_DEAD_LETTERS`] are kept.
    fn bury<'a>(&'a self, queue: &'a str, envelope: &'a Envelope) -> StoreFuture<'a, ()>;

    /// Waiting and dead messages of `queue`.
    fn counts<'a>(&'a self, queue: &'a str) -> StoreFuture<'a, QueueCounts>;

    /// The newest `limit` dead letters of `queue`, oldest first.
    fn dead<'a>(&'a self, queue: &'a str, limit: usize) -> StoreFuture<'a, Vec<Envelope>>;

    /// Takes or renews the right to deliver `queue` for `ttl`. Replicas
    /// sharing a store deliver each queue from one replica at a time, so that
    /// order holds. A store only this process uses always grants it.
    fn claim<'a>(&'a self, _queue: &'a str, _ttl: Duration) -> StoreFuture<'a, bool> {
        Box::pin(async { Ok(true) })
    }
}

/// The behaviour every [`Outbox`] owes, run against each implementation.
#[doc(hidden)]
pub mod contract {
    use super::*;

    pub fn message(event: &str, n: u32) -> Message {
        Message {
            kind: "zoom".into(),
            event: event.into(),
            app: Some("app".into()),
            body: format!(r#"{{"event":"{event}","n":{n}}}"#),
            headers: vec![("x-zm-trackingid".into(), format!("t{n}"))],
            queued_at_ms: 1_700_000_000_000 + u64::from(n),
        }
    }

    /// Order, fan-out, head-guarded updates, acks and burial. Panics on the
    /// first broken promise. `outbox` must hold no queue named `a` or `b`.
    pub async fn run(outbox: &dyn Outbox) {
        let (a, b) = ("a".to_owned(), "b".to_owned());
        assert_eq!(
            outbox.head("a").await.expect("the store answers"),
            None,
            "an unknown queue is empty"
        );
        assert_eq!(
            outbox.counts("a").await.expect("the store answers"),
            QueueCounts::default()
        );

        for n in 0..3 {
            outbox
                .push(&[a.clone(), b.clone()], &message("meeting.created", n))
                .await
                .expect("the store answers");
        }
        outbox
            .push(std::slice::from_ref(&b), &message("only.b", 3))
            .await
            .expect("the store answers");
        let counts = outbox.counts("a").await.expect("the store answers");
        assert_eq!(
            counts,
            QueueCounts {
                pending: 3,
                dead: 0
            }
        );
        assert_eq!(
            outbox.counts("b").await.expect("the store answers").pending,
            4
        );

        // The head is the oldest, whole.
        let head = outbox
            .head("a")
            .await
            .expect("the store answers")
            .expect("a has messages");
        assert_eq!(head.message, message("meeting.created", 0));
        assert_eq!((head.attempts, head.not_before_ms), (0, 0));

        // A failed attempt is recorded on the head, and only there.
        let mut failed = head.clone();
        failed.attempts = 1;
        failed.not_before_ms = 42;
        failed.last_error = Some("status 503".into());
        outbox
            .update("a", &failed)
            .await
            .expect("the store answers");
        assert_eq!(
            outbox.head("a").await.expect("the store answers").as_ref(),
            Some(&failed)
        );
        let b_head = outbox
            .head("b")
            .await
            .expect("the store answers")
            .expect("b has messages");
        assert_eq!(b_head.attempts, 0, "queues are independent");

        // Acks name the head they expect: a stale one changes nothing.
        outbox
            .ack("a", head.id + 1000)
            .await
            .expect("the store answers");
        assert_eq!(
            outbox
                .head("a")
                .await
                .expect("the store answers")
                .map(|e| e.id),
            Some(head.id)
        );
        outbox.ack("a", head.id).await.expect("the store answers");
        let second = outbox
            .head("a")
            .await
            .expect("the store answers")
            .expect("two left");
        assert_eq!(second.message, message("meeting.created", 1));
        assert!(second.id > head.id, "ids rise in queue order");
        outbox.ack("a", head.id).await.expect("the store answers");
        assert_eq!(
            outbox
                .head("a")
                .await
                .expect("the store answers")
                .map(|e| e.id),
            Some(second.id),
            "a repeated ack removes nothing more"
        );
        let stale = Envelope {
            attempts: 9,
            ..head.clone()
        };
        outbox.update("a", &stale).await.expect("the store answers");
        assert_eq!(
            outbox
                .head("a")
                .await
                .expect("the store answers")
                .expect("the store answers")
                .attempts,
            0
        );

        // Burial moves the head to the dead letters with its record.
        let mut given_up = second.clone();
        given_up.attempts = 5;
        given_up.last_error = Some("connection refused".into());
        outbox
            .bury("a", &given_up)
            .await
            .expect("the store answers");
        assert_eq!(
            outbox.counts("a").await.expect("the store answers"),
            QueueCounts {
                pending: 1,
                dead: 1
            }
        );
        assert_eq!(
            outbox.dead("a", 10).await.expect("the store answers"),
            vec![given_up.clone()]
        );
        outbox
            .bury("a", &given_up)
            .await
            .expect("the store answers");
        assert_eq!(
            outbox.counts("a").await.expect("the store answers").dead,
            1,
            "burial is guarded too"
        );
        let third = outbox
            .head("a")
            .await
            .expect("the store answers")
            .expect("the store answers");
        assert_eq!(third.message, message("meeting.created", 2));
        outbox.ack("a", third.id).await.expect("the store answers");
        assert_eq!(outbox.head("a").await.expect("the store answers"), None);

        // b kept everything, in order.
        let mut seen = Vec::new();
        while let Some(env) = outbox.head("b").await.expect("the store answers") {
            seen.push(env.message.event.clone());
            outbox.ack("b", env.id).await.expect("the store answers");
        }
        assert_eq!(
            seen,
            [
                "meeting.created",
                "meeting.created",
                "meeting.created",
                "only.b"
            ]
        );
        assert!(outbox
            .claim("a", Duration::from_secs(1))
            .await
            .expect("the store answers"));
    }

    /// Dead letters are capped at [`MAX_DEAD_LETTERS`], the oldest dropped.
    pub async fn dead_letters_are_capped(outbox: &dyn Outbox) {
        let q = "capped".to_owned();
        for n in 0..(MAX_DEAD_LETTERS as u32 + 5) {
            outbox
                .push(std::slice::from_ref(&q), &message("e", n))
                .await
                .expect("the store answers");
            let head = outbox
                .head(&q)
                .await
                .expect("the store answers")
                .expect("the store answers");
            outbox.bury(&q, &head).await.expect("the store answers");
        }
        let counts = outbox.counts(&q).await.expect("the store answers");
        assert_eq!(counts.dead, MAX_DEAD_LETTERS as u64);
        let newest = outbox.dead(&q, 2).await.expect("the store answers");
        let ns: Vec<_> = newest.iter().map(|e| e.message.queued_at_ms).collect();
        let last = 1_700_000_000_000 + MAX_DEAD_LETTERS as u64 + 4;
        assert_eq!(ns, [last - 1, last], "the newest, oldest first");
    }
}
