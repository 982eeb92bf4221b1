//! Other replicas' announcements: a subscriber task on its own connection
//! feeding a `broadcast` channel, reconnecting by itself.
//!
//! A message is `"INSTANCE GRANT_ID"`; our own are skipped. While the
//! subscription is down, announcements are lost, so after a reconnect every
//! stored grant is announced locally once: each replica then re-reads them.
//! A failover is a reconnect too: the subscription moves to the new primary,
//! and every grant is re-read from it.

use std::time::Duration;

use futures_util::StreamExt as _;
use redis::aio::{PubSubSink, PubSubStream};
use redis::Client;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::scripts::Keys;
use super::{unavailable, Primary};
use crate::grants::GrantKey;
use crate::store::StoreError;

/// How often the subscriber checks that its connection still answers: a peer
/// that vanished without closing the socket would otherwise look quiet forever.
const HEALTH_EVERY: Duration = Duration::from_secs(5);
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);
/// Announcements not yet taken by the registry; past this it re-reads everything.
pub(super) const CAPACITY: usize = 1024;

/// The subscriber task; aborted when the store is dropped (mini-redis's drop guard).
#[derive(Debug)]
pub(super) struct Subscriber(JoinHandle<()>);

#[derive(Debug)]
struct Feed {
    primary: Primary,
    instance: String,
    tx: broadcast::Sender<GrantKey>,
}

// === impl Subscriber ===

impl Subscriber {
    /// Subscribes before returning, so that no announcement made after the
    /// store opened is missed, then follows the channel in a task.
    pub(super) async fn start(
        primary: Primary,
        instance: String,
        tx: broadcast::Sender<GrantKey>,
    ) -> Result<Self, StoreError> {
        let first = subscribe(&primary.client()).await.map_err(unavailable)?;
        let feed = Feed {
            primary,
            instance,
            tx,
        };
        Ok(Self(tokio::spawn(feed.run(first))))
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.0.abort();
    }
}

// === impl Feed ===

impl Feed {
    async fn run(self, first: (PubSubSink, PubSubStream)) {
        let mut connection = Some(first);
        let mut retry = RETRY_MIN;
        loop {
            if let Some((sink, stream)) = connection.take() {
                retry = RETRY_MIN;
                self.follow(sink, stream).await;
                tracing::warn!("lost the Redis subscription; reconnecting");
            }
            tokio::time::sleep(retry).await;
            match subscribe(&self.primary.client()).await {
                Ok(subscribed) => {
                    tracing::info!("Redis subscription back; re-reading every grant");
                    self.resync().await;
                    connection = Some(subscribed);
                }
                Err(error) => {
                    tracing::debug!(%error, "cannot subscribe to Redis yet");
                    retry = (retry * 2).min(RETRY_MAX);
                }
            }
        }
    }

    /// Forwards messages until the connection ends or stops answering pings.
    async fn follow(&self, mut sink: PubSubSink, mut stream: PubSubStream) {
        let mut health = tokio::time::interval(HEALTH_EVERY);
        health.tick().await;
        let mut failovers = self.primary.epochs();
        failovers.borrow_and_update();
        loop {
            tokio::select! {
                // The primary moved: subscribe there, and re-read everything.
                _ = failovers.changed() => return,
                msg = stream.next() => match msg {
                    Some(msg) => self.forward(msg.get_payload_bytes()),
                    None => return,
                },
                _ = health.tick() => {
                    // A subscribed connection answers PING with `["pong", ""]`,
                    // not `PONG`: any answer in time is health.
                    let pong =
                        tokio::time::timeout(HEALTH_TIMEOUT, sink.ping::<redis::Value>()).await;
                    if !matches!(pong, Ok(Ok(_))) {
                        return;
                    }
                }
            }
        }
    }

    fn forward(&self, payload: &[u8]) {
        let text = String::from_utf8_lossy(payload);
        let Some((instance, id)) = text.split_once(' ') else {
            return;
        };
        if instance == self.instance {
            return;
        }
        if let Some(key) = parse_id(id) {
            // No receiver yet (start-up) is fine: nothing to tell.
            let _ = self.tx.send(key);
        }
    }

    /// Announces every stored grant locally: some announcements were missed.
    async fn resync(&self) {
        let ids: Result<Vec<String>, _> = redis::cmd("SMEMBERS")
            .arg(Keys::index())
            .query_async(&mut self.primary.conn())
            .await;
        match ids {
            Ok(ids) => ids.iter().filter_map(|id| parse_id(id)).for_each(|key| {
                let _ = self.tx.send(key);
            }),
            Err(error) => tracing::warn!(%error, "cannot list grants after reconnecting"),
        }
    }
}

async fn subscribe(client: &Client) -> redis::RedisResult<(PubSubSink, PubSubStream)> {
    let connect = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(Keys::channel()).await?;
        Ok(pubsub.split())
    };
    tokio::time::timeout(HEALTH_TIMEOUT, connect)
        .await
        .unwrap_or_else(|_| {
            Err(redis::RedisError::from(std::io::Error::from(
                std::io::ErrorKind::TimedOut,
            )))
        })
}

/// A grant id (`client_id/user:ID` or `client_id/account:ID`) back to its key.
pub(super) fn parse_id(id: &str) -> Option<GrantKey> {
    let (client_id, subject) = id.split_once('/')?;
    Some(GrantKey::new(client_id, subject.parse().ok()?))
}
