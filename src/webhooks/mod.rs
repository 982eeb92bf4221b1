//! Zoom's webhooks, taken in on `POST /webhooks/zoom` (section 3.12).
//!
//! ```text
//! signature.rs  x-zm-signature: verify (constant time, timestamp tolerance), sign, URL validation
//! deliver.rs    the durable queues' couriers: head-of-line, backoff, dead letters
//! notify.rs     [[notify]]: grant lifecycle events, signed, through the same queues
//! ```
//!
//! Every delivery is verified against the secret token of each app that has
//! one: Zoom's request names no app before its body is trusted, and apps are
//! few. A delivery no secret verifies, or whose timestamp is outside
//! `webhooks.tolerance`, is refused with 401 and never acted on.
//!
//! `endpoint.url_validation` is answered with the HMAC of its `plainToken`.
//! `app_deauthorized` wipes the grant before Zoom gets its 200: Zoom retries a
//! failed delivery, so an acknowledgement only follows a durable wipe.
//!
//! Every verified event but the validation challenge is then fanned out: queued
//! durably, in one write, for each `[[webhook_target]]` that takes it, and only
//! then acknowledged. Delivery happens later, from the queues (`deliver.rs`).

pub mod deliver;
pub mod notify;
pub mod signature;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use serde::Deserialize;
use serde_json::json;

use self::signature::Signed;
use crate::body::{self, Body};
use crate::clock::Clock;
use crate::config::Config;
use crate::error::WebhookError;
use crate::grants::Registry;
use crate::metrics::{Metrics, WebhookLabels};
use crate::secret::Secret;
use crate::serve::Incoming;
use crate::store::Message;

pub use self::deliver::Outgoing;
pub use self::notify::Notifier;

/// Zoom's events are small; a larger body is not Zoom's.
const MAX_EVENT_BYTES: usize = 256 * 1024;

/// The webhook endpoint: apps' secret tokens, and what an event acts on.
#[derive(Debug)]
pub struct Webhooks {
    /// What a config reload may change, swapped whole.
    settings: ArcSwap<Settings>,
    registry: Arc<Registry>,
    /// Where verified events are queued for `[[webhook_target]]`s.
    outgoing: Arc<Outgoing>,
    clock: Clock,
    metrics: Metrics,
}

/// The config the endpoint reads, taken from one config at a time.
#[derive(Debug)]
struct Settings {
    /// `(client_id, secret token)` of each app that has one.
    secrets: Vec<(String, Secret)>,
    tolerance: Duration,
}

/// The parts of an event grantmux reads. Everything else passes untouched.
#[derive(Debug, Deserialize)]
struct Event {
    event: String,
    /// When Zoom raised it, Unix ms.
    event_ts: Option<u64>,
    #[serde(default)]
    payload: Payload,
}

#[derive(Debug, Default, Deserialize)]
struct Payload {
    #[serde(rename = "plainToken")]
    plain_token: Option<String>,
    client_id: Option<String>,
    user_id: Option<String>,
    account_id: Option<String>,
}

/// What became of one delivery, for the log and `grantmux_webhooks_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    Validated,
    Deauthorized,
    Accepted,
    Refused,
    Malformed,
    Failed,
}

impl Received {
    /// The result a refused delivery counts as.
    fn of(error: &WebhookError) -> Self {
        match error {
            WebhookError::Signature(_) | WebhookError::OtherApp => Received::Refused,
            WebhookError::Store(_) => Received::Failed,
            WebhookError::Method
            | WebhookError::NotFound
            | WebhookError::Body
            | WebhookError::NotAnEvent
            | WebhookError::NoPlainToken => Received::Malformed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Received::Validated => "validated",
            Received::Deauthorized => "deauthorized",
            Received::Accepted => "accepted",
            Received::Refused => "refused",
            Received::Malformed => "malformed",
            Received::Failed => "failed",
        }
    }
}

// === impl Webhooks ===

impl Webhooks {
    pub fn new(
        config: &Config,
        registry: Arc<Registry>,
        outgoing: Arc<Outgoing>,
        clock: Clock,
        metrics: Metrics,
    ) -> Self {
        Self {
            settings: ArcSwap::from_pointee(Settings::of(config)),
            registry,
            outgoing,
            clock,
            metrics,
        }
    }

    /// Takes rotated secret tokens and a new tolerance from a reloaded config.
    pub fn reload(&self, config: &Config) {
        self.settings.store(Arc::new(Settings::of(config)));
        self.outgoing.reload(config);
    }

    /// The service of `webhooks.listen`: `/webhooks/zoom`, and 404 for the rest.
    pub async fn serve(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, std::convert::Infallible> {
        Ok(match req.uri().path() {
            "/webhooks/zoom" => self.handle(req).await,
            _ => WebhookError::NotFound.into_response(),
        })
    }

    /// `POST /webhooks/zoom`.
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let (received, resp) = match self.receive(req).await {
            Ok(taken) => taken,
            Err(error) => (Received::of(&error), error.into_response()),
        };
        self.metrics
            .webhooks
            .get_or_create(&WebhookLabels {
                result: received.as_str(),
            })
            .inc();
        resp
    }

    /// Verifies, acts, fans out; `Ok` is Zoom's 200 (or the validation answer).
    async fn receive(
        &self,
        req: Request<Incoming>,
    ) -> Result<(Received, Response<Body>), WebhookError> {
        if req.method() != http::Method::POST {
            return Err(WebhookError::Method);
        }
        let (parts, body) = req.into_parts();
        let collected = Limited::new(body, MAX_EVENT_BYTES).collect().await;
        let raw: Bytes = collected.map_err(|_| WebhookError::Body)?.to_bytes();
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let signed = Signed {
            signature: header("x-zm-signature"),
            timestamp: header("x-zm-request-timestamp"),
        };
        let settings = self.settings.load();
        let secrets = &settings.secrets;
        let index = signed.verify(
            &raw,
            secrets.iter().map(|(_, s)| s.expose().as_bytes()),
            self.clock.now_ms(),
            settings.tolerance,
        )?;
        let app = &secrets[index];
        let event = serde_json::from_slice::<Event>(&raw).map_err(|_| WebhookError::NotAnEvent)?;
        let received = match event.event.as_str() {
            "endpoint.url_validation" => return self.validate(app, &event.payload),
            "app_deauthorized" => self.deauthorize(app, &event).await?,
            other => {
                tracing::info!(app = %app.0, event = other, "webhook event");
                Received::Accepted
            }
        };
        self.fan_out(&app.0, &event.event, &parts.headers, &raw)
            .await?;
        Ok((received, body::json(StatusCode::OK, &json!({}))))
    }

    /// Queues the event, with Zoom's `x-zm-*` headers, for every target that
    /// takes this app's events of this type: one durable write for all.
    async fn fan_out(
        &self,
        client_id: &str,
        event: &str,
        headers: &http::HeaderMap,
        raw: &Bytes,
    ) -> Result<(), crate::store::StoreError> {
        let names = self.outgoing.takers(false, client_id, event);
        if names.is_empty() {
            return Ok(());
        }
        let headers = headers
            .iter()
            .filter(|(name, _)| name.as_str().starts_with("x-zm-"))
            .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
            .collect();
        let message = Message {
            kind: deliver::ZOOM.to_owned(),
            event: event.to_owned(),
            app: Some(client_id.to_owned()),
            // Parsed as JSON above, so it is UTF-8.
            body: String::from_utf8_lossy(raw).into_owned(),
            headers,
            queued_at_ms: self.clock.now_ms(),
        };
        self.outgoing.push(&names, &message).await
    }

    fn validate(
        &self,
        (_, secret): &(String, Secret),
        payload: &Payload,
    ) -> Result<(Received, Response<Body>), WebhookError> {
        let plain = payload
            .plain_token
            .as_ref()
            .ok_or(WebhookError::NoPlainToken)?;
        let encrypted = signature::encrypted_token(secret.expose().as_bytes(), plain);
        let answer = json!({ "plainToken": plain, "encryptedToken": encrypted });
        Ok((Received::Validated, body::json(StatusCode::OK, &answer)))
    }

    /// Wipes the grant the event names. A store that cannot take the wipe
    /// gets Zoom a 5xx, so that Zoom delivers again.
    async fn deauthorize(
        &self,
        (client_id, _): &(String, Secret),
        event: &Event,
    ) -> Result<Received, WebhookError> {
        let payload = &event.payload;
        // The payload names its app; a delivery signed by one app's secret
        // may only uninstall that app.
        if payload.client_id.as_deref().is_some_and(|c| c != client_id) {
            return Err(WebhookError::OtherApp);
        }
        let user = payload.user_id.as_deref().filter(|u| !u.is_empty());
        let account = payload.account_id.as_deref().filter(|a| !a.is_empty());
        let wiped = self
            .registry
            .deauthorize(client_id, (user, account), event.event_ts)
            .await?;
        for id in &wiped {
            tracing::info!(grant = %id, "app_deauthorized: grant wiped, every binding revoked");
        }
        self.metrics.grants_deauthorized.inc_by(wiped.len() as u64);
        Ok(Received::Deauthorized)
    }
}

// === impl Settings ===

impl Settings {
    fn of(config: &Config) -> Self {
        Self {
            secrets: deliver::app_secrets(config),
            tolerance: config.webhooks.tolerance,
        }
    }
}
