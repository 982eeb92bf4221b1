//! HTTP helpers: a caller's code exchange through grantmux, API calls, admin
//! calls, the simulator's webhooks; and the file store read while grantmux is down.

use std::net::SocketAddr;

use grantmux::sim::SimHandle;
use http::{Method, StatusCode};
use serde_json::{json, Value};

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

/// The Prometheus text from the admin listener; empty if it does not answer.
pub(crate) async fn raw_metrics(admin: SocketAddr) -> String {
    // A client of its own: it keeps no connection to a process killed earlier.
    send(
        &http(),
        Method::GET,
        &format!("http://{admin}/metrics"),
        &[],
        "",
    )
    .await
    .map(|(_, body)| String::from_utf8_lossy(&body).into_owned())
    .unwrap_or_default()
}

pub(crate) async fn admin_json(http: &Http, admin: SocketAddr, path: &str) -> Value {
    call(http, Method::GET, &format!("http://{admin}{path}"), &[], "")
        .await
        .expect("admin answers")
        .1
}

/// Tells the simulator where "Zoom" sends this app's events, signed with `secret`.
pub(crate) async fn point_zoom_at(http: &Http, sim: &SimHandle, proxy: SocketAddr, secret: &str) {
    let target = json!({ "url": format!("http://{proxy}/webhooks/zoom"), "secret_token": secret });
    let url = format!("{}/_sim/webhooks", sim.base_url());
    let (status, body) = call(
        http,
        Method::POST,
        &url,
        &[("content-type", "application/json")],
        &target.to_string(),
    )
    .await
    .expect("the simulator answers");
    assert_eq!(status, 200, "{body}");
}

/// `user` uninstalls the app at the simulator: Zoom revokes the grant and
/// sends `app_deauthorized` where [`point_zoom_at`] said. Returns the status
/// the delivery was answered with, `Null` when it got no answer.
pub(crate) async fn uninstall_at_zoom(http: &Http, sim: &SimHandle, user: &str) -> Value {
    let url = format!("{}/_sim/uninstall", sim.base_url());
    let uninstall = json!({ "client_id": CLIENT, "user_id": user }).to_string();
    let (status, body) = call(
        http,
        Method::POST,
        &url,
        &[("content-type", "application/json")],
        &uninstall,
    )
    .await
    .expect("the simulator answers");
    assert_eq!(status, 200, "{body}");
    body["delivered_status"].clone()
}

/// The sealed record the file store holds for `id`, read with redb itself
/// (grantmux stopped: redb locks its file).
pub(crate) fn sealed_record(state: &std::path::Path, id: &str) -> Vec<u8> {
    let db = redb::Database::open(state.join("grants.redb")).expect("redb open");
    let txn = db.begin_read().expect("read txn");
    let table = txn
        .open_table(redb::TableDefinition::<&str, &[u8]>::new("grants"))
        .expect("grants table");
    let sealed = table.get(id).expect("get").expect("present");
    sealed.value().to_vec()
}
