//! Where new tokens come from: the calls to Zoom that change a grant, behind a
//! trait so that the refresh core can be tested against a fake Zoom.

use std::future::Future;
use std::pin::Pin;

use super::identity::Identity;
use super::model::Issued;
use crate::oauth::{TokenResponse, ZoomTokenClient, ZoomTokenError};
use crate::secret::Secret;

pub type SourceFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a mint asks Zoom for: a token with no user behind it and no refresh
/// token, minted afresh whenever it runs out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mint<'a> {
    /// `grant_type=account_credentials`: a Server-to-Server token.
    Account(&'a str),
    /// `grant_type=client_credentials`: the app's own token.
    App,
}

/// The token calls the refresher and adoption make. Each one that succeeds has
/// changed the grant at Zoom: its answer must be taken in, whoever still waits.
pub trait TokenSource: Send + Sync + std::fmt::Debug + 'static {
    /// `grant_type=refresh_token`: Zoom rotates the refresh token.
    fn refresh<'a>(
        &'a self,
        client_id: &'a str,
        refresh_token: &'a Secret,
    ) -> SourceFuture<'a, Result<Issued, ZoomTokenError>>;

    /// `account_credentials` or `client_credentials`.
    fn mint<'a>(
        &'a self,
        client_id: &'a str,
        what: Mint<'a>,
    ) -> SourceFuture<'a, Result<Issued, ZoomTokenError>>;

    /// A caller's own form (an authorization-code exchange), forwarded as is.
    fn exchange<'a>(
        &'a self,
        client_id: &'a str,
        form: String,
    ) -> SourceFuture<'a, Result<Issued, ZoomTokenError>>;

    /// The Zoom user (and account) an access token belongs to; `None` if Zoom would not say.
    fn whoami<'a>(&'a self, access_token: &'a Secret) -> SourceFuture<'a, Option<Identity>>;
}

// === impl TokenSource for ZoomTokenClient ===

impl TokenSource for ZoomTokenClient {
    fn refresh<'a>(
        &'a self,
        client_id: &'a str,
        refresh_token: &'a Secret,
    ) -> SourceFuture<'a, Result<Issued, ZoomTokenError>> {
        Box::pin(async move {
            ZoomTokenClient::refresh(self, client_id, refresh_token)
                .await
                .map(issued)
        })
    }

    fn mint<'a>(
        &'a self,
        client_id: &'a str,
        what: Mint<'a>,
    ) -> SourceFuture<'a, Result<Issued, ZoomTokenError>> {
        Box::pin(async move {
            ZoomTokenClient::mint(self, client_id, what)
                .await
                .map(issued)
        })
    }

    fn exchange<'a>(
        &'a self,
        client_id: &'a str,
        form: String,
    ) -> SourceFuture<'a, Result<Issued, ZoomTokenError>> {
        Box::pin(async move { self.post_form(client_id, form).await.map(issued) })
    }

    fn whoami<'a>(&'a self, access_token: &'a Secret) -> SourceFuture<'a, Option<Identity>> {
        Box::pin(ZoomTokenClient::whoami(self, access_token))
    }
}

impl From<TokenResponse> for Issued {
    fn from(answer: TokenResponse) -> Self {
        issued(answer)
    }
}

/// Zoom's wire answer in the grant's terms.
fn issued(answer: TokenResponse) -> Issued {
    Issued {
        access_token: answer.access_token,
        refresh_token: answer.refresh_token,
        expires_in_secs: answer.expires_in,
        scope: answer.scope,
        api_url: answer.api_url,
    }
}
