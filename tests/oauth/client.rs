//! A widely used OAuth client library, the `oauth2` crate, pointed at grantmux
//! and otherwise unchanged: the browser redirect, the code exchange (with PKCE)
//! and a refresh all work, and its tokens work on the API.

use std::io;

use bytes::Bytes;
use grantmux::harness::Harness;
use http::{header, Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge, RedirectUrl,
    TokenResponse, TokenUrl,
};

use crate::support::{self, create_and_read, gmx, CLIENT, REDIRECT, SECRET, USER};

/// The HTTP function `oauth2` calls: one request over hyper, answer read whole.
/// (The crate's own reqwest client is left out to keep the dependency tree lean.)
async fn send(
    client: Client<HttpConnector, Full<Bytes>>,
    req: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, io::Error> {
    let (parts, body) = req.into_parts();
    let req = Request::from_parts(parts, Full::new(Bytes::from(body)));
    let resp = client.request(req).await.map_err(io::Error::other)?;
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.map_err(io::Error::other)?.to_bytes();
    Ok(Response::from_parts(parts, bytes.to_vec()))
}

/// Follows one redirect the way a browser would; the `Location` it was sent to.
async fn follow(h: &Harness, url: &str) -> String {
    let a = h.call(Method::GET, url, &[], "").await.expect("answer");
    assert_eq!(a.status, 302, "{url}: {}", support::text(&a));
    a.headers[header::LOCATION]
        .to_str()
        .expect("ascii location")
        .to_owned()
}

#[tokio::test]
async fn the_oauth2_crate_completes_the_code_exchange_and_a_refresh_through_grantmux() {
    let h = support::start().await;
    let base = gmx(&h);
    let client = BasicClient::new(ClientId::new(CLIENT.into()))
        .set_client_secret(ClientSecret::new(SECRET.into()))
        .set_auth_uri(AuthUrl::new(format!("{base}/oauth/authorize")).expect("url"))
        .set_token_uri(TokenUrl::new(format!("{base}/oauth/token")).expect("url"))
        .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).expect("url"));
    let http_client = h.http.clone();
    let http = move |req| send(http_client.clone(), req);

    // The browser: grantmux's authorize URL → Zoom's → back to the app with a code.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state) = client
        .authorize_url(CsrfToken::new_random)
        .set_pkce_challenge(challenge)
        .url();
    let at_zoom = follow(&h, url.as_str()).await;
    assert!(at_zoom.starts_with(&h.sim.base_url()), "{at_zoom}");
    let back = oauth2::url::Url::parse(&follow(&h, &at_zoom).await).expect("redirect URL");
    let param = |name: &str| {
        back.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .expect(name)
    };
    assert_eq!(param("state"), *state.secret());

    let token = client
        .exchange_code(AuthorizationCode::new(param("code")))
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("code exchange");
    let access = token.access_token().secret().clone();
    let me = support::me(&h, &base, &access).await;
    assert_eq!(me.json()["id"], USER);

    let refreshed = client
        .exchange_refresh_token(token.refresh_token().expect("a refresh token"))
        .request_async(&http)
        .await
        .expect("refresh");
    assert!(refreshed.expires_in().is_some());
    assert!(
        create_and_read(&h, &base, refreshed.access_token().secret())
            .await
            .is_ok()
    );
    h.shutdown().await;
}
