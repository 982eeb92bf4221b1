//! `GET /oauth/authorize` (approves at once) and `POST /oauth/revoke`.

use std::collections::HashMap;

use http::header::{HeaderValue, LOCATION};
use http::request::Parts;
use http::{Request, Response, StatusCode};

use super::codes::Challenge;
use super::faults::{self, Injected};
use super::oauth::{self, Params};
use super::reply;
use super::state::{lock, Shared};
use super::stats::Counters;
use crate::body::{self, Body};
use crate::serve::Incoming;

#[derive(serde::Serialize)]
struct Revoked {
    status: &'static str,
}

/// Approves as `login_hint` (default: the account owner) and redirects with a code.
pub(crate) fn authorize(shared: &Shared, req: &Request<Incoming>) -> Response<Body> {
    Counters::bump(&shared.counters.authorize_requests);
    let q: HashMap<String, String> = oauth::query_pairs(req.uri().query()).into_iter().collect();
    let get = |k: &str| q.get(k).map(String::as_str);
    let client_id = get("client_id").unwrap_or_default();
    if !shared.is_client(client_id) {
        return reply::oauth_error(
            StatusCode::BAD_REQUEST,
            "Invalid client_id",
            "invalid_client",
        );
    }
    if get("response_type") != Some("code") {
        let reason = "Unsupported response type";
        return reply::oauth_error(StatusCode::BAD_REQUEST, reason, "unsupported_response_type");
    }
    let Some(redirect_uri) = get("redirect_uri").filter(|r| !r.is_empty()) else {
        return reply::oauth_error(
            StatusCode::BAD_REQUEST,
            "Redirect URI mismatch.",
            "invalid_request",
        );
    };
    let Ok(challenge) = Challenge::parse(get("code_challenge"), get("code_challenge_method"))
    else {
        let reason = "Invalid code_challenge_method";
        return reply::oauth_error(StatusCode::BAD_REQUEST, reason, "invalid_request");
    };
    let user = get("login_hint").filter(|u| !u.is_empty());
    let user = user.unwrap_or(&shared.default_user);
    let code = shared.issue_code(client_id, user, redirect_uri, challenge);
    redirect(redirect_uri, &code, get("state"))
}

fn redirect(redirect_uri: &str, code: &str, state: Option<&str>) -> Response<Body> {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("code", code);
    if let Some(state) = state {
        query.append_pair("state", state);
    }
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    let location = format!("{redirect_uri}{sep}{}", query.finish());
    let Ok(location) = HeaderValue::try_from(location) else {
        return reply::oauth_error(
            StatusCode::BAD_REQUEST,
            "Redirect URI mismatch.",
            "invalid_request",
        );
    };
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::FOUND;
    resp.headers_mut().insert(LOCATION, location);
    resp
}

/// Revokes the grant of an access or refresh token (`token=` in the body or query).
pub(crate) async fn revoke(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    Counters::bump(&shared.counters.revoke_requests);
    let (parts, body) = req.into_parts();
    let body = oauth::read_form(body).await;
    // Older Zoom samples send `token` in the query, so it is always accepted here.
    let params = Params::parse(&parts.headers, parts.uri.query(), &body, true);
    let settings = shared.settings();
    let resp = match faults::inject(&settings.token_faults).await {
        Some(Injected::Reset) => return faults::reset(),
        Some(Injected::Error) => faults::token_unavailable(),
        None => revoke_token(shared, &parts, &params),
    };
    faults::delay_answer(&settings.token_faults).await;
    resp
}

fn revoke_token(shared: &Shared, parts: &Parts, params: &Params) -> Response<Body> {
    let app = match oauth::client(shared, &parts.headers, params) {
        Ok(app) => app,
        Err(refused) => return refused.reply(),
    };
    let token = params.get("token").unwrap_or_default();
    if lock(&shared.grants).revoke(&app.client_id, token) {
        reply::json(StatusCode::OK, &Revoked { status: "success" })
    } else {
        // UNCONFIRMED: Zoom's answer for an unknown token (ZOOM.md §3).
        reply::oauth_error(StatusCode::BAD_REQUEST, "Invalid Token!", "invalid_request")
    }
}
