//! `POST /oauth/token`: the three grant types, with Zoom's exact statuses and bodies
//! (ZOOM.md §1.5 and §8).

use bytes::Bytes;
use futures_util::FutureExt as _;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use serde::Serialize;

use super::codes::RedeemError;
use super::config::{SimApp, SimConfig};
use super::faults::{self, Injected};
use super::grants::{GrantKey, Pair, Ttls};
use super::oauth::{self, Params};
use super::reply;
use super::state::{lock, millis, Settings, Shared};
use super::stats::Counters;
use crate::body::Body;
use crate::serve::Incoming;

/// Scopes reported for user tokens (classic, space-separated).
const USER_SCOPE: &str = "meeting:read meeting:write user:read";
/// Scopes reported for S2S tokens.
const S2S_SCOPE: &str = "meeting:read:admin meeting:write:admin user:read:admin";

/// Scopes reported for app-level (`client_credentials`) tokens.
const APP_SCOPE: &str = "imchat:bot";

/// The success body, fields in Zoom's order.
#[derive(Serialize)]
struct TokenAnswer<'a> {
    access_token: &'a str,
    token_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    expires_in: u64,
    scope: &'static str,
    api_url: &'a str,
}

pub(crate) async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body = oauth::read_form(body).await;
    let params = Params::parse(
        &parts.headers,
        parts.uri.query(),
        &body,
        shared.allow_query_params,
    );
    count_grant_type(shared, params.get("grant_type"));
    let settings = shared.settings();
    let resp = match faults::inject(&settings.token_faults).await {
        Some(Injected::Reset) => return faults::reset(),
        Some(Injected::Error) => faults::token_unavailable(),
        None => answer(shared, &settings, &parts.headers, &params),
    };
    if resp.status() != StatusCode::OK {
        Counters::bump(&shared.counters.token_errors);
    }
    // Zoom has acted (and the counters say so); a caller that gives up now loses
    // only the answer.
    faults::delay_answer(&settings.token_faults).await;
    resp
}

fn count_grant_type(shared: &Shared, grant_type: Option<&str>) {
    let c = &shared.counters;
    match grant_type {
        Some("authorization_code") => Counters::bump(&c.authorization_code),
        Some("refresh_token") => Counters::bump(&c.refresh_token),
        Some("account_credentials") => Counters::bump(&c.account_credentials),
        Some("client_credentials") => Counters::bump(&c.client_credentials),
        _ => {}
    }
}

fn answer(
    shared: &Shared,
    settings: &Settings,
    headers: &HeaderMap,
    params: &Params,
) -> Response<Body> {
    let app = match oauth::client(shared, headers, params) {
        Ok(app) => app,
        Err(refused) => return refused.reply(),
    };
    if params.json_body {
        return reply::unsupported_grant_type();
    }
    let client_id = app.client_id.as_str();
    match params.get("grant_type") {
        Some("authorization_code") => authorization_code(shared, settings, app, params),
        Some("refresh_token") => refresh_token(shared, settings, client_id, params),
        // App-level tokens need the app's secret: a public client has none.
        Some("account_credentials" | "client_credentials") if app.public => reply::invalid_client(),
        Some("account_credentials") => account_credentials(shared, settings, client_id, params),
        Some("client_credentials") => client_credentials(shared, settings, client_id),
        _ => reply::unsupported_grant_type(),
    }
}

fn authorization_code(
    shared: &Shared,
    settings: &Settings,
    app: &SimApp,
    params: &Params,
) -> Response<Body> {
    let client_id = app.client_id.as_str();
    let code = params.get("code").unwrap_or_default();
    if app.public && params.get("code_verifier").is_none_or(str::is_empty) {
        // A public client proves itself with PKCE alone (ZOOM.md §1.2).
        return reply::oauth_error(
            StatusCode::BAD_REQUEST,
            "code_verifier is required for a public client.",
            "invalid_request",
        );
    }
    let now_ms = shared.clock.now_ms();
    let redeemed = lock(&shared.codes).redeem(
        code,
        client_id,
        params.get("redirect_uri"),
        params.get("code_verifier"),
        now_ms,
    );
    let grant = match redeemed {
        Ok(grant) => grant,
        Err(RedeemError::InvalidCode) => {
            let reason = format!("Invalid authorization code {code}");
            return reply::oauth_error(StatusCode::BAD_REQUEST, &reason, "invalid_request");
        }
        // Wire body UNCONFIRMED (ZOOM.md §1.5): the text is Zoom's doc error 4709.
        Err(RedeemError::RedirectMismatch) => {
            return reply::oauth_error(
                StatusCode::BAD_REQUEST,
                "Redirect URI mismatch.",
                "invalid_request",
            );
        }
        Err(RedeemError::BadVerifier) => return invalid_grant(shared, "Invalid code verifier"),
    };
    if app.public && grant.challenge.is_none() {
        // The code was issued without a challenge: nothing binds it to this client.
        return invalid_grant(shared, "Invalid code verifier");
    }
    let key = GrantKey::User {
        client_id: client_id.to_owned(),
        user: grant.user,
    };
    let pair = lock(&shared.grants).authorize(&key, now_ms, user_ttls(shared, settings));
    user_answer(shared, settings, &pair)
}

fn refresh_token(
    shared: &Shared,
    settings: &Settings,
    client_id: &str,
    params: &Params,
) -> Response<Body> {
    let token = params.get("refresh_token").unwrap_or_default();
    let now_ms = shared.clock.now_ms();
    let ttls = user_ttls(shared, settings);
    let kill_access = settings.invalidate_previous_access;
    let rotated = lock(&shared.grants).refresh(client_id, token, now_ms, ttls, kill_access);
    match rotated {
        Some(pair) => user_answer(shared, settings, &pair),
        // Unknown, rotated out, revoked, expired or another client's: all the same to
        // Zoom (the expired case is UNCONFIRMED, ZOOM.md §7).
        None => invalid_grant(shared, "Invalid Token!"),
    }
}

fn account_credentials(
    shared: &Shared,
    settings: &Settings,
    client_id: &str,
    params: &Params,
) -> Response<Body> {
    if params.get("account_id") != Some(shared.account_id.as_str()) {
        // UNCONFIRMED: Zoom's status and body for an unknown account_id (ZOOM.md §7).
        return reply::oauth_error(
            StatusCode::BAD_REQUEST,
            "Invalid account_id",
            "invalid_request",
        );
    }
    let now_ms = shared.clock.now_ms();
    let ttl_ms = millis(settings.s2s_token_ttl);
    let token = lock(&shared.grants).issue_s2s(client_id, now_ms, ttl_ms, settings.legacy_s2s);
    minted_answer(shared, settings, &token, S2S_SCOPE)
}

/// `grant_type=client_credentials`: the app's own token (a General app's
/// chatbot or event subscriptions, ZOOM.md §1.2), no refresh token. Like
/// Server-to-Server tokens, each mint is its own and earlier ones stay valid.
fn client_credentials(shared: &Shared, settings: &Settings, client_id: &str) -> Response<Body> {
    let now_ms = shared.clock.now_ms();
    let ttl_ms = millis(settings.s2s_token_ttl);
    let token = lock(&shared.grants).issue_app(client_id, now_ms, ttl_ms);
    minted_answer(shared, settings, &token, APP_SCOPE)
}

/// The answer for a token with no user and no refresh token (S2S, app).
fn minted_answer(
    shared: &Shared,
    settings: &Settings,
    token: &str,
    scope: &'static str,
) -> Response<Body> {
    reply::json(
        StatusCode::OK,
        &TokenAnswer {
            access_token: token,
            token_type: "bearer",
            refresh_token: None,
            expires_in: settings.s2s_token_ttl.as_secs(),
            scope,
            api_url: &shared.api_url,
        },
    )
}

/// `invalid_grant`, counted: the answer that ends a grant for whoever holds it.
fn invalid_grant(shared: &Shared, reason: &str) -> Response<Body> {
    Counters::bump(&shared.counters.invalid_grant);
    reply::oauth_error(StatusCode::BAD_REQUEST, reason, "invalid_grant")
}

fn user_ttls(shared: &Shared, settings: &Settings) -> Ttls {
    Ttls {
        access_ms: millis(settings.user_token_ttl),
        refresh_ms: millis(shared.refresh_token_ttl),
    }
}

fn user_answer(shared: &Shared, settings: &Settings, pair: &Pair) -> Response<Body> {
    reply::json(
        StatusCode::OK,
        &TokenAnswer {
            access_token: &pair.access,
            token_type: "bearer",
            refresh_token: Some(&pair.refresh),
            expires_in: settings.user_token_ttl.as_secs(),
            scope: USER_SCOPE,
            api_url: &shared.api_url,
        },
    )
}

/// The token endpoint without a socket, faults or delays: the parsing, client
/// authentication and grant logic a request over HTTP meets. For the fuzz
/// target, which cannot afford a connection per input.
pub struct OfflineTokenEndpoint {
    shared: Shared,
}

impl std::fmt::Debug for OfflineTokenEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfflineTokenEndpoint")
            .finish_non_exhaustive()
    }
}

// === impl OfflineTokenEndpoint ===

impl OfflineTokenEndpoint {
    pub fn new(cfg: SimConfig) -> Self {
        Self {
            shared: Shared::new(cfg, "http://sim.invalid".to_owned()),
        }
    }

    /// A code for the default user and the first app, as `/oauth/authorize`
    /// would issue it, so inputs can reach a code exchange.
    pub fn issue_code(&self, redirect_uri: &str) -> String {
        let client_id = self.shared.apps.first().map(|a| a.client_id.clone());
        let user = self.shared.default_user.clone();
        self.shared
            .issue_code(&client_id.unwrap_or_default(), &user, redirect_uri, None)
    }

    /// One request's status and body.
    pub fn answer(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        body: &[u8],
    ) -> (StatusCode, Bytes) {
        let shared = &self.shared;
        let params = Params::parse(headers, query, body, shared.allow_query_params);
        let resp = answer(shared, &shared.settings(), headers, &params);
        let status = resp.status();
        // Every answer here is a buffered body, ready at the first poll.
        let bytes = resp
            .into_body()
            .collect()
            .now_or_never()
            .and_then(Result::ok)
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        (status, bytes)
    }
}
