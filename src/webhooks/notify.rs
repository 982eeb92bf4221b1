//! `[[notify]]`: grant lifecycle events, as signed JSON POSTs through the same
//! durable queues as Zoom's events.
//!
//! The body follows Zoom's event envelope, so one handler shape serves both:
//!
//! ```json
//! {"event": "grant.dead", "event_ts": 1733100000000,
//!  "payload": {"client_id": "...", "subject": "user:...", "user_id": "...",
//!              "account_id": "...", "reason": "..."}}
//! ```
//!
//! It is signed as Zoom signs webhooks, with the entry's own secret, in
//! `x-grantmux-signature: v0=HMAC-SHA256(secret, "v0:{x-grantmux-request-timestamp}:{body}")`.
//!
//! At least once, as every queued message: a repeat of one message keeps its
//! `x-grantmux-delivery`. A `grant.deauthorized` may also be queued twice for
//! one uninstall (a crash between the event and the write that records it,
//! `grants::deauth`); both carry the wipe's time as `event_ts`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::json;

use super::deliver::{Outgoing, GRANT};
use crate::grants::{GrantEvent, Lifecycle, Subject};
use crate::metrics::DeliveryLabels;
use crate::store::{Envelope, Message};

/// Queues lifecycle events for every `[[notify]]` URL that takes them.
#[derive(Debug)]
pub struct Notifier {
    outgoing: Arc<Outgoing>,
}

impl Notifier {
    pub fn new(outgoing: Arc<Outgoing>) -> Self {
        Self { outgoing }
    }

    async fn notify(&self, event: GrantEvent) {
        let kind = event.kind.as_str();
        let names = self.outgoing.takers(true, &event.key.client_id, kind);
        if names.is_empty() {
            return;
        }
        let message = Message {
            kind: GRANT.to_owned(),
            event: kind.to_owned(),
            app: Some(event.key.client_id.clone()),
            body: body(&event).to_string(),
            headers: Vec::new(),
            queued_at_ms: event.at_ms,
        };
        tracing::info!(grant = %event.key, event = kind, "grant event queued for notification");
        if let Err(error) = self.outgoing.push(&names, &message).await {
            // `grant.unpersisted` comes exactly when the store fails: tell
            // the targets from memory rather than not at all.
            tracing::warn!(grant = %event.key, event = kind, %error, "the store did not take the notification; sending it from memory");
            self.send_unqueued(names, message);
        }
    }

    /// Delivers `message` to each queue's URL from this process's memory,
    /// trying as often as a queued one would. Lost if the process stops.
    fn send_unqueued(&self, names: Vec<String>, message: Message) {
        let outgoing = self.outgoing.clone();
        tokio::spawn(async move {
            let queues: Vec<_> = outgoing
                .queues()
                .filter(|q| names.contains(&q.name))
                .cloned()
                .collect();
            for queue in queues {
                let labels = DeliveryLabels {
                    queue: queue.name.clone(),
                    result: "unqueued",
                };
                outgoing.metrics().deliveries.get_or_create(&labels).inc();
                let envelope = Envelope {
                    id: 0,
                    message: message.clone(),
                    attempts: 0,
                    not_before_ms: 0,
                    last_error: None,
                };
                outgoing.send_with_retries(&queue, envelope).await;
            }
        });
    }
}

impl Lifecycle for Notifier {
    fn raise(&self, event: GrantEvent) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(self.notify(event))
    }
}

fn body(event: &GrantEvent) -> serde_json::Value {
    let (user_id, account_id) = match &event.key.subject {
        Subject::User(user) => (Some(user.as_str()), event.account_id.as_deref()),
        Subject::Account(account) => (None, Some(account.as_str())),
        _ => (None, event.account_id.as_deref()),
    };
    json!({
        "event": event.kind.as_str(),
        "event_ts": event.at_ms,
        "payload": {
            "client_id": event.key.client_id,
            "subject": event.key.subject.to_string(),
            "user_id": user_id,
            "account_id": account_id,
            "reason": event.reason,
        }
    })
}
