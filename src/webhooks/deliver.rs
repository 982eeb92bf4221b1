//! Durable, at-least-once delivery: one queue per target in the store's
//! [`Outbox`], one courier task per queue.
//!
//! A courier works its queue head first. It posts the oldest message, removes
//! it on a 2xx, and otherwise records the failure and waits out a backoff
//! before trying the same message again; after `webhooks.max_attempts` the
//! message goes to the queue's dead letters and the next one's turn comes. So
//! a target sees its messages in queue order, and a slow or failing target
//! holds up only its own queue: nothing else waits on a courier, least of all
//! Zoom's acknowledgement, which follows the durable push alone.
//!
//! A message is removed only after its target answered 2xx, so a crash or a
//! stop between the answer and the removal delivers it again: receivers
//! deduplicate on `x-grantmux-delivery`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{header, Request};
use http_body_util::BodyExt;
use tokio::sync::{watch, Notify};

use super::signature;
use crate::body;
use crate::clock::Clock;
use crate::config::{Config, Delivery};
use crate::metrics::{DeliveryLabels, Metrics, QueueLabels};
use crate::secret::Secret;
use crate::store::{Envelope, Message, Outbox, StoreError};
use crate::upstream::{self, UpstreamClient};

/// `Message::kind` of a Zoom event fanned out to a `[[webhook_target]]`.
pub const ZOOM: &str = "zoom";
/// `Message::kind` of a grant lifecycle event for a `[[notify]]` URL.
pub const GRANT: &str = "grant";

/// How long a replica's right to deliver a queue lasts unrenewed. Renewed
/// before every attempt, so it only lapses when the replica stops or stalls.
const CLAIM_FLOOR: Duration = Duration::from_secs(15);
/// How often an idle courier looks at its queue when other replicas may
/// have pushed to it (a shared store). Alone, a push wakes it directly.
const SHARED_POLL: Duration = Duration::from_secs(1);
const LOCAL_POLL: Duration = Duration::from_secs(30);
/// A store that failed is asked again after this long.
const STORE_RETRY: Duration = Duration::from_secs(1);
/// A queue's gauges are refreshed at most this often: counting a long file
/// queue is a range scan, too dear for every message of a backlog.
const OBSERVE_EVERY: Duration = Duration::from_secs(1);

/// Every queue, the store they live in, and the client that delivers them.
#[derive(Debug)]
pub struct Outgoing {
    outbox: Arc<dyn Outbox>,
    client: UpstreamClient,
    delivery: Delivery,
    queues: HashMap<String, Arc<Queue>>,
    /// Apps' webhook secret tokens: a Zoom event is signed afresh with its
    /// app's secret at each attempt, so receivers' tolerance checks pass
    /// however long it waited.
    app_secrets: ArcSwap<Vec<(String, Secret)>>,
    clock: Clock,
    metrics: Metrics,
    poll: Duration,
}

/// One target's queue.
#[derive(Debug)]
pub struct Queue {
    /// The queue's name in the store: `target:{name}` or `notify:{name}`.
    pub name: String,
    pub url: http::Uri,
    /// Event filters (`config::event_matches`).
    pub events: Vec<String>,
    /// `[[webhook_target]] app`: only this app's events.
    pub app: Option<String>,
    /// `None` for a Zoom target; a `[[notify]]` URL's signing secret.
    pub notify_secret: Option<Secret>,
    /// Rung after a push, so an idle courier starts at once.
    wake: Notify,
    /// When the gauges were last refreshed; only its courier touches it.
    observed: std::sync::Mutex<Option<std::time::Instant>>,
}

/// What one turn of a courier found.
enum Turn {
    /// A message left the head (delivered, or buried): look again at once.
    Moved,
    /// Nothing queued.
    Idle,
    /// The head waits out its backoff until this time (Unix ms).
    Until(u64),
    /// Another replica delivers this queue now.
    NotOurs,
}

// === impl Outgoing ===

impl Outgoing {
    /// Every queue `config` names. `shared`: replicas share the store. `tls`:
    /// the roots the Zoom clients trust (the platform's, webpki's and
    /// `zoom.ca_file`), loaded once for both.
    pub fn new(
        config: &Config,
        outbox: Arc<dyn Outbox>,
        (shared, tls): (bool, &rustls::ClientConfig),
        clock: Clock,
        metrics: Metrics,
    ) -> Self {
        let webhooks = &config.webhooks;
        let targets = webhooks.targets.iter().map(|t| Queue {
            name: format!("target:{}", t.name),
            url: t.url.clone(),
            events: t.events.clone(),
            app: t.app.clone(),
            notify_secret: None,
            wake: Notify::new(),
            observed: std::sync::Mutex::new(None),
        });
        let notify = webhooks.notify.iter().map(|n| Queue {
            name: format!("notify:{}", n.name),
            url: n.url.clone(),
            events: n.events.clone(),
            app: None,
            notify_secret: Some(n.secret.clone()),
            wake: Notify::new(),
            observed: std::sync::Mutex::new(None),
        });
        let queues = targets
            .chain(notify)
            .map(|q| (q.name.clone(), Arc::new(q)))
            .collect();
        // Targets are the operator's own systems: the system resolver, never
        // the DNS bypass meant for Zoom.
        let client = upstream::client(tls, webhooks.delivery.timeout, upstream::Resolver::System);
        Self {
            outbox,
            client,
            delivery: webhooks.delivery.clone(),
            queues,
            app_secrets: ArcSwap::from_pointee(app_secrets(config)),
            clock,
            metrics,
            poll: if shared { SHARED_POLL } else { LOCAL_POLL },
        }
    }

    /// Takes rotated app secrets from a reloaded config.
    pub fn reload(&self, config: &Config) {
        self.app_secrets.store(Arc::new(app_secrets(config)));
    }

    pub fn outbox(&self) -> &Arc<dyn Outbox> {
        &self.outbox
    }

    /// Every queue, by name.
    pub fn queues(&self) -> impl Iterator<Item = &Arc<Queue>> {
        self.queues.values()
    }

    /// The queues that take `event` of app `client_id`: `[[notify]]` ones
    /// (`notify`) or `[[webhook_target]]` ones, by their app and event filters.
    pub fn takers(&self, notify: bool, client_id: &str, event: &str) -> Vec<String> {
        self.queues
            .values()
            .filter(|q| q.notify_secret.is_some() == notify)
            .filter(|q| q.app.as_deref().is_none_or(|a| a == client_id))
            .filter(|q| crate::config::event_matches(&q.events, event))
            .map(|q| q.name.clone())
            .collect()
    }

    /// Queues `message` on every queue in `names`, durably and all at once,
    /// then wakes their couriers.
    pub async fn push(&self, names: &[String], message: &Message) -> Result<(), StoreError> {
        if names.is_empty() {
            return Ok(());
        }
        self.outbox.push(names, message).await?;
        for name in names {
            if let Some(queue) = self.queues.get(name) {
                queue.wake.notify_one();
            }
        }
        Ok(())
    }

    /// Starts one courier per queue. They end when `shutdown` turns true; a
    /// message in flight then is delivered again after the restart.
    pub fn start(
        self: &Arc<Self>,
        shutdown: &watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        self.queues
            .values()
            .map(|queue| {
                let (this, queue, shutdown) = (self.clone(), queue.clone(), shutdown.clone());
                tokio::spawn(async move { this.courier(queue, shutdown).await })
            })
            .collect()
    }

    async fn courier(&self, queue: Arc<Queue>, mut shutdown: watch::Receiver<bool>) {
        let stop = async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        tokio::pin!(stop);
        loop {
            let pause = match self.turn(&queue).await {
                Ok(Turn::Moved) => continue,
                Ok(Turn::Idle | Turn::NotOurs) => self.poll,
                Ok(Turn::Until(at_ms)) => {
                    Duration::from_millis(at_ms.saturating_sub(self.clock.now_ms()))
                }
                Err(error) => {
                    tracing::warn!(queue = %queue.name, %error, "delivery queue unreadable; trying again");
                    STORE_RETRY
                }
            };
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(pause) => {}
                () = queue.wake.notified() => {}
            }
        }
    }

    /// Looks at the head of `queue` and, when its time has come, delivers it.
    async fn turn(&self, queue: &Queue) -> Result<Turn, StoreError> {
        let claim = CLAIM_FLOOR.max(self.delivery.timeout * 3);
        if !self.outbox.claim(&queue.name, claim).await? {
            return Ok(Turn::NotOurs);
        }
        self.observe(queue).await;
        let Some(mut head) = self.outbox.head(&queue.name).await? else {
            return Ok(Turn::Idle);
        };
        if head.not_before_ms > self.clock.now_ms() {
            return Ok(Turn::Until(head.not_before_ms));
        }
        match self.send(queue, &head).await {
            Ok(()) => {
                self.outbox.ack(&queue.name, head.id).await?;
                self.count(queue, "delivered");
                return Ok(Turn::Moved);
            }
            Err(error) => {
                head.attempts += 1;
                head.last_error = Some(error);
            }
        }
        if head.attempts >= self.delivery.max_attempts {
            tracing::error!(queue = %queue.name, event = %head.message.event, id = head.id, attempts = head.attempts, error = ?head.last_error, "delivery given up: moved to the dead letters");
            self.outbox.bury(&queue.name, &head).await?;
            self.count(queue, "dead");
            return Ok(Turn::Moved);
        }
        head.not_before_ms = self.clock.now_ms() + backoff(&self.delivery, head.attempts);
        tracing::warn!(queue = %queue.name, event = %head.message.event, id = head.id, attempts = head.attempts, error = ?head.last_error, "delivery failed; will try again");
        self.outbox.update(&queue.name, &head).await?;
        self.count(queue, "failed");
        Ok(Turn::Until(head.not_before_ms))
    }

    /// One attempt: the message, signed now, posted to the queue's URL.
    /// `Err` says why in words safe to store and log: never a secret.
    pub async fn send(&self, queue: &Queue, envelope: &Envelope) -> Result<(), String> {
        let request = self.request(queue, envelope)?;
        let sent = tokio::time::timeout(self.delivery.timeout, async {
            let response = self.client.request(request).await?;
            let status = response.status();
            // Read the answer whole, so the connection can be reused.
            let _ = response.into_body().collect().await;
            Ok::<_, hyper_util::client::legacy::Error>(status)
        });
        match sent.await {
            Err(_) => Err(format!("no answer within {:?}", self.delivery.timeout)),
            Ok(Err(error)) => Err(upstream::describe_error(&error)),
            Ok(Ok(status)) if status.is_success() => Ok(()),
            Ok(Ok(status)) => Err(format!("status {}", status.as_u16())),
        }
    }

    fn request(&self, queue: &Queue, envelope: &Envelope) -> Result<Request<body::Body>, String> {
        let message = &envelope.message;
        let mut request = Request::post(queue.url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::USER_AGENT,
                concat!("grantmux/", env!("CARGO_PKG_VERSION")),
            )
            .header(
                "x-grantmux-delivery",
                format!("{}/{}", queue.name, envelope.id),
            )
            .header("x-grantmux-event", message.event.as_str());
        let timestamp = (self.clock.now_ms() / 1000).to_string();
        let body = message.body.as_bytes();
        let fresh = match &queue.notify_secret {
            Some(secret) => Some((
                "x-grantmux-request-timestamp",
                "x-grantmux-signature",
                secret.clone(),
            )),
            None => self
                .app_secret(message.app.as_deref())
                .map(|s| ("x-zm-request-timestamp", "x-zm-signature", s)),
        };
        let re_signed = fresh.as_ref().map(|(ts, sig, _)| [*ts, *sig]);
        for (name, value) in &message.headers {
            // Zoom's own signature is replaced by a fresh one when we can make it.
            if re_signed.is_some_and(|names| names.contains(&name.as_str())) {
                continue;
            }
            request = request.header(name.as_str(), value.as_str());
        }
        if let Some((ts_header, sig_header, secret)) = fresh {
            let signature = signature::sign(secret.expose().as_bytes(), &timestamp, body);
            request = request
                .header(ts_header, timestamp.as_str())
                .header(sig_header, signature);
        }
        request
            .body(body::full(Bytes::from(message.body.clone())))
            .map_err(|e| format!("cannot build the request: {e}"))
    }

    fn app_secret(&self, app: Option<&str>) -> Option<Secret> {
        let app = app?;
        let secrets = self.app_secrets.load();
        secrets
            .iter()
            .find(|(id, _)| id == app)
            .map(|(_, s)| s.clone())
    }

    /// Delivers `envelope` outside any queue, with the queue's backoff,
    /// until it is taken or `max_attempts` have failed.
    pub async fn send_with_retries(&self, queue: &Queue, mut envelope: Envelope) {
        loop {
            match self.send(queue, &envelope).await {
                Ok(()) => return self.count(queue, "delivered"),
                Err(error) => envelope.last_error = Some(error),
            }
            envelope.attempts += 1;
            if envelope.attempts >= self.delivery.max_attempts {
                tracing::error!(queue = %queue.name, event = %envelope.message.event, error = ?envelope.last_error, "unqueued delivery given up");
                return self.count(queue, "dead");
            }
            self.count(queue, "failed");
            let wait = backoff(&self.delivery, envelope.attempts);
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Refreshes the queue's gauges from the store, at most every [`OBSERVE_EVERY`].
    async fn observe(&self, queue: &Queue) {
        {
            let mut observed = queue.observed.lock().unwrap_or_else(|p| p.into_inner());
            if observed.is_some_and(|at| at.elapsed() < OBSERVE_EVERY) {
                return;
            }
            *observed = Some(std::time::Instant::now());
        }
        let Ok(counts) = self.outbox.counts(&queue.name).await else {
            return;
        };
        for (state, value) in [("pending", counts.pending), ("dead", counts.dead)] {
            let labels = QueueLabels {
                queue: queue.name.clone(),
                state,
            };
            self.metrics
                .delivery_queue
                .get_or_create(&labels)
                .set(value as i64);
        }
    }

    fn count(&self, queue: &Queue, result: &'static str) {
        let labels = DeliveryLabels {
            queue: queue.name.clone(),
            result,
        };
        self.metrics.deliveries.get_or_create(&labels).inc();
    }
}

/// `(client_id, webhook secret token)` of each app that has one.
pub(super) fn app_secrets(config: &Config) -> Vec<(String, Secret)> {
    config
        .apps
        .iter()
        .filter_map(|a| Some((a.client_id.clone(), a.webhook_secret.clone()?)))
        .collect()
}

/// The wait after `attempts` failures: doubling from `backoff_min`, capped
/// at `backoff_max`.
pub fn backoff(delivery: &Delivery, attempts: u32) -> u64 {
    let min = delivery.backoff_min.as_millis() as u64;
    let max = delivery.backoff_max.as_millis() as u64;
    let doublings = attempts.saturating_sub(1).min(32);
    min.saturating_mul(1u64 << doublings).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap() {
        let delivery = Delivery {
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(10),
            ..Delivery::default()
        };
        let waits: Vec<_> = (1..=6).map(|n| backoff(&delivery, n)).collect();
        assert_eq!(waits, [1000, 2000, 4000, 8000, 10_000, 10_000]);
        assert_eq!(backoff(&delivery, u32::MAX), 10_000);
    }
}
