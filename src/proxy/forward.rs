//! Forwarding API calls to Zoom with the grant's real token, and the replay
//! that hides a token rotation from callers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::request::Parts;
use http::{header, Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use pin_project_lite::pin_project;
use tokio::time::Sleep;

use super::upload::Upload;
use super::{headers, Proxy};
use crate::body::{self, Body, BoxError};
use crate::error::ProxyError;
use crate::grants::vtoken::{Claims, Kind, VerifyError};
use crate::grants::{GrantHandle, Subject};
use crate::metrics::ReplayLabels;
use crate::ratelimit::{Ask, Flow, Observed, ZoomLimits};
use crate::serve::Incoming;
use crate::upstream::{describe_error, PoolError};

/// Zoom's 401 bodies are tiny; anything bigger is not the one we replay on.
const MAX_401_BODY: usize = 64 * 1024;

/// Whom a request acts for.
enum Target {
    /// A grant, and who asks (for the rate-limit budget's fair queue).
    Grant(Arc<GrantHandle>, Flow),
    /// An unknown bearer token forwarded untouched (migration mode).
    Passthrough,
}

// === impl Proxy ===

impl Proxy {
    pub(super) async fn forward_api(
        &self,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, ProxyError> {
        let target = self.resolve(req.headers()).await?;
        let (mut parts, body) = req.into_parts();
        // The pool writes the target for its protocol (HTTP/2 by ALPN where Zoom
        // offers it); the caller's version and authority are its own.
        parts.version = Version::HTTP_11;
        match target {
            Target::Passthrough => {
                headers::prepare_request(
                    &mut parts.headers,
                    &self.keep_forwarding,
                    &self.api_host,
                    None,
                );
                let resp = self
                    .send(Request::from_parts(parts, body::stream(body)))
                    .await?;
                Ok(into_client_response(resp))
            }
            Target::Grant(grant, flow) => self.forward_with_grant(&grant, flow, parts, body).await,
        }
    }

    /// A virtual access token or a static caller key selects the grant.
    async fn resolve(&self, headers: &http::HeaderMap) -> Result<Target, ProxyError> {
        let presented = headers::bearer(headers);
        if let Some(token) = presented {
            match self.signer.verify(token) {
                Ok(claims) => {
                    let grant = self.resolve_virtual(&claims).await?;
                    let weight = self
                        .app_weights
                        .load()
                        .get(&grant.key().client_id)
                        .copied()
                        .unwrap_or(1);
                    let flow = Flow {
                        id: Arc::from(format!("binding:{}", claims.bid)),
                        weight,
                    };
                    return Ok(Target::Grant(grant, flow));
                }
                Err(VerifyError::Tampered) => return Err(ProxyError::InvalidToken),
                Err(VerifyError::Foreign) => {}
            }
        }
        let callers = self.callers.load();
        if let Some((caller, key)) = presented.and_then(|t| callers.lookup(t)) {
            return Ok(Target::Grant(
                self.registry.ensure(key),
                caller.flow.clone(),
            ));
        }
        if self.passthrough && presented.is_some() {
            return Ok(Target::Passthrough);
        }
        Err(ProxyError::InvalidToken)
    }

    async fn resolve_virtual(&self, claims: &Claims) -> Result<Arc<GrantHandle>, ProxyError> {
        if claims.typ != Kind::Access {
            return Err(ProxyError::InvalidToken);
        }
        if claims.exp.is_none_or(|exp| self.clock.now_secs() >= exp) {
            return Err(ProxyError::ExpiredToken);
        }
        self.registry
            .find_binding(&claims.gid, &claims.bid)
            .await
            .ok_or(ProxyError::InvalidToken)
    }

    async fn forward_with_grant(
        &self,
        grant: &Arc<GrantHandle>,
        flow: Flow,
        mut parts: Parts,
        body: Incoming,
    ) -> Result<Response<Body>, ProxyError> {
        let replayable = self.replayable(&parts.headers);
        let started_ms = self.clock.now_ms();
        // The budget first: a request that waits for it should not hold a
        // token that may rotate meanwhile.
        let shaping = self.shaping(grant, &parts, flow).await?;
        let cur = grant.token().await?;
        headers::prepare_request(
            &mut parts.headers,
            &self.keep_forwarding,
            &self.api_host,
            cur.bearer.as_ref(),
        );
        if !replayable {
            // Too big to buffer: it streams, and a 401 or 429 reaches the caller as Zoom sent it.
            let (method, uri) = (parts.method.clone(), parts.uri.clone());
            let resp = self.send_streamed(parts, body).await?;
            if let Some(s) = &shaping {
                if ZoomLimits::present(resp.headers()) {
                    self.limiter
                        .observe(
                            &s.ask,
                            &method,
                            uri.path(),
                            resp.status(),
                            resp.headers(),
                            None,
                        )
                        .await;
                }
            }
            return Ok(into_client_response(resp));
        }
        let buffered = buffer_up_to(body, self.replay_body_limit)
            .await
            .map_err(|e| ProxyError::ClientBody(e.to_string()))?;
        let bytes = match buffered {
            Buffered::Whole(bytes) => bytes,
            Buffered::Partial { head, rest } => {
                // A chunked body that turned out too big: what was read goes first,
                // the rest streams after it, and no replay is possible.
                let resp = self
                    .send_streamed(parts, body::prefixed(head, rest))
                    .await?;
                return Ok(into_client_response(resp));
            }
        };
        let resp = self
            .send_shaped(shaping.as_ref(), &parts, bytes.clone())
            .await?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(into_client_response(resp));
        }
        let (resp_parts, resp_body) = resp.into_parts();
        let resp_bytes = read_401(resp_body)
            .await
            .map_err(|e| ProxyError::Upstream(format!("reading Zoom's 401: {e}")))?;
        if !is_invalid_token(&resp_bytes) {
            return Ok(into_client_response(Response::from_parts(
                resp_parts,
                body::full(resp_bytes),
            )));
        }
        // The token we sent lost a race with a rotation, or expired at Zoom first,
        // or another system's authorization of this user revoked it at Zoom and
        // its adoption is about to bring the new tokens into this grant.
        let fresh = match grant.after_rejection(&cur).await {
            Ok(fresh) => fresh,
            Err(error) => match grant.after_adoption(&cur).await {
                Some(fresh) => fresh,
                None => return Err(error.into()),
            },
        };
        let cause = if fresh.issued_at_ms >= started_ms {
            "refreshed"
        } else {
            "rotated"
        };
        self.metrics
            .replays
            .get_or_create(&ReplayLabels { cause })
            .inc();
        if let Some(bearer) = &fresh.bearer {
            parts.headers.insert(header::AUTHORIZATION, bearer.clone());
        }
        tracing::debug!(grant = %grant.id(), "replaying after 401 code 124");
        // The replay is a call of its own at Zoom: it spends the budget too.
        if let Some(s) = &shaping {
            self.limiter.admit(&s.ask, s.deadline).await?;
        }
        let resp = self.send_shaped(shaping.as_ref(), &parts, bytes).await?;
        Ok(into_client_response(resp))
    }

    /// Takes the request's slot in its account's budget (waiting in the fair
    /// queue if need be); `None` when shaping is off.
    async fn shaping(
        &self,
        grant: &GrantHandle,
        parts: &Parts,
        flow: Flow,
    ) -> Result<Option<Shaping>, ProxyError> {
        if !self.limiter.enabled() {
            return Ok(None);
        }
        let (account, user) = budget_account(grant);
        let Some(ask) = self
            .limiter
            .ask(account, user, &parts.method, parts.uri.path(), flow)
        else {
            return Ok(None);
        };
        let deadline = tokio::time::Instant::now() + self.limiter.max_wait();
        self.limiter.admit(&ask, deadline).await?;
        Ok(Some(Shaping { ask, deadline }))
    }

    /// Sends a whole (buffered) request, and sends it again after Zoom's
    /// per-second 429, which says Zoom did not perform it, for as long as the
    /// request's `max_wait` allows.
    async fn send_shaped(
        &self,
        shaping: Option<&Shaping>,
        parts: &Parts,
        bytes: Bytes,
    ) -> Result<Response<Body>, ProxyError> {
        loop {
            let resp = self.send_whole(parts, bytes.clone()).await?;
            let Some(s) = shaping else {
                return Ok(resp);
            };
            let (method, path) = (&parts.method, parts.uri.path());
            if resp.status() != StatusCode::TOO_MANY_REQUESTS {
                if ZoomLimits::present(resp.headers()) {
                    let (status, headers) = (resp.status(), resp.headers());
                    self.limiter
                        .observe(&s.ask, method, path, status, headers, None)
                        .await;
                }
                return Ok(resp);
            }
            let (resp_parts, resp_body) = resp.into_parts();
            let resp_bytes = read_small(resp_body)
                .await
                .map_err(|e| ProxyError::Upstream(format!("reading Zoom's 429: {e}")))?;
            let observed = self
                .limiter
                .observe(
                    &s.ask,
                    method,
                    path,
                    resp_parts.status,
                    &resp_parts.headers,
                    Some(&resp_bytes),
                )
                .await;
            let zoom_429 =
                || Response::from_parts(resp_parts.clone(), body::full(resp_bytes.clone()));
            let Observed::RetryAfter(at_ms) = observed else {
                return Ok(zoom_429());
            };
            let wait = Duration::from_millis(at_ms.saturating_sub(self.clock.now_ms()));
            if tokio::time::Instant::now() + wait > s.deadline {
                return Ok(zoom_429());
            }
            // The budget was pushed back to Zoom's time; waiting for a slot
            // waits for it (and a route of unknown category waits here).
            if !s.ask.has_budget() {
                tokio::time::sleep(wait).await;
            }
            if self.limiter.admit(&s.ask, s.deadline).await.is_err() {
                return Ok(zoom_429());
            }
            self.limiter.count_retry();
            tracing::debug!(path, "retrying after Zoom's per-second 429");
        }
    }

    /// Bodies up to `replay_body_limit` are buffered for a replay. One that says it
    /// is longer streams from the start; a chunked one is read up to the limit first.
    fn replayable(&self, headers: &http::HeaderMap) -> bool {
        if headers.contains_key(header::TRANSFER_ENCODING) {
            return true;
        }
        match headers.get(header::CONTENT_LENGTH) {
            None => true,
            Some(v) => v
                .to_str()
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .is_some_and(|len| len <= self.replay_body_limit),
        }
    }

    /// A request whose body is whole: Zoom has `response_timeout` to answer.
    fn send(
        &self,
        req: Request<Body>,
    ) -> ZoomCall<'_, impl Future<Output = Result<Response<Body>, PoolError>> + '_> {
        self.call(self.upstream.send(req), Some(self.response_timeout))
    }

    /// [`Self::send`] for a request kept in `parts` for a replay: the pool
    /// writes it from them, with no copy, where it can.
    fn send_whole<'a>(
        &'a self,
        parts: &'a Parts,
        bytes: Bytes,
    ) -> ZoomCall<'a, impl Future<Output = Result<Response<Body>, PoolError>> + 'a> {
        let sending = self.upstream.send_whole(parts, bytes);
        self.call(sending, Some(self.response_timeout))
    }

    /// A request whose body streams from the caller: `response_timeout` runs
    /// from the body's end, and the upload may stall `upload_stall_timeout` at most.
    async fn send_streamed<B>(&self, parts: Parts, body: B) -> Result<Response<Body>, ProxyError>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (upload, progress) = Upload::new(body);
        let req = Request::from_parts(parts, body::stream(upload));
        tokio::select! {
            answer = self.call(self.upstream.send(req), None) => answer,
            overdue = progress.overdue(self.upload_stall_timeout, self.response_timeout) => {
                Err(overdue)
            }
        }
    }

    fn call<F>(&self, sending: F, timeout: Option<Duration>) -> ZoomCall<'_, F> {
        ZoomCall {
            sending,
            deadline: timeout.map(tokio::time::sleep),
            started: Instant::now(),
            proxy: self,
        }
    }
}

pin_project! {
    /// One call to Zoom as the proxy awaits it: bounded by `response_timeout`
    /// when it has a deadline, and timed, its rate-limit headers noted, when it
    /// answers. A struct, not `async fn`s around the pool's future: each such
    /// layer keeps a copy of the future it wraps beside the one it awaits, and
    /// the handler's future, moved into its box for every request, carries
    /// them all.
    struct ZoomCall<'a, F> {
        #[pin]
        sending: F,
        #[pin]
        deadline: Option<Sleep>,
        started: Instant,
        proxy: &'a Proxy,
    }
}

impl<F> Future for ZoomCall<'_, F>
where
    F: Future<Output = Result<Response<Body>, PoolError>>,
{
    type Output = Result<Response<Body>, ProxyError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(sent) = this.sending.poll(cx) {
            let resp = sent.map_err(|e| ProxyError::Upstream(describe_error(&e)))?;
            let metrics = &this.proxy.metrics;
            metrics
                .upstream_seconds
                .observe(this.started.elapsed().as_secs_f64());
            metrics.observe_ratelimit(resp.headers());
            return Poll::Ready(Ok(resp));
        }
        if let Some(deadline) = this.deadline.as_pin_mut() {
            ready!(deadline.poll(cx));
            let timeout = this.proxy.response_timeout;
            return Poll::Ready(Err(ProxyError::UpstreamTimeout(timeout)));
        }
        Poll::Pending
    }
}

/// Zoom's answer as the caller gets it: untouched but for hop-by-hop headers.
fn into_client_response(mut resp: Response<Body>) -> Response<Body> {
    headers::strip_hop_by_hop(resp.headers_mut());
    resp
}

/// A body read up to a limit.
enum Buffered<B> {
    Whole(Bytes),
    /// Longer than the limit: the frames read so far, and the unread remainder.
    Partial {
        head: Bytes,
        rest: B,
    },
}

/// Reads `body` whole if it fits in `limit` bytes; trailers are dropped (Zoom's
/// API uses none). Used for callers' bodies (kept for a replay) and Zoom's 401s.
async fn buffer_up_to<B>(mut body: B, limit: usize) -> Result<Buffered<B>, B::Error>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        if buf.is_empty() && data.len() > limit {
            return Ok(Buffered::Partial {
                head: data,
                rest: body,
            });
        }
        buf.extend_from_slice(&data);
        if buf.len() > limit {
            return Ok(Buffered::Partial {
                head: buf.freeze(),
                rest: body,
            });
        }
    }
    Ok(Buffered::Whole(buf.freeze()))
}

/// A request's place in its rate-limit budget.
struct Shaping {
    ask: Ask,
    /// `rate_limit.max_wait` from the request's arrival: waits and retries end here.
    deadline: tokio::time::Instant,
}

/// The budget a grant's calls spend: Zoom limits per account. A user grant
/// whose account is not known yet (no `/users/me` answer, opaque tokens)
/// spends a budget of its own user's; an app token one of its app's.
fn budget_account(grant: &GrantHandle) -> (Arc<str>, Option<&str>) {
    let user = match &grant.key().subject {
        Subject::User(user) => Some(user.as_str()),
        _ => None,
    };
    if let Some(account) = grant.rate_account() {
        return (account, user);
    }
    let own = match &grant.key().subject {
        Subject::User(user) => format!("user:{user}"),
        Subject::Account(account) => account.clone(),
        Subject::App => format!("app:{}", grant.key().client_id),
        Subject::Pending(hash) => format!("pending:{hash}"),
    };
    (Arc::from(own), user)
}

/// Reads a 401 or 429 body, which Zoom keeps tiny.
async fn read_small(body: Body) -> Result<Bytes, body::BoxError> {
    read_401(body).await
}

/// Reads a 401 body, which Zoom keeps tiny.
async fn read_401(body: Body) -> Result<Bytes, body::BoxError> {
    match buffer_up_to(body, MAX_401_BODY).await? {
        Buffered::Whole(bytes) => Ok(bytes),
        Buffered::Partial { .. } => Err("longer than a token error".into()),
    }
}

/// Is this Zoom's 401 code 124 ("Invalid access token." / "Access token is expired.")?
fn is_invalid_token(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("code").and_then(|c| c.as_u64()))
        == Some(124)
}
