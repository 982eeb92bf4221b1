//! The proxy listener's request handling: classify, resolve the caller's grant,
//! forward with the real token, replay on 401.

mod callers;
mod forward;
pub mod headers;
mod upload;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::uri::Authority;
use http::{HeaderName, HeaderValue, Method, Request, Response, Version};

pub use self::callers::CallerKeys;
use crate::body::Body;
use crate::clock::Clock;
use crate::config::Config;
use crate::error::{OAuthError, ProxyError};
use crate::grants::vtoken::Signer;
use crate::grants::Registry;
use crate::metrics::{Metrics, RequestLabels, Route};
use crate::oauth::{OAuthEndpoint, ZoomTokenClient};
use crate::ratelimit::RateLimiter;
use crate::serve::Incoming;
use crate::upstream::OriginPool;
use crate::webhooks::Webhooks;
use prometheus_client::metrics::counter::Counter;

/// Everything the proxy listener needs, shared by all connections.
#[derive(Debug)]
pub struct Proxy {
    registry: Arc<Registry>,
    oauth: OAuthEndpoint,
    /// Replaced whole on a config reload.
    callers: ArcSwap<CallerKeys>,
    /// Connections to Zoom's API origin.
    upstream: OriginPool,
    /// `Host` for forwarded requests: Zoom's API host.
    api_host: HeaderValue,
    /// Caller-sent forwarding headers let through to Zoom (`proxy.keep_forwarding_headers`).
    keep_forwarding: Vec<HeaderName>,
    /// Hosts an absolute-form request target may name: Zoom's and our own.
    own_authorities: Vec<Authority>,
    /// Verifies callers' virtual tokens.
    signer: Signer,
    /// Virtual tokens' expiry is read against it (tests advance it).
    clock: Clock,
    replay_body_limit: usize,
    passthrough: bool,
    response_timeout: Duration,
    /// How long a streamed upload may go without a byte moving.
    upload_stall_timeout: Duration,
    metrics: Metrics,
    /// The `requests` series of `(api, 200)`, most of the traffic, taken
    /// once: the family hashes its labels on every lookup.
    api_ok: Counter,
    /// Zoom's rate limits, shared fairly between callers.
    limiter: RateLimiter,
    /// `[[app]] weight` by client id: the share of each binding of that app.
    app_weights: ArcSwap<HashMap<String, u32>>,
    /// `POST /webhooks/zoom`.
    webhooks: Arc<Webhooks>,
}

// === impl Proxy ===

impl Proxy {
    pub fn new(
        config: &Config,
        registry: Arc<Registry>,
        upstream: OriginPool,
        zoom: ZoomTokenClient,
        (signer, clock): (Signer, Clock),
        metrics: Metrics,
        (limiter, webhooks): (RateLimiter, Arc<Webhooks>),
    ) -> Self {
        let api = &config.zoom.api_url;
        let api_authority = api
            .authority()
            .cloned()
            .unwrap_or_else(|| Authority::from_static("api.zoom.us"));
        let mut own_authorities = vec![api_authority.clone()];
        own_authorities.extend(config.zoom.oauth_url.authority().cloned());
        if let Ok(public) = config.listen.public_url.parse::<http::Uri>() {
            own_authorities.extend(public.authority().cloned());
        }
        if let Ok(listen) = Authority::try_from(config.listen.proxy.to_string()) {
            own_authorities.push(listen);
        }
        // Intercepted requests name Zoom's hosts (an HTTP/1 client may send
        // absolute-form inside the tunnel).
        if config.intercepts() {
            let hosts = config.intercept.hosts.iter();
            own_authorities.extend(hosts.filter_map(|h| Authority::try_from(h.as_str()).ok()));
        }
        let api_ok = metrics
            .requests
            .get_or_create(&RequestLabels {
                route: Route::Api,
                status: 200,
            })
            .clone();
        let oauth = OAuthEndpoint::new(
            config,
            registry.clone(),
            zoom,
            signer.clone(),
            clock.clone(),
        );
        Self {
            registry,
            oauth,
            callers: ArcSwap::from_pointee(CallerKeys::new(&config.callers)),
            upstream,
            api_host: HeaderValue::from_str(api_authority.as_str())
                .unwrap_or_else(|_| HeaderValue::from_static("api.zoom.us")),
            keep_forwarding: config.proxy.keep_forwarding_headers.clone(),
            own_authorities,
            signer,
            clock,
            replay_body_limit: config.proxy.replay_body_limit,
            passthrough: config.proxy.passthrough,
            response_timeout: config.zoom.response_timeout,
            upload_stall_timeout: config.proxy.upload_stall_timeout,
            api_ok,
            metrics,
            limiter,
            app_weights: ArcSwap::from_pointee(app_weights(config)),
            webhooks,
        }
    }

    /// Takes what a reloaded config may change while connections stay up:
    /// callers, apps (secrets, weights) and the rate-limit settings. Requests
    /// in flight finish with what they started with.
    pub fn reload(&self, config: &Config) {
        self.callers
            .store(Arc::new(CallerKeys::new(&config.callers)));
        self.app_weights.store(Arc::new(app_weights(config)));
        self.oauth.reload(config);
        self.webhooks.reload(config);
        self.limiter.reload(config.rate_limit.clone());
    }

    /// The service function for [`crate::serve::serve`].
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, Infallible> {
        let route = match self.classify(&req) {
            Ok(route) => route,
            Err(error) => {
                let resp = error.into_response();
                self.count(Route::Rejected, &resp);
                return Ok(resp);
            }
        };
        let resp = match route {
            Route::OauthToken => self
                .oauth
                .token(req)
                .await
                .unwrap_or_else(OAuthError::into_response),
            Route::OauthRevoke => self
                .oauth
                .revoke(req)
                .await
                .unwrap_or_else(OAuthError::into_response),
            Route::OauthAuthorize => self.oauth.authorize(&req),
            Route::Webhook => self.webhooks.handle(req).await,
            Route::Api | Route::Rejected => self
                .forward_api(req)
                .await
                .unwrap_or_else(ProxyError::into_response),
        };
        self.count(route, &resp);
        Ok(resp)
    }

    fn count(&self, route: Route, resp: &Response<Body>) {
        let status = resp.status().as_u16();
        if route == Route::Api && status == 200 {
            self.api_ok.inc();
            return;
        }
        self.metrics
            .requests
            .get_or_create(&RequestLabels { route, status })
            .inc();
    }

    fn classify(&self, req: &Request<Incoming>) -> Result<Route, ProxyError> {
        if req.method() == Method::CONNECT {
            return Err(ProxyError::Connect);
        }
        // An HTTP/1 absolute-form target names a host; only Zoom's or ours may appear.
        // (HTTP/2 always carries `:authority`, and requests go to Zoom regardless.)
        if req.version() <= Version::HTTP_11 {
            if let Some(authority) = req.uri().authority() {
                if !self.own_authorities.iter().any(|a| a == authority) {
                    return Err(ProxyError::ForeignTarget);
                }
            }
        }
        Ok(match req.uri().path() {
            "/oauth/token" => Route::OauthToken,
            "/oauth/revoke" => Route::OauthRevoke,
            "/oauth/authorize" => Route::OauthAuthorize,
            // Zoom's own path space has no `/webhooks`: nothing a caller forwards is shadowed.
            "/webhooks/zoom" => Route::Webhook,
            _ => Route::Api,
        })
    }
}

fn app_weights(config: &Config) -> HashMap<String, u32> {
    config
        .apps
        .iter()
        .map(|a| (a.client_id.clone(), a.weight))
        .collect()
}
