//! The REST routes and the echo route over real sockets.

use grantmux::sim::SimConfig;
use http::Method;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::support::*;

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn users_me_and_by_id() {
    let f = start_default().await;
    let token = field(&f.login("alice").await, "access_token");
    let me = f.api_get("/v2/users/me", &token).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.header("content-type"), "application/json;charset=UTF-8");
    assert!(me
        .header("x-zm-trackingid")
        .starts_with("v=2.0;clid=sim;rid=WEB_"));
    let me = me.json();
    assert_eq!(
        (me["id"].clone(), me["account_id"].clone()),
        (json!("alice"), json!("sim-account"))
    );
    assert_eq!(
        f.api_get("/v2/users/sim-user", &token).await.json()["id"],
        "sim-user"
    );
    let missing = json!({"code": 1001, "message": "User does not exist: ghost."});
    assert_eq!(
        f.api_get("/v2/users/ghost", &token).await.pair(),
        (404, missing)
    );
}

#[tokio::test]
async fn meetings_create_list_get_patch_delete() {
    let f = start_default().await;
    let token = field(&f.login("sim-user").await, "access_token");
    let auth = bearer(&token);
    let create = f.request(
        Method::POST,
        "/v2/users/me/meetings",
        Some(&auth),
        r#"{"topic":"Standup","type":2,"duration":15}"#,
    );
    let created = f.send(create).await;
    assert_eq!(created.status, 201);
    let m = created.json();
    let id = m["id"].as_u64().expect("numeric id");
    for key in [
        "uuid",
        "host_id",
        "topic",
        "type",
        "start_time",
        "duration",
        "timezone",
        "join_url",
        "created_at",
    ] {
        assert!(m.get(key).is_some(), "missing {key} in {m}");
    }
    assert_eq!(
        (m["topic"].clone(), m["host_id"].clone()),
        (json!("Standup"), json!("sim-user"))
    );

    let list = f.api_get("/v2/users/me/meetings", &token).await.json();
    assert_eq!(
        (list["page_size"].clone(), list["total_records"].clone()),
        (json!(30), json!(1))
    );
    assert_eq!(list["meetings"][0]["id"], json!(id));

    let path = format!("/v2/meetings/{id}");
    let patch = f.request(
        Method::PATCH,
        &path,
        Some(&auth),
        r#"{"topic":"Retro","id":1}"#,
    );
    let patched = f.send(patch).await;
    assert_eq!((patched.status.as_u16(), patched.body.len()), (204, 0));
    let got = f.api_get(&path, &token).await.json();
    assert_eq!(
        (got["topic"].clone(), got["id"].clone()),
        (json!("Retro"), json!(id))
    );

    assert_eq!(
        f.send(f.request(Method::DELETE, &path, Some(&auth), ""))
            .await
            .status,
        204
    );
    let gone = json!({"code": 3001, "message": format!("Meeting does not exist: {id}.")});
    assert_eq!(f.api_get(&path, &token).await.pair(), (404, gone.clone()));
    assert_eq!(
        f.send(f.request(Method::DELETE, &path, Some(&auth), ""))
            .await
            .pair(),
        (404, gone)
    );
}

#[tokio::test]
async fn missing_and_query_string_tokens_are_refused() {
    let f = start_default().await;
    let token = field(&f.login("sim-user").await, "access_token");
    let none = f
        .send(f.request(Method::GET, "/v2/users/me", None, ""))
        .await;
    assert_eq!(none.pair(), invalid_token());
    let in_query = f.request(
        Method::GET,
        &format!("/v2/users/me?access_token={token}"),
        None,
        "",
    );
    let expected = json!({"code": 124, "message": "Invalid access token, this access token is not supported as query parameter string."});
    assert_eq!(f.send(in_query).await.pair(), (401, expected));
    assert_eq!(
        f.api_get("/v2/users/me", "not-a-token").await.pair(),
        invalid_token()
    );
    assert_eq!(f.sim.stats().api_401, 3);
}

#[tokio::test]
async fn unknown_route_is_404() {
    let f = start_default().await;
    let token = field(&f.login("sim-user").await, "access_token");
    let expected = (404, json!({"code": 404, "message": "Not found"}));
    assert_eq!(f.api_get("/v2/nothing/here", &token).await.pair(), expected);
    assert_eq!(
        f.send(f.request(Method::GET, "/elsewhere", None, ""))
            .await
            .pair(),
        expected
    );
}

#[tokio::test]
async fn token_checks_can_be_switched_off() {
    let f = start(SimConfig {
        check_tokens: false,
        ..SimConfig::default()
    })
    .await;
    let me = f
        .send(f.request(Method::GET, "/v2/users/me", None, ""))
        .await;
    assert_eq!(
        (me.status.as_u16(), me.json()["id"].clone()),
        (200, json!("sim-user"))
    );
}

#[tokio::test]
async fn echo_records_method_path_query_headers_and_body_hash() {
    let f = start_default().await;
    let token = field(&f.login("sim-user").await, "access_token");
    let body = "hello, zoom";
    let mut req = f.request(
        Method::PUT,
        "/v2/_echo/a/b?x=1&y=%20",
        Some(&bearer(&token)),
        body,
    );
    req.headers_mut()
        .insert("x-first", "1".parse().expect("header"));
    req.headers_mut()
        .insert("x-echo-set-x-from-upstream", "yes".parse().expect("header"));
    let resp = f.send(req).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-from-upstream"), "yes");
    let echo = resp.json();
    assert_eq!(echo["method"], "PUT");
    assert_eq!(echo["path"], "/v2/_echo/a/b");
    assert_eq!(echo["query"], "x=1&y=%20");
    assert_eq!(echo["body_len"], body.len());
    assert_eq!(echo["body_sha256"], hex(&Sha256::digest(body)));
    let headers: Vec<(String, String)> =
        serde_json::from_value(echo["headers"].clone()).expect("pairs");
    let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
    let pos = |n: &str| {
        names
            .iter()
            .position(|h| *h == n)
            .unwrap_or_else(|| panic!("no {n} in {names:?}"))
    };
    assert!(
        pos("authorization") < pos("x-first") && pos("x-first") < pos("x-echo-set-x-from-upstream")
    );
    assert!(headers.contains(&("authorization".into(), bearer(&token))));
    assert!(names.contains(&"host"));

    let recorded = f.sim.last_api_request().expect("recorded");
    assert_eq!(serde_json::to_value(&recorded).expect("json"), echo);
    assert_eq!(recorded.query.as_deref(), Some("x=1&y=%20"));
}

#[tokio::test]
async fn echo_streams_a_50_mib_body() {
    let f = start_default().await;
    let token = field(&f.login("sim-user").await, "access_token");
    let body: Vec<u8> = (0..50 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let expected = hex(&Sha256::digest(&body));
    let req = http::Request::post(f.url("/v2/_echo/upload"))
        .header("authorization", bearer(&token))
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .expect("request");
    let echo = f.send(req).await.json();
    assert_eq!(echo["body_len"], 50 * 1024 * 1024);
    assert_eq!(echo["body_sha256"], expected);
    assert_eq!(echo["query"], serde_json::Value::Null);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn shutdown_stops_accepting() {
    let f = start_default().await;
    let addr = f.sim.addr();
    assert_eq!(
        f.send(f.request(Method::GET, "/_sim/stats", None, ""))
            .await
            .status,
        200
    );
    f.sim.clone().shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
