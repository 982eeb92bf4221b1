//! `/v2/*`: faults, recording, the bearer-token check and rate limits, in that order,
//! then the route, then any answer delay.
//!
//! Faults come first because they model the network; the request is recorded before
//! the token check so proxy tests can see what was forwarded even when it is refused.

use http::header::AUTHORIZATION;
use http::request::Parts;
use http::{Request, Response, StatusCode};

use super::config::RateLimits;
use super::echo::{self, RecordedRequest};
use super::faults::{self, Injected};
use super::grants::{AccessError, GrantKey};
use super::ratelimit::{Ask, Category, Verdict};
use super::reply;
use super::rest;
use super::state::{lock, Settings, Shared};
use super::stats::Counters;
use crate::body::Body;
use crate::serve::Incoming;

/// Bodies of the JSON routes are kept up to this size; the echo route keeps none.
const MAX_JSON_BYTES: usize = 1024 * 1024;

/// Whom a request acts for.
#[derive(Debug)]
pub(crate) struct Caller {
    pub user: String,
    pub account: String,
    /// An app-level (`client_credentials`) token: it acts for the app, not a
    /// user, and reaches only the app-level routes.
    pub app: bool,
}

pub(crate) async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    Counters::bump(&shared.counters.api_requests);
    let settings = shared.settings();
    let resp = match faults::inject(&settings.api_faults).await {
        Some(Injected::Reset) => return faults::reset(),
        Some(Injected::Error) => faults::api_unavailable(),
        None => serve(shared, &settings, req).await,
    };
    faults::delay_answer(&settings.api_faults).await;
    resp
}

/// Records, checks the token and the rate limit, then runs the route.
async fn serve(shared: &Shared, settings: &Settings, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let echo = parts.uri.path().starts_with("/v2/_echo/");
    let body = echo::read_body(body, if echo { 0 } else { MAX_JSON_BYTES }).await;
    let record = RecordedRequest::new(&parts, &body);
    shared.record(record.clone());

    let caller = match caller(shared, &parts) {
        Ok(caller) => caller,
        Err(message) => {
            Counters::bump(&shared.counters.api_401);
            return reply::api_error(StatusCode::UNAUTHORIZED, 124, message);
        }
    };
    let category = Category::of(&parts.method, parts.uri.path());
    let verdict = settings
        .rate_limits
        .as_ref()
        .map(|limits| admit(shared, &caller, &parts, category, limits));
    let refused = verdict.and_then(|v| Some((v.refused_by()?, v.too_many()?)));
    let mut resp = match refused {
        Some((kind, too_many)) => {
            shared.counters.refused(kind);
            too_many
        }
        None => {
            shared.counters.served(category);
            if echo {
                record.echo()
            } else {
                rest::route(shared, &caller, &parts, body.bytes.as_deref())
            }
        }
    };
    if let Some(v) = verdict {
        v.stamp(resp.headers_mut());
    }
    resp
}

/// Runs the request past the rate limits. The meeting's host is looked up first,
/// outside the limiter's lock.
fn admit(
    shared: &Shared,
    caller: &Caller,
    parts: &Parts,
    category: Category,
    limits: &RateLimits,
) -> Verdict {
    let writer = limits
        .meeting_writes_per_user_per_day
        .and_then(|_| rest::meeting_writer(shared, caller, parts));
    let ask = Ask {
        account: &caller.account,
        category,
        meeting_writer: writer.as_deref(),
    };
    let now_ms = shared.clock.now_ms();
    lock(&shared.limiter).admit(&ask, limits, now_ms)
}

/// Resolves the bearer token, or gives Zoom's message for a 401 code 124.
fn caller(shared: &Shared, parts: &Parts) -> Result<Caller, &'static str> {
    let owner = || Caller {
        user: shared.default_user.clone(),
        account: shared.account_id.clone(),
        app: false,
    };
    if !shared.check_tokens {
        return Ok(owner());
    }
    let Some(token) = bearer(parts) else {
        return Err(missing_token_message(parts));
    };
    let now_ms = shared.clock.now_ms();
    let grants = lock(&shared.grants);
    match grants.check_access(token, now_ms) {
        Ok(GrantKey::User { user, .. }) => Ok(Caller {
            user: user.clone(),
            account: shared.account_id.clone(),
            app: false,
        }),
        Ok(GrantKey::App { .. }) => Ok(Caller {
            user: String::new(),
            account: shared.account_id.clone(),
            app: true,
        }),
        // "The token is the owner's access token" (ZOOM.md §4).
        Ok(GrantKey::S2s { .. }) => Ok(owner()),
        Err(AccessError::Expired) => Err("Access token is expired."),
        Err(AccessError::Invalid) => Err("Invalid access token."),
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Without a header, a token in the query string gets Zoom's dedicated message
/// (Feb 2023 change, ZOOM.md §1.1); with a header the query is not looked at.
fn missing_token_message(parts: &Parts) -> &'static str {
    let in_query = super::oauth::query_pairs(parts.uri.query())
        .iter()
        .any(|(k, _)| k == "access_token");
    if in_query {
        "Invalid access token, this access token is not supported as query parameter string."
    } else {
        "Invalid access token."
    }
}
