//! HTTP helpers: a caller's code exchange through grantmux, API calls, admin calls.

use std::net::SocketAddr;

use grantmux::sim::SimHandle;
use http::{Method, StatusCode};
use serde_json::Value;

use crate::common::client::{basic, send};
pub(crate) use crate::common::client::{http, Http};
use crate::process::{CLIENT, SECRET};

const REDIRECT: &str = "http://localhost/cb";

/// Sends a request; `None` when the connection failed (the process is gone).
pub(crate) async fn call(
    http: &Http,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<(StatusCode, Value)> {
    let (status, bytes) = send(http, method, url, headers, body.to_owned())
        .await
        .ok()?;
    Some((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
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
            ("authorization", &basic(CLIENT, SECRET)),
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
            ("authorization", &basic(CLIENT, SECRET)),
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
