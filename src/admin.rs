//! The admin listener: `/healthz`, `/readyz`, `/metrics`, `/grants`,
//! `/grants/{id}`, `/ratelimits`, `/deliveries`, `/deliveries/{queue}/dead`,
//! `POST /grants/{id}/refresh` and `POST /grants/{id}/revoke`. It binds loopback by default and shows no secret.
//!
//! It is not for browsers. A page a browser shows could still reach a loopback or
//! in-cluster admin port, and a cross-origin `text/plain` POST needs no preflight.
//! So any request carrying `Origin` is refused, and a write must send JSON or no
//! `Content-Type` at all (`curl -X POST` sends none), which a page cannot do
//! without a preflight that admin never answers. Each forced refresh is a real
//! rotation at Zoom, so one grant takes at most one per [`REFRESH_INTERVAL`].

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use serde_json::json;

use crate::body::{self, Body};
use crate::clock::{Clock, UnixMillis};
use crate::grants::{GrantHandle, Registry, Subject, TokenError};
use crate::metrics::{MetricsRegistry, Standing};
use crate::ratelimit::RateLimiter;
use crate::serve::Incoming;
use crate::store::{Envelope, StoreError};
use crate::webhooks::Outgoing;

/// `POST /grants/{id}/refresh` is accepted at most once per grant per this long.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(5);

/// A grant asked for within this long is "in use": an expired token on it is
/// a caller's failure now, not an idle grant that is refreshed on next use.
pub const IN_USE_MS: u64 = 60 * 60 * 1000;

/// What the admin endpoints read.
#[derive(Debug)]
pub struct Admin {
    registry: Arc<Registry>,
    metrics: MetricsRegistry,
    /// Token expiry and the refresh limit are read against it (tests advance it).
    clock: Clock,
    /// When each grant's last forced refresh was accepted, by grant id. A std
    /// `Mutex` over a `HashMap`, not a `DashMap`: the section is one lookup and
    /// one insert with no `.await`, writes come from an operator a few times a
    /// day, and check-then-record must be one step so that two concurrent POSTs
    /// cannot both pass. Only known grants get an entry, and lapsed ones are
    /// pruned on each insert, so it stays as small as the registry.
    refreshed_at: Mutex<HashMap<String, UnixMillis>>,
    /// For `/ratelimits`.
    limiter: RateLimiter,
    /// For `/deliveries`.
    outgoing: Arc<Outgoing>,
}

// === impl Admin ===

impl Admin {
    pub fn new(
        registry: Arc<Registry>,
        metrics: MetricsRegistry,
        clock: Clock,
        (limiter, outgoing): (RateLimiter, Arc<Outgoing>),
    ) -> Self {
        Self {
            registry,
            metrics,
            clock,
            refreshed_at: Mutex::new(HashMap::new()),
            limiter,
            outgoing,
        }
    }

    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, Infallible> {
        if let Some(refusal) = refuse_browsers(req.method(), req.headers()) {
            return Ok(refusal);
        }
        let path = req.uri().path();
        let resp = match (req.method(), path) {
            (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
            (&Method::GET, "/readyz") => self.readyz().await,
            (&Method::GET, "/readyz/store") => self.readyz_store().await,
            (&Method::GET, "/metrics") => {
                let mut resp = text(StatusCode::OK, self.metrics.encode());
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    http::HeaderValue::from_static(
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    ),
                );
                resp
            }
            (&Method::GET, "/grants") => self.grants().await,
            (&Method::GET, "/ratelimits") => self.ratelimits(),
            (&Method::GET, "/deliveries") => self.deliveries().await,
            (&Method::GET, p) if p.starts_with("/deliveries/") && p.ends_with("/dead") => {
                let queue = &p["/deliveries/".len()..p.len() - "/dead".len()];
                self.dead_letters(&percent_decode(queue)).await
            }
            (&Method::POST, p) if p.starts_with("/grants/") && p.ends_with("/refresh") => {
                let id = &p["/grants/".len()..p.len() - "/refresh".len()];
                self.refresh(&percent_decode(id)).await
            }
            (&Method::POST, p) if p.starts_with("/grants/") && p.ends_with("/revoke") => {
                let id = &p["/grants/".len()..p.len() - "/revoke".len()];
                self.revoke(&percent_decode(id)).await
            }
            (&Method::GET, p) if p.starts_with("/grants/") => {
                self.grant(&percent_decode(&p["/grants/".len()..])).await
            }
            _ => body::json(StatusCode::NOT_FOUND, &json!({ "error": "not found" })),
        };
        Ok(resp)
    }

    /// The rate-limit budgets this replica knows: per account and category,
    /// the rate, whether a slot is free, Zoom's last remaining figure, a daily
    /// closure, and who is waiting. Account ids appear here (an operator's
    /// view), never in metrics.
    fn ratelimits(&self) -> Response<Body> {
        let (budgets, closed) = self.limiter.budgets();
        body::json(
            StatusCode::OK,
            &json!({
                "enabled": self.limiter.enabled(),
                "max_wait_ms": self.limiter.max_wait().as_millis() as u64,
                "budgets": budgets,
                "closed": closed,
            }),
        )
    }

    /// Every delivery queue: where it goes, how many wait and are dead, and
    /// how the oldest waiting one fares. Bodies are users' data: not shown.
    async fn deliveries(&self) -> Response<Body> {
        let outbox = self.outgoing.outbox();
        let mut queues = Vec::new();
        for queue in self.outgoing.queues() {
            let (counts, head) = match (
                outbox.counts(&queue.name).await,
                outbox.head(&queue.name).await,
            ) {
                (Ok(counts), Ok(head)) => (counts, head),
                (Err(error), _) | (_, Err(error)) => {
                    return store_error(&error);
                }
            };
            queues.push(json!({
                "queue": queue.name,
                "url": shown_url(&queue.url),
                "pending": counts.pending,
                "dead": counts.dead,
                "head": head.as_ref().map(envelope_summary),
            }));
        }
        queues.sort_by(|a, b| a["queue"].as_str().cmp(&b["queue"].as_str()));
        body::json(StatusCode::OK, &json!({ "queues": queues }))
    }

    /// A queue's newest dead letters (up to 100), oldest first, without bodies.
    async fn dead_letters(&self, name: &str) -> Response<Body> {
        if !self.outgoing.queues().any(|q| q.name == name) {
            return body::json(StatusCode::NOT_FOUND, &json!({ "error": "no such queue" }));
        }
        match self.outgoing.outbox().dead(name, 100).await {
            Ok(dead) => body::json(
                StatusCode::OK,
                &json!({
                    "queue": name,
                    "dead": dead.iter().map(envelope_summary).collect::<Vec<_>>(),
                }),
            ),
            Err(error) => store_error(&error),
        }
    }

    /// "This process can serve callers now": the listeners are up (this
    /// answer is proof), and every grant in use holds a valid token or can
    /// still get one. The store is not asked: while it is down, cached tokens
    /// still serve, and in a sidecar layout a 503 here would take the app's pod
    /// out of its Service for nothing. A grant is stuck when a caller asked for
    /// it after its token came due (the `expired` state of `grantmux_grants`),
    /// within [`IN_USE_MS`], and its refresh is failing. Dead grants are listed but do not count: they need
    /// their user, not a restart, and other grants still work.
    async fn readyz(&self) -> Response<Body> {
        let now = self.clock.now_ms();
        let grants = self.registry.all();
        let stuck: Vec<String> = grants
            .iter()
            .filter(|g| {
                // `Expired` (not `Idle`): a caller asked after the token came due.
                let expired = Standing::of(g, &g.current(), now) == Standing::Expired;
                let recent = now.saturating_sub(g.last_used_ms()) <= IN_USE_MS;
                expired && recent && g.refresh_failing()
            })
            .map(|g| g.id())
            .collect();
        let dead: Vec<String> = grants
            .iter()
            .filter(|g| g.current().dead.is_some())
            .map(|g| g.id())
            .collect();
        let mut problems = Vec::new();
        if !stuck.is_empty() {
            problems.push(format!(
                "grants in use with an expired token whose refresh is failing: {}",
                stuck.join(", ")
            ));
        }
        readiness(&problems, json!({ "dead_grants": dead }))
    }

    /// The store's side: it answers, no rotated token is held in memory only,
    /// and no adopted token waits for its user. A central deployment may gate
    /// on this; a sidecar must not (see [`Self::readyz`]).
    async fn readyz_store(&self) -> Response<Body> {
        let mut problems = Vec::new();
        if let Err(error) = self.registry.ctx().store.ping().await {
            problems.push(format!("store: {error}"));
        }
        let grants = self.registry.all();
        let ids = |which: fn(&GrantHandle) -> bool| -> Vec<String> {
            grants.iter().filter(|g| which(g)).map(|g| g.id()).collect()
        };
        let held = [
            (
                ids(GrantHandle::is_unpersisted),
                "rotated tokens not yet persisted for",
            ),
            (
                ids(GrantHandle::awaits_adoption),
                "adopted tokens kept until the Zoom user is known:",
            ),
        ];
        for (ids, what) in held.into_iter().filter(|(ids, _)| !ids.is_empty()) {
            problems.push(format!("{what} {}", ids.join(", ")));
        }
        readiness(&problems, json!({}))
    }

    async fn grants(&self) -> Response<Body> {
        let now = self.clock.now_ms();
        let mut list = Vec::new();
        for grant in self.registry.all() {
            list.push(describe(&grant, now).await);
        }
        list.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
        body::json(StatusCode::OK, &json!({ "grants": list }))
    }

    async fn refresh(&self, id: &str) -> Response<Body> {
        let Some(grant) = self.registry.all().into_iter().find(|g| g.id() == id) else {
            return body::json(
                StatusCode::NOT_FOUND,
                &json!({ "error": "no such grant", "id": id }),
            );
        };
        if let Err(wait) = self.admit_refresh(id) {
            return too_soon(id, wait);
        }
        match grant.force_refresh().await {
            Ok(cur) => body::json(
                StatusCode::OK,
                &json!({ "id": id, "refreshed": true, "version": cur.version }),
            ),
            Err(error @ TokenError::Dead) => body::json(
                StatusCode::CONFLICT,
                &json!({ "id": id, "refreshed": false, "error": error.to_string() }),
            ),
            Err(error) => body::json(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({ "id": id, "refreshed": false, "error": error.to_string() }),
            ),
        }
    }

    /// One grant: the object `/grants` lists for it.
    async fn grant(&self, id: &str) -> Response<Body> {
        match self.registry.get_by_id(id) {
            Some(grant) => {
                let described = describe(&grant, self.clock.now_ms()).await;
                body::json(StatusCode::OK, &described)
            }
            None => no_such_grant(id),
        }
    }

    /// Revokes every caller binding of a grant, as `POST /oauth/revoke` revokes
    /// one: the virtual tokens its callers hold are refused from then on, here
    /// and, announced through the store, on other replicas. Like that endpoint
    /// under the default policy, it keeps the tokens and never calls Zoom: the
    /// grant stays authorized there (revoking it at Zoom would uninstall the app
    /// for the user), and static callers keep their configured keys.
    ///
    /// A minted grant (Server-to-Server, or the app's own) is refused: its one
    /// binding is shared by every holder of the app's credentials, and the next
    /// of them to ask for a token would bring it back, old tokens included.
    async fn revoke(&self, id: &str) -> Response<Body> {
        let Some(grant) = self.registry.get_by_id(id) else {
            return no_such_grant(id);
        };
        if matches!(grant.key().subject, Subject::Account(_) | Subject::App) {
            let error = "a minted grant's one binding is shared by every caller holding \
                         the app's credentials, who would mint it again: rotate the app's \
                         secret instead";
            return body::json(StatusCode::CONFLICT, &json!({ "id": id, "error": error }));
        }
        let live: Vec<String> = grant
            .record()
            .await
            .live_bindings()
            .map(|b| b.id.clone())
            .collect();
        let mut remaining = 0;
        for (revoked, binding) in live.iter().enumerate() {
            match grant.revoke_binding(binding).await {
                Ok(left) => remaining = left,
                Err(error) => {
                    tracing::warn!(grant = %id, revoked, %error, "admin revoke: the store refused");
                    let error = format!("store: {error}");
                    let answer = json!({ "id": id, "revoked_bindings": revoked, "error": error });
                    return body::json(StatusCode::SERVICE_UNAVAILABLE, &answer);
                }
            }
        }
        let revoked = live.len();
        tracing::info!(grant = %id, revoked, remaining, "admin revoked the grant's bindings");
        body::json(
            StatusCode::OK,
            &json!({ "id": id, "revoked_bindings": revoked, "live_bindings": remaining }),
        )
    }

    /// Records a forced refresh of `id` now, or says how long until one is allowed.
    /// An accepted refresh counts even if it then fails: it may have reached Zoom.
    fn admit_refresh(&self, id: &str) -> Result<(), Duration> {
        let now = self.clock.now_ms();
        let interval = REFRESH_INTERVAL.as_millis() as UnixMillis;
        // A poisoned lock only means a panic between two plain map operations.
        let mut map = self.refreshed_at.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&last) = map.get(id) {
            // A wall clock stepped back (now < last) does not lock the grant out.
            if now >= last && now - last < interval {
                return Err(Duration::from_millis(last + interval - now));
            }
        }
        map.retain(|_, &mut last| now < last || now - last < interval);
        map.insert(id.to_owned(), now);
        Ok(())
    }
}

/// The 403 for a request a browser could have sent: one with an `Origin`, or a
/// write whose `Content-Type` is not JSON. A write with no `Content-Type` passes.
fn refuse_browsers(method: &Method, headers: &HeaderMap) -> Option<Response<Body>> {
    let reason = if headers.contains_key(header::ORIGIN) {
        "admin does not answer browsers: the request carries an Origin header"
    } else if !method.is_safe()
        && headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| !is_json(v))
    {
        "admin writes take no body or a JSON one: Content-Type must be application/json"
    } else {
        return None;
    };
    Some(body::json(
        StatusCode::FORBIDDEN,
        &json!({ "error": reason }),
    ))
}

/// `application/json`, or any `+json` type, parameters aside.
fn is_json(value: &http::HeaderValue) -> bool {
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The 404 for a grant id this process does not know.
fn no_such_grant(id: &str) -> Response<Body> {
    body::json(
        StatusCode::NOT_FOUND,
        &json!({ "error": "no such grant", "id": id }),
    )
}

/// The 429 for a forced refresh within [`REFRESH_INTERVAL`] of the last one.
fn too_soon(id: &str, wait: Duration) -> Response<Body> {
    let seconds = wait.as_millis().div_ceil(1000).max(1) as u64;
    let mut resp = body::json(
        StatusCode::TOO_MANY_REQUESTS,
        &json!({
            "id": id,
            "refreshed": false,
            "error": format!("refreshed less than {}s ago; retry in {seconds}s", REFRESH_INTERVAL.as_secs()),
        }),
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, http::HeaderValue::from(seconds));
    resp
}

/// One grant for `/grants`: its record's version and bindings, its published token's state.
async fn describe(grant: &GrantHandle, now: u64) -> serde_json::Value {
    let cur = grant.current();
    let record = grant.record().await;
    let key = grant.key();
    json!({
        "id": grant.id(),
        "client_id": key.client_id,
        "subject": key.subject.to_string(),
        // The Zoom account whose rate limits this grant's calls spend, once known.
        "account_id": grant.rate_account(),
        "version": record.version,
        "bindings": record.live_bindings().count(),
        "scope": record.scope,
        "state": match (record.deauthorized_at(), &cur.dead, &cur.bearer) {
            (Some(_), _, _) => "deauthorized",
            (None, Some(_), _) => "dead",
            (None, None, None) => "empty",
            (None, None, Some(_)) => "live",
        },
        "dead_reason": cur.dead,
        "deauthorized_at_ms": record.deauthorized_at(),
        "access_token": if cur.bearer.is_some() { "(redacted)" } else { "" },
        "expires_at_ms": cur.expires_at_ms,
        "expires_in_seconds": (cur.expires_at_ms as i64 - now as i64) / 1000,
        "refreshed_at_ms": cur.issued_at_ms,
        "unpersisted": grant.is_unpersisted(),
    })
}

/// 200 with no problems, else 503; the body lists them, then `extra`'s fields.
fn readiness(problems: &[String], extra: serde_json::Value) -> Response<Body> {
    let status = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut answer = json!({ "ready": problems.is_empty(), "problems": problems });
    if let (Some(answer), serde_json::Value::Object(extra)) = (answer.as_object_mut(), extra) {
        answer.extend(extra);
    }
    body::json(status, &answer)
}

fn text(status: StatusCode, text: impl Into<bytes::Bytes>) -> Response<Body> {
    let mut resp = Response::new(body::full(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn percent_decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// What admin shows of a queued message: never its body or headers.
fn envelope_summary(envelope: &Envelope) -> serde_json::Value {
    json!({
        "id": envelope.id,
        "event": envelope.message.event,
        "queued_at_ms": envelope.message.queued_at_ms,
        "attempts": envelope.attempts,
        "next_attempt_ms": envelope.not_before_ms,
        "last_error": envelope.last_error,
    })
}

/// A target's URL without its query, which may carry a credential.
fn shown_url(url: &http::Uri) -> String {
    let authority = url.authority().map_or("", |a| a.as_str());
    format!(
        "{}://{authority}{}",
        url.scheme_str().unwrap_or("http"),
        url.path()
    )
}

fn store_error(error: &StoreError) -> Response<Body> {
    body::json(
        StatusCode::SERVICE_UNAVAILABLE,
        &json!({ "error": error.to_string() }),
    )
}
