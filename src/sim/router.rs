//! The one service behind the sim's listener: both Zoom hosts' paths on one port.

use std::convert::Infallible;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};

use super::state::Shared;
use super::{api, authorize, reply, token, webhooks};
use crate::body::Body;
use crate::serve::Incoming;

/// Routes one request. Never fails: every outcome, even a dropped connection, is a
/// response (see `faults::reset`).
pub(crate) async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    tracing::debug!(method = %req.method(), %path, "sim request");
    let mut resp = match (req.method(), path.as_str()) {
        (&Method::GET, "/oauth/authorize") => authorize::authorize(&shared, &req),
        (&Method::POST, "/oauth/token") => token::handle(&shared, req).await,
        (&Method::POST, "/oauth/revoke") => authorize::revoke(&shared, req).await,
        (&Method::GET, "/_sim/stats") => reply::json(StatusCode::OK, &shared.counters.snapshot()),
        (&Method::POST, "/_sim/webhooks") => webhooks::configure(&shared, req).await,
        (&Method::POST, "/_sim/webhooks/validate") => webhooks::validate(&shared, req).await,
        (&Method::POST, "/_sim/uninstall") => webhooks::uninstall(&shared, req).await,
        (_, p) if p.starts_with("/v2/") => api::handle(&shared, req).await,
        _ => reply::not_found(),
    };
    resp.headers_mut()
        .insert("x-zm-trackingid", reply::tracking_id());
    Ok(resp)
}
