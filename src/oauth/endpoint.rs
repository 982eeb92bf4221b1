//! The token endpoint callers see: `POST /oauth/token`, `POST /oauth/revoke`,
//! `GET /oauth/authorize`.
//!
//! Callers keep their OAuth code: grantmux answers from the one grant it holds
//! per Zoom user or account, and hands each caller a binding with virtual
//! tokens that survive every rotation of the real grant.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use serde_json::json;
use subtle::ConstantTimeEq;

use super::request::{Credentials, Params, TokenRequest};
use super::{ZoomTokenClient, ZoomTokenError};
use crate::body::{self, Body};
use crate::clock::Clock;
use crate::config::{Caller, Config, RevokePolicy};
use crate::error::OAuthError;
use crate::grants::vtoken::{random_id, Claims, Kind, Signer, VerifyError};
use crate::grants::{
    hash, AdoptError, Binding, GrantHandle, GrantKey, Presented, Registry, Subject, TokenError,
};
use crate::intercept::Intercepted;
use crate::secret::Secret;
use crate::serve::Incoming;

/// Virtual access tokens live as long as Zoom's user tokens, so callers refresh
/// on the schedule they already have; the real grant is kept fresh underneath.
pub const VIRTUAL_ACCESS_TTL_SECS: u64 = 3599;
/// The one binding all callers of a minted grant (Server-to-Server, or an
/// app's `client_credentials`) share: they ask for a token every hour, and a
/// binding each would grow forever.
const S2S_BINDING: &str = "s2s";
const MAX_FORM_BYTES: usize = 64 * 1024;

#[derive(Debug)]
pub struct OAuthEndpoint {
    registry: Arc<Registry>,
    /// Signs and verifies callers' virtual tokens.
    signer: Signer,
    /// Virtual tokens are dated by it (tests advance it).
    clock: Clock,
    zoom: ZoomTokenClient,
    /// Each app's secret (`None`: a public client) and revoke policy;
    /// replaced whole on a config reload.
    apps: ArcSwap<HashMap<String, (Option<Secret>, RevokePolicy)>>,
    public_url: String,
    /// `api_url` for callers that reached grantmux as Zoom's own host.
    intercepted_api_url: String,
    authorize_url: String,
    /// The `[[caller]]` names per grant: holders with no binding, which
    /// `last_binding` counts. Built from the config, again on a reload.
    static_holders: ArcSwap<HashMap<GrantKey, Vec<String>>>,
}

/// A token answer with Zoom's fields in Zoom's order.
#[derive(serde::Serialize)]
struct TokenAnswer<'a> {
    access_token: &'a str,
    token_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    expires_in: u64,
    scope: &'a str,
    api_url: &'a str,
}

// === impl OAuthEndpoint ===

impl OAuthEndpoint {
    /// Takes the apps and callers of a reloaded config.
    pub fn reload(&self, config: &Config) {
        self.apps.store(Arc::new(app_credentials(config)));
        self.static_holders
            .store(Arc::new(static_holders(&config.callers)));
        self.zoom.reload_apps(config);
    }

    pub fn new(
        config: &Config,
        registry: Arc<Registry>,
        zoom: ZoomTokenClient,
        signer: Signer,
        clock: Clock,
    ) -> Self {
        let oauth = config.zoom.oauth_url.to_string();
        Self {
            registry,
            signer,
            clock,
            zoom,
            apps: ArcSwap::from_pointee(app_credentials(config)),
            public_url: config.listen.public_url.clone(),
            intercepted_api_url: intercepted_api_url(config),
            authorize_url: format!("{}/oauth/authorize", oauth.trim_end_matches('/')),
            static_holders: ArcSwap::from_pointee(static_holders(&config.callers)),
        }
    }

    /// `GET /oauth/authorize`: on to Zoom's, query unchanged.
    pub fn authorize(&self, req: &Request<Incoming>) -> Response<Body> {
        let location = match req.uri().query() {
            Some(q) => format!("{}?{q}", self.authorize_url),
            None => self.authorize_url.clone(),
        };
        let mut resp = Response::new(body::empty());
        *resp.status_mut() = StatusCode::FOUND;
        if let Ok(v) = http::HeaderValue::try_from(location) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        resp
    }

    /// `POST /oauth/token`.
    pub async fn token(&self, req: Request<Incoming>) -> Result<Response<Body>, OAuthError> {
        // A caller that reached us as Zoom (interception) follows `api_url`
        // to Zoom's name, which brings it back here the same way.
        let api_url = match req.extensions().get::<Intercepted>() {
            Some(_) => self.intercepted_api_url.clone(),
            None => self.public_url.clone(),
        };
        let (client_id, params) = self.read_request(req).await?;
        let answered = self.grant_for_request(&client_id, &params).await?;
        self.answer(&answered, &api_url)
    }

    async fn grant_for_request(
        &self,
        client_id: &str,
        params: &Params,
    ) -> Result<Answered, OAuthError> {
        match params.get("grant_type").map(String::as_str) {
            Some("authorization_code") => self.code_exchange(client_id, params).await,
            Some("refresh_token") => {
                let token = params
                    .get("refresh_token")
                    .filter(|t| !t.is_empty())
                    .ok_or(OAuthError::InvalidRequest("refresh_token is required"))?;
                self.refresh(client_id, token).await
            }
            // Tokens with no user behind them need the app's secret: a
            // public client cannot have them, at Zoom or here.
            Some("account_credentials" | "client_credentials") if self.is_public(client_id) => {
                Err(OAuthError::InvalidClient)
            }
            Some("account_credentials") => {
                let account_id = params
                    .get("account_id")
                    .filter(|a| !a.is_empty())
                    .ok_or(OAuthError::InvalidRequest("account_id is required"))?;
                let subject = Subject::Account(account_id.clone());
                self.minted(client_id, subject, "server-to-server callers")
                    .await
            }
            Some("client_credentials") => {
                self.minted(client_id, Subject::App, "app-level callers")
                    .await
            }
            _ => Err(OAuthError::UnsupportedGrantType),
        }
    }

    /// `POST /oauth/revoke`: revokes the caller's binding. The real grant is
    /// revoked at Zoom only when the app's policy says so, because that
    /// uninstalls the app for every system sharing it.
    pub async fn revoke(&self, req: Request<Incoming>) -> Result<Response<Body>, OAuthError> {
        let (client_id, params) = self.read_request(req).await?;
        let token = params
            .get("token")
            .filter(|t| !t.is_empty())
            .ok_or(OAuthError::InvalidRequest("token is required"))?;
        let (grant, binding) = match self.signer.verify(token) {
            Ok(claims) => (self.grant_with(&client_id, &claims).await?, claims.bid),
            Err(VerifyError::Tampered) => return Err(OAuthError::InvalidToken),
            // A legacy caller revoking the real token it was adopted from.
            Err(VerifyError::Foreign) => self
                .registry
                .find_adopted(&hash(token))
                .filter(|(g, _)| g.key().client_id == client_id)
                .ok_or(OAuthError::InvalidToken)?,
        };
        let mut answer = json!({ "status": "success" });
        // Revoking a token twice succeeds (RFC 7009) and changes nothing the second time.
        if binding != S2S_BINDING && grant.binding_is_live(&binding) {
            let remaining = grant.revoke_binding(&binding).await?;
            tracing::info!(grant = %grant.id(), remaining, "binding revoked");
            let policy = self
                .apps
                .load()
                .get(&client_id)
                .map(|(_, p)| *p)
                .unwrap_or_default();
            if remaining == 0 && policy == RevokePolicy::LastBinding {
                // Static callers hold the grant too, without a binding to count.
                if let Some(names) = self.static_holders.load().get(grant.key()) {
                    let why = kept_for(names);
                    tracing::info!(grant = %grant.id(), callers = ?names, "last binding revoked; {why}");
                    answer["grant_kept_at_zoom"] = why.into();
                } else {
                    let record = grant.record().await;
                    if let Err(error) = self
                        .zoom
                        .revoke(&client_id, record.access_token.expose())
                        .await
                    {
                        tracing::warn!(grant = %grant.id(), %error, "revoking the grant at Zoom failed");
                    }
                }
            }
        }
        Ok(body::json(StatusCode::OK, &answer))
    }

    async fn code_exchange(
        &self,
        client_id: &str,
        params: &Params,
    ) -> Result<Answered, OAuthError> {
        let form = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter())
            .finish();
        let code = Secret::new(params.get("code").map(String::as_str).unwrap_or_default());
        let presented = Presented::Code { code, form };
        let (grant, binding) = self.registry.adopt_presented(client_id, presented).await?;
        Ok(Answered::with_refresh(grant, binding))
    }

    async fn refresh(&self, client_id: &str, token: &str) -> Result<Answered, OAuthError> {
        match self.signer.verify(token) {
            Ok(claims) if claims.typ == Kind::Refresh => {
                let grant = self.grant_with(client_id, &claims).await?;
                if !grant.binding_is_live(&claims.bid) {
                    return Err(OAuthError::InvalidGrant);
                }
                grant.token().await?;
                Ok(Answered::with_refresh(grant, claims.bid))
            }
            Ok(_) | Err(VerifyError::Tampered) => Err(OAuthError::InvalidGrant),
            Err(VerifyError::Foreign) => self.refresh_legacy(client_id, token).await,
        }
    }

    /// A real Zoom refresh token: answered from the grant that adopted it, or
    /// forwarded to Zoom once and adopted (single-flight across replicas, under
    /// the pending grant's lock).
    async fn refresh_legacy(&self, client_id: &str, token: &str) -> Result<Answered, OAuthError> {
        let (grant, binding) = match self.registry.find_adopted(&hash(token)) {
            Some(found) => found,
            None => {
                let presented = Presented::Legacy(Secret::new(token));
                self.registry.adopt_presented(client_id, presented).await?
            }
        };
        if grant.key().client_id != client_id {
            return Err(OAuthError::InvalidGrant);
        }
        grant.token().await?;
        Ok(Answered::with_refresh(grant, binding))
    }

    /// A grant Zoom mints (Server-to-Server or the app's own): one per
    /// subject, minted single-flight, shared by every caller through one binding.
    async fn minted(
        &self,
        client_id: &str,
        subject: Subject,
        label: &str,
    ) -> Result<Answered, OAuthError> {
        let key = GrantKey::new(client_id, subject);
        let grant = self.registry.minted_grant(&key).await?;
        grant.token().await?;
        if !grant.binding_is_live(S2S_BINDING) {
            let mut binding = self.new_binding(label, None);
            binding.id = S2S_BINDING.to_owned();
            grant.add_binding(binding).await?;
        }
        Ok(Answered {
            grant,
            binding: S2S_BINDING.to_owned(),
            with_refresh: false,
        })
    }

    fn new_binding(&self, label: &str, adopted_from: Option<String>) -> Binding {
        Binding {
            id: random_id(),
            label: label.to_owned(),
            created_at_ms: self.clock.now_ms(),
            revoked: false,
            adopted_from,
        }
    }

    /// The grant a virtual token names. Asks the store when this process has not
    /// seen the grant or binding: another replica may have issued the token.
    async fn grant_with(
        &self,
        client_id: &str,
        claims: &Claims,
    ) -> Result<Arc<GrantHandle>, OAuthError> {
        match self.registry.find_binding(&claims.gid, &claims.bid).await {
            Some(grant) if grant.key().client_id == client_id => Ok(grant),
            // A revoked binding: revoking it again still succeeds.
            _ => self.grant_for(client_id, &claims.gid),
        }
    }

    fn grant_for(&self, client_id: &str, gid: &str) -> Result<Arc<GrantHandle>, OAuthError> {
        self.registry
            .get_by_id(gid)
            .filter(|g| g.key().client_id == client_id)
            .ok_or(OAuthError::InvalidGrant)
    }

    /// Zoom's token answer, with virtual tokens and our own `api_url`.
    fn answer(&self, answered: &Answered, api_url: &str) -> Result<Response<Body>, OAuthError> {
        let Answered {
            grant,
            binding,
            with_refresh,
        } = answered;
        let (binding, with_refresh) = (binding.as_str(), *with_refresh);
        let now = self.clock.now_secs();
        let gid = grant.id();
        let claims = |typ, exp| Claims {
            gid: gid.clone(),
            bid: binding.to_owned(),
            typ,
            iat: now,
            exp,
            jti: random_id(),
        };
        let access = self
            .signer
            .sign(&claims(Kind::Access, Some(now + VIRTUAL_ACCESS_TTL_SECS)));
        let refresh = with_refresh.then(|| self.signer.sign(&claims(Kind::Refresh, None)));
        let scope = grant.current().scope.clone();
        let answer = TokenAnswer {
            access_token: access.expose(),
            token_type: "bearer",
            refresh_token: refresh.as_ref().map(Secret::expose),
            expires_in: VIRTUAL_ACCESS_TTL_SECS,
            scope: &scope,
            api_url,
        };
        Ok(body::json_of(StatusCode::OK, &answer))
    }

    /// Reads the request and authenticates its app (constant-time). Returns
    /// the app's client ID and the parameters, credentials removed.
    async fn read_request(&self, req: Request<Incoming>) -> Result<(String, Params), OAuthError> {
        let (parts, body) = req.into_parts();
        let bytes: Bytes = Limited::new(body, MAX_FORM_BYTES)
            .collect()
            .await
            .map_err(|_| OAuthError::InvalidRequest("unreadable or oversized form body"))?
            .to_bytes();
        let request = TokenRequest::parse(&parts.headers, parts.uri.query(), &bytes)?;
        let client_id = self.authenticate(&request.credentials)?;
        if request.json_body {
            // What Zoom answers to a JSON body (ZOOM.md §1.1).
            return Err(OAuthError::UnsupportedGrantType);
        }
        Ok((client_id, request.params))
    }

    /// The app these credentials prove: a confidential app by its secret
    /// (constant-time), a public app by its client ID alone, as at Zoom. A
    /// public client's virtual refresh token is then its only credential, as
    /// a refresh token is at Zoom.
    fn authenticate(&self, credentials: &Credentials) -> Result<String, OAuthError> {
        let client_id = credentials.client_id();
        let apps = self.apps.load();
        let (expected, _) = apps.get(client_id).ok_or(OAuthError::InvalidClient)?;
        let proven = match (credentials, expected) {
            (Credentials::Confidential { secret, .. }, Some(expected)) => bool::from(
                expected
                    .expose()
                    .as_bytes()
                    .ct_eq(secret.expose().as_bytes()),
            ),
            (Credentials::Public { .. }, None) => true,
            // A secret for a public app, or none for a confidential one.
            _ => false,
        };
        if proven {
            Ok(client_id.to_owned())
        } else {
            Err(OAuthError::InvalidClient)
        }
    }

    fn is_public(&self, client_id: &str) -> bool {
        self.apps
            .load()
            .get(client_id)
            .is_some_and(|(secret, _)| secret.is_none())
    }
}

/// What a token request is answered from, rendered by [`OAuthEndpoint::answer`].
struct Answered {
    grant: Arc<GrantHandle>,
    binding: String,
    with_refresh: bool,
}

impl Answered {
    fn with_refresh(grant: Arc<GrantHandle>, binding: String) -> Self {
        Self {
            grant,
            binding,
            with_refresh: true,
        }
    }
}

/// Zoom's API as an intercepted caller knows it: `https://api.zoom.us` when
/// grantmux answers as that name, else the first intercepted name.
fn intercepted_api_url(config: &Config) -> String {
    let hosts = &config.intercept.hosts;
    let host = hosts
        .iter()
        .find(|h| h.as_str() == "api.zoom.us")
        .or_else(|| hosts.iter().find(|h| h.starts_with("api.")))
        .or(hosts.first())
        .map_or("api.zoom.us", String::as_str);
    format!("https://{host}")
}

/// The configured callers naming each grant, in config order.
fn app_credentials(config: &Config) -> HashMap<String, (Option<Secret>, RevokePolicy)> {
    config
        .apps
        .iter()
        .map(|a| {
            (
                a.client_id.clone(),
                (a.client_secret.clone(), a.revoke_upstream),
            )
        })
        .collect()
}

fn static_holders(callers: &[Caller]) -> HashMap<GrantKey, Vec<String>> {
    let mut holders: HashMap<GrantKey, Vec<String>> = HashMap::new();
    for c in callers {
        holders
            .entry(c.grant.clone())
            .or_default()
            .push(c.name.clone());
    }
    holders
}

/// Why a last-binding revoke left the grant at Zoom; names only, never keys.
fn kept_for(names: &[String]) -> String {
    let (noun, verb) = match names.len() {
        1 => ("caller", "uses"),
        _ => ("callers", "use"),
    };
    format!(
        "not revoked at Zoom: {} configured {noun} ({}) still {verb} this grant",
        names.len(),
        names.join(", ")
    )
}

impl From<ZoomTokenError> for OAuthError {
    fn from(error: ZoomTokenError) -> Self {
        match error {
            ZoomTokenError::Rejected { status, body, .. } => OAuthError::Zoom { status, body },
            ZoomTokenError::UnknownApp => OAuthError::InvalidClient,
            ZoomTokenError::Transient(reason) => OAuthError::ZoomUnavailable(reason),
        }
    }
}

impl From<TokenError> for OAuthError {
    fn from(error: TokenError) -> Self {
        match error {
            // The caller's next step is the one Zoom would force: authorize again.
            TokenError::Dead => OAuthError::InvalidGrant,
            TokenError::Unavailable(reason) => OAuthError::NoToken(reason),
            TokenError::Refused { status, body } => OAuthError::Zoom { status, body },
        }
    }
}

impl From<AdoptError> for OAuthError {
    fn from(error: AdoptError) -> Self {
        match error {
            AdoptError::Zoom(error) => error.into(),
            AdoptError::Store(error) => OAuthError::Store(error),
            // Zoom's own answer to a code used twice.
            AdoptError::Spent => OAuthError::InvalidGrant,
            // The tokens are kept (or the task's outcome is); a retry can succeed.
            error @ (AdoptError::IdentityUnknown | AdoptError::Task) => {
                OAuthError::NoToken(error.to_string())
            }
        }
    }
}
