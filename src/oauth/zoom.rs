//! The Zoom token client: refresh a user grant, mint a Server-to-Server token,
//! exchange an authorization code.
//!
//! Errors are classified by what the refresher must do next: `invalid_grant`
//! kills a grant, anything transient is retried with backoff, anything else is
//! a rejection reported as is. No error carries a token or Zoom's `reason`
//! text, which can quote an authorization code.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use base64::Engine as _;
use bytes::Bytes;
use http::{header, Method, Request, StatusCode, Uri};
use http_body_util::BodyExt;
use serde::Deserialize;

use crate::body;
use crate::config::Config;
use crate::grants::{Identity, Mint};
use crate::secret::Secret;
use crate::upstream::{describe_error, UpstreamClient};

/// Zoom's token answer. `Debug` is safe: tokens are [`Secret`]s.
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
pub struct TokenResponse {
    pub access_token: Secret,
    #[serde(default)]
    pub token_type: Option<String>,
    #[serde(default)]
    pub refresh_token: Option<Secret>,
    pub expires_in: u64,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub api_url: Option<String>,
}

#[derive(Clone, Debug, thiserror::Error)]
pub enum ZoomTokenError {
    /// Zoom answered 4xx with an OAuth error: `error` is its code, e.g. `invalid_grant`.
    /// `body` is Zoom's answer, relayed to a caller whose own request it was;
    /// it is never displayed or logged (its `reason` can quote a code).
    #[error("zoom refused the token request: HTTP {status}, error {error:?}")]
    Rejected {
        status: u16,
        error: String,
        body: Bytes,
    },
    /// Timeouts, resets, 5xx, unreadable answers: worth retrying.
    #[error("zoom token endpoint unavailable: {0}")]
    Transient(String),
    #[error("no [[app]] with this client_id is configured")]
    UnknownApp,
}

/// The client, with every app's credentials.
#[derive(Clone, Debug)]
pub struct ZoomTokenClient {
    http: UpstreamClient,
    token_uri: Uri,
    revoke_uri: Uri,
    me_uri: Uri,
    /// Each app's secret; `None` for a public client. Shared by every clone
    /// and replaced whole on a config reload (a secret rotated, an app added).
    apps: Arc<ArcSwap<HashMap<String, Option<Secret>>>>,
    timeout: Duration,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: Option<String>,
}

// === impl ZoomTokenError ===

impl ZoomTokenError {
    /// Zoom no longer accepts this refresh token. Pre-2022 Zoom said `invalid_request`
    /// with status 401 for the same thing (ZOOM.md §1.5), so both count.
    pub fn is_invalid_grant(&self) -> bool {
        match self {
            ZoomTokenError::Rejected { status, error, .. } => {
                error == "invalid_grant" || (*status == 401 && error == "invalid_request")
            }
            _ => false,
        }
    }

    /// What Zoom answers to a refresh token it no longer accepts.
    pub fn invalid_grant() -> Self {
        ZoomTokenError::Rejected {
            status: 400,
            error: "invalid_grant".into(),
            body: Bytes::new(),
        }
    }

    /// A short label for metrics: bounded, no token.
    pub fn label(&self) -> &'static str {
        match self {
            ZoomTokenError::Rejected { .. } if self.is_invalid_grant() => "invalid_grant",
            ZoomTokenError::Rejected { .. } => "rejected",
            ZoomTokenError::Transient(_) => "transient",
            ZoomTokenError::UnknownApp => "unknown_app",
        }
    }
}

// === impl ZoomTokenClient ===

impl ZoomTokenClient {
    pub fn new(http: UpstreamClient, config: &Config) -> Self {
        let join = |base: &Uri, path: &str| -> Uri {
            format!("{}{path}", base.to_string().trim_end_matches('/'))
                .parse()
                .unwrap_or_else(|_| base.clone())
        };
        Self {
            http,
            token_uri: join(&config.zoom.oauth_url, "/oauth/token"),
            revoke_uri: join(&config.zoom.oauth_url, "/oauth/revoke"),
            me_uri: join(&config.zoom.api_url, "/v2/users/me"),
            apps: Arc::new(ArcSwap::from_pointee(app_secrets(config))),
            timeout: config.zoom.response_timeout,
        }
    }

    /// Takes the apps of a reloaded config: later calls use their secrets.
    pub fn reload_apps(&self, config: &Config) {
        self.apps.store(Arc::new(app_secrets(config)));
    }

    pub async fn refresh(
        &self,
        client_id: &str,
        refresh_token: &Secret,
    ) -> Result<TokenResponse, ZoomTokenError> {
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "refresh_token")
            .append_pair("refresh_token", refresh_token.expose())
            .finish();
        self.post(client_id, form).await
    }

    pub async fn mint(
        &self,
        client_id: &str,
        what: Mint<'_>,
    ) -> Result<TokenResponse, ZoomTokenError> {
        // The serializer is not `Send`: it must be gone before the await.
        let form = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            match what {
                Mint::Account(account_id) => form
                    .append_pair("grant_type", "account_credentials")
                    .append_pair("account_id", account_id),
                Mint::App => form.append_pair("grant_type", "client_credentials"),
            };
            form.finish()
        };
        self.post(client_id, form).await
    }

    /// Forwards a caller's form (e.g. an authorization-code exchange) as is.
    pub async fn post_form(
        &self,
        client_id: &str,
        form: String,
    ) -> Result<TokenResponse, ZoomTokenError> {
        self.post(client_id, form).await
    }

    /// Revokes a real token at Zoom, which uninstalls the app for the user.
    pub async fn revoke(&self, client_id: &str, token: &str) -> Result<(), ZoomTokenError> {
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("token", token)
            .finish();
        let (status, _) = self.exchange(client_id, &self.revoke_uri, form).await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(ZoomTokenError::Transient(format!(
                "revoke answered HTTP {}",
                status.as_u16()
            )))
        }
    }

    /// Who an access token belongs to (`GET /v2/users/me`): the user's `id`
    /// and `account_id`, or `None` when Zoom refuses (an app without the scope)
    /// or cannot be reached. The token goes only into a sensitive header.
    pub async fn whoami(&self, access_token: &Secret) -> Option<Identity> {
        /// The two fields of Zoom's user object grantmux keeps; the rest is ignored.
        #[derive(Deserialize)]
        struct Me {
            id: String,
            #[serde(default)]
            account_id: Option<String>,
        }
        let mut auth =
            http::HeaderValue::try_from(format!("Bearer {}", access_token.expose())).ok()?;
        auth.set_sensitive(true);
        let req = Request::builder()
            .uri(self.me_uri.clone())
            .header(header::AUTHORIZATION, auth)
            .header(header::ACCEPT, "application/json")
            .body(body::empty())
            .ok()?;
        let call = async {
            let resp = self.http.request(req).await.ok()?;
            if !resp.status().is_success() {
                return None;
            }
            let bytes = resp.into_body().collect().await.ok()?.to_bytes();
            let me = serde_json::from_slice::<Me>(&bytes).ok()?;
            Some(Identity {
                user_id: me.id,
                // An empty id names no account: budget per user instead.
                account_id: me.account_id.filter(|id| !id.is_empty()),
            })
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .ok()
            .flatten()
    }

    async fn post(&self, client_id: &str, form: String) -> Result<TokenResponse, ZoomTokenError> {
        let (status, bytes) = self.exchange(client_id, &self.token_uri, form).await?;
        classify(status, &bytes)
    }

    /// POSTs a form with the app's Basic credentials, or a public client's
    /// `client_id` in the form (no secret, no `Authorization`, as Zoom asks of
    /// public clients); returns Zoom's status and body.
    async fn exchange(
        &self,
        client_id: &str,
        uri: &Uri,
        mut form: String,
    ) -> Result<(StatusCode, Bytes), ZoomTokenError> {
        let secret = self
            .apps
            .load()
            .get(client_id)
            .cloned()
            .ok_or(ZoomTokenError::UnknownApp)?;
        let mut req = Request::builder().method(Method::POST).uri(uri.clone());
        match &secret {
            Some(secret) => {
                let basic = base64::engine::general_purpose::STANDARD
                    .encode(format!("{client_id}:{}", secret.expose()));
                let mut auth = http::HeaderValue::try_from(format!("Basic {basic}"))
                    .map_err(|_| ZoomTokenError::UnknownApp)?;
                auth.set_sensitive(true);
                req = req.header(header::AUTHORIZATION, auth);
            }
            None => {
                let mut pairs = form_urlencoded::Serializer::for_suffix(form, 0);
                pairs.append_pair("client_id", client_id);
                form = pairs.finish();
            }
        }
        let req = req
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .body(body::full(form))
            .map_err(|e| ZoomTokenError::Transient(e.to_string()))?;
        let exchange = async {
            let resp = self
                .http
                .request(req)
                .await
                .map_err(|e| ZoomTokenError::Transient(describe_error(&e)))?;
            let status = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| ZoomTokenError::Transient(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok::<_, ZoomTokenError>((status, bytes))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ZoomTokenError::Transient("timed out".into()))?
    }
}

fn classify(status: StatusCode, bytes: &Bytes) -> Result<TokenResponse, ZoomTokenError> {
    if status.is_success() {
        return serde_json::from_slice(bytes)
            .map_err(|_| ZoomTokenError::Transient("answer is not a token response".into()));
    }
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        return Err(ZoomTokenError::Transient(format!(
            "HTTP {}",
            status.as_u16()
        )));
    }
    let error = serde_json::from_slice::<ErrorBody>(bytes)
        .ok()
        .and_then(|b| b.error)
        .unwrap_or_else(|| "unknown".into());
    Err(ZoomTokenError::Rejected {
        status: status.as_u16(),
        error,
        body: bytes.clone(),
    })
}

fn app_secrets(config: &Config) -> HashMap<String, Option<Secret>> {
    config
        .apps
        .iter()
        .map(|a| (a.client_id.clone(), a.client_secret.clone()))
        .collect()
}
