//! HTTP helpers: a caller's code exchange through grantmux, API calls, admin calls.

use std::net::SocketAddr;

use bytes::Bytes;
use grantmux::sim::SimHandle;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::process::{CLIENT, SECRET};

const REDIRECT: &str = "http://localhost/cb";

pub(crate) type Http = Client<HttpConnector, Full<Bytes>>;

pub(crate) fn http() -> Http {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends a request; `None` when the connection failed (the process is gone).
pub(crate) async fn call(
    http: &Http,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<(StatusCode, Value)> {
    let mut req = Request::builder().method(method).uri(url);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let resp = http
        .request(req.body(Full::new(Bytes::from(body.to_owned()))).ok()?)
        .await
        .ok()?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await.ok()?.to_bytes();
    Some((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

fn basic() -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT}:{SECRET}"))
    )
}

/// A caller's authorization: a code from the simulator, exchanged at grantmux.
/// Returns (virtual access token, virtual refresh token).
pub(crate) async fn authorize(
    http: &Http,
    sim: &SimHandle,
    proxy: SocketAddr,
    user: &str,
) -> (String, String) {
    let code = sim.issue_code(CLIENT, user, REDIRECT);
    let form = format!(
        "grant_type=authorization_code&code={code}&redirect_uri=http%3A%2F%2Flocalhost%2Fcb"
    );
    let (status, body) = call(
        http,
        Method::POST,
        &format!("http://{proxy}/oauth/token"),
        &[
            ("authorization", &basic()),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        &form,
    )
    .await
    .expect("grantmux answers");
    assert_eq!(status, 200, "{body}");
    (
        body["access_token"].as_str().expect("access").to_owned(),
        body["refresh_token"].as_str().expect("refresh").to_owned(),
    )
}

/// `GET /v2/users/me` through grantmux with a virtual access token.
pub(crate) async fn me(
    http: &Http,
    proxy: SocketAddr,
    access: &str,
) -> Option<(StatusCode, Value)> {
    call(
        http,
        Method::GET,
        &format!("http://{proxy}/v2/users/me"),
        &[("authorization", &format!("Bearer {access}"))],
        "",
    )
    .await
}

/// A virtual refresh through grantmux.
pub(crate) async fn refresh(
    http: &Http,
    proxy: SocketAddr,
    refresh: &str,
) -> Option<(StatusCode, Value)> {
    call(
        http,
        Method::POST,
        &format!("http://{proxy}/oauth/token"),
        &[
            ("authorization", &basic()),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        &format!("grant_type=refresh_token&refresh_token={refresh}"),
    )
    .await
}

/// `POST /grants/{id}/refresh` on the admin listener.
pub(crate) async fn force_refresh(
    http: &Http,
    admin: SocketAddr,
    user: &str,
) -> Option<(StatusCode, Value)> {
    let id = format!("{CLIENT}%2Fuser%3A{user}");
    call(
        http,
        Method::POST,
        &format!("http://{admin}/grants/{id}/refresh"),
        &[],
        "",
    )
    .await
}

pub(crate) async fn admin_json(http: &Http, admin: SocketAddr, path: &str) -> Value {
    call(http, Method::GET, &format!("http://{admin}{path}"), &[], "")
        .await
        .expect("admin answers")
        .1
}
