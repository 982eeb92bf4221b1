//! The admin listener refuses browsers and limits forced refreshes (issue 13).

use std::time::Duration;

use grantmux::harness::{Answer, Harness};
use http::Method;

use crate::support;

/// `sim-client/user:sim-user`, as `/grants` lists it, percent-encoded.
const USER_GRANT: &str = "sim-client%2Fuser%3Asim-user";

async fn refresh(h: &Harness, headers: &[(&str, &str)], body: &str) -> Answer {
    let url = h.admin_url(&format!("/grants/{USER_GRANT}/refresh"));
    let body = body.to_owned();
    h.call(Method::POST, &url, headers, body)
        .await
        .expect("admin answers")
}

fn refreshes_at_zoom(h: &Harness) -> u64 {
    h.sim.stats().token_requests.refresh_token
}

#[tokio::test]
async fn an_admin_request_with_an_origin_is_refused_and_refreshes_nothing() {
    let h = support::start_default().await;
    support::adopt_user(&h).await;
    let before = refreshes_at_zoom(&h);
    for origin in ["https://evil.example", "null", "http://127.0.0.1:9090"] {
        let a = refresh(&h, &[("origin", origin)], "").await;
        assert_eq!(a.status, 403, "{origin}: {:?}", a.body);
        assert!(a.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("Origin")));
        // JSON or not: an Origin alone is enough.
        let json = [("origin", origin), ("content-type", "application/json")];
        assert_eq!(refresh(&h, &json, "{}").await.status, 403);
    }
    let a = h
        .call(
            Method::GET,
            &h.admin_url("/grants"),
            &[("origin", "https://evil.example")],
            "",
        )
        .await
        .expect("admin answers");
    assert_eq!(a.status, 403, "reads too");
    assert_eq!(refreshes_at_zoom(&h), before, "no refresh reached Zoom");
    h.shutdown().await;
}

#[tokio::test]
async fn an_admin_write_that_is_not_json_is_refused() {
    let h = support::start_default().await;
    support::adopt_user(&h).await;
    let before = refreshes_at_zoom(&h);
    for content_type in [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
    ] {
        let a = refresh(&h, &[("content-type", content_type)], "x=1").await;
        assert_eq!(a.status, 403, "{content_type}: {:?}", a.body);
        assert!(a.json()["error"].is_string(), "{:?}", a.body);
    }
    assert_eq!(refreshes_at_zoom(&h), before, "no refresh reached Zoom");
    // JSON is fine.
    let json = [("content-type", "application/json; charset=utf-8")];
    let a = refresh(&h, &json, "{}").await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(refreshes_at_zoom(&h), before + 1);
    // And reads with a Content-Type are not writes.
    let a = h
        .call(
            Method::GET,
            &h.admin_url("/healthz"),
            &[("content-type", "text/plain")],
            "",
        )
        .await
        .expect("admin answers");
    assert_eq!(a.status, 200);
    h.shutdown().await;
}

#[tokio::test]
async fn a_second_forced_refresh_within_the_limit_gets_429_until_the_clock_moves_on() {
    let h = support::start_default().await;
    support::adopt_user(&h).await;
    let before = refreshes_at_zoom(&h);
    // As `curl -X POST` sends it: no body, no Content-Type.
    let first = refresh(&h, &[], "").await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    assert_eq!(first.json()["refreshed"], true);

    h.clock.advance(Duration::from_millis(4_000));
    let second = refresh(&h, &[], "").await;
    assert_eq!(second.status, 429, "{:?}", second.body);
    assert_eq!(second.json()["refreshed"], false);
    let retry_after: u64 = second.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=5).contains(&retry_after), "Retry-After: {retry_after}");
    assert_eq!(refreshes_at_zoom(&h), before + 1, "Zoom saw one refresh");

    h.clock.advance(Duration::from_millis(1_001));
    let third = refresh(&h, &[], "").await;
    assert_eq!(third.status, 200, "accepted again: {:?}", third.body);
    assert_eq!(refreshes_at_zoom(&h), before + 2);
    h.shutdown().await;
}

#[tokio::test]
async fn the_refresh_limit_is_per_grant() {
    let h = support::start_default().await;
    support::adopt_user(&h).await;
    assert_eq!(refresh(&h, &[], "").await.status, 200);
    // The Server-to-Server grant has its own slot.
    assert_eq!(
        support::get(&h, "/v2/users/me", support::S2S_KEY)
            .await
            .status,
        200
    );
    let url = h.admin_url("/grants/sim-client%2Faccount%3Asim-account/refresh");
    let a = h
        .call(Method::POST, &url, &[], "")
        .await
        .expect("admin answers");
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(refresh(&h, &[], "").await.status, 429);
    h.shutdown().await;
}
