//! What reaches Zoom, and what comes back: methods, paths, bodies, header rules.

use grantmux::sim::{RateLimits, SimConfig};
use http::Method;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::support::{self, get, S2S_KEY, USER_KEY};

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn header<'a>(echo: &'a Value, name: &str) -> Vec<&'a str> {
    echo["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .filter(|h| h[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
        .filter_map(|h| h[1].as_str())
        .collect()
}

#[tokio::test]
async fn methods_paths_queries_and_bodies_arrive_byte_for_byte() {
    let h = support::start_default().await;
    methods_paths_queries_and_bodies(&h).await;
    h.shutdown().await;
}

/// Shared with the TLS suite.
pub(crate) async fn methods_paths_queries_and_bodies(h: &grantmux::harness::Harness) {
    let cases: [(Method, &str, &[u8]); 5] = [
        (
            Method::GET,
            "/v2/_echo/users?page_size=30&next_page_token=a%2Fb",
            b"",
        ),
        (
            Method::POST,
            "/v2/_echo/users/me/meetings",
            br#"{"topic":"t","type":2}"#,
        ),
        (
            Method::PATCH,
            "/v2/_echo/meetings/123?occurrence_id=9",
            b"\x00\x01binary\xff",
        ),
        (Method::PUT, "/v2/_echo/x/y%20z", b"put body"),
        (Method::DELETE, "/v2/_echo/meetings/123", b""),
    ];
    for (method, path, body) in cases {
        let a = h
            .call(
                method.clone(),
                &h.proxy_url(path),
                &[("authorization", &format!("Bearer {S2S_KEY}"))],
                body.to_vec(),
            )
            .await
            .expect("answer");
        assert_eq!(a.status, 200, "{method} {path}: {:?}", a.body);
        let echo = a.json();
        let (p, q) = path
            .split_once('?')
            .map_or((path, None), |(p, q)| (p, Some(q)));
        assert_eq!(echo["method"], method.as_str());
        assert_eq!(echo["path"], p);
        assert_eq!(echo["query"].as_str(), q);
        assert_eq!(echo["body_len"], body.len());
        assert_eq!(echo["body_sha256"], hex_sha256(body));
    }
}

#[tokio::test]
async fn a_50_mib_body_streams_through_intact() {
    let h = support::start_default().await;
    let body: Vec<u8> = (0..50 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let a = h
        .call(
            Method::POST,
            &h.proxy_url("/v2/_echo/upload"),
            &[("authorization", &format!("Bearer {S2S_KEY}"))],
            body.clone(),
        )
        .await
        .expect("answer");
    assert_eq!(a.status, 200);
    let echo = a.json();
    assert_eq!(echo["body_len"], body.len());
    assert_eq!(echo["body_sha256"], hex_sha256(&body));
    h.shutdown().await;
}

#[tokio::test]
async fn headers_are_rewritten_for_zoom_and_zoom_headers_come_back() {
    let limits = RateLimits {
        light_per_second: 1000,
        medium_per_second: 1000,
        heavy_per_second: 1000,
        ..RateLimits::default()
    };
    let sim = SimConfig {
        rate_limits: Some(limits),
        ..SimConfig::default()
    };
    let h = support::start(sim, |_| {}).await;
    header_rules(&h).await;
    h.shutdown().await;
}

/// Shared with the TLS suite (whose simulator must have rate limits on).
pub(crate) async fn header_rules(h: &grantmux::harness::Harness) {
    let a = h
        .call(
            Method::GET,
            &h.proxy_url("/v2/_echo/headers"),
            &[
                ("authorization", &format!("Bearer {S2S_KEY}")),
                ("connection", "keep-alive, x-hop"),
                ("x-hop", "must go"),
                ("keep-alive", "timeout=5"),
                ("proxy-authorization", "Basic abc"),
                ("te", "trailers"),
                ("x-custom", "kept"),
                ("x-echo-set-x-from-zoom", "back"),
            ],
            "",
        )
        .await
        .expect("answer");
    assert_eq!(a.status, 200, "{:?}", a.body);
    let echo = a.json();
    let real = h
        .gmx
        .registry
        .get(&support::s2s_key())
        .expect("grant")
        .current();
    let real = real
        .bearer
        .as_ref()
        .expect("token")
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(header(&echo, "authorization"), [real.as_str()]);
    assert_ne!(real, format!("Bearer {S2S_KEY}"));
    let host = h
        .config
        .zoom
        .api_url
        .authority()
        .expect("authority")
        .to_string();
    assert_eq!(header(&echo, "host"), [host.as_str()]);
    assert_eq!(header(&echo, "x-custom"), ["kept"]);
    for gone in [
        "connection",
        "x-hop",
        "keep-alive",
        "proxy-authorization",
        "te",
    ] {
        assert!(header(&echo, gone).is_empty(), "{gone} was forwarded");
    }
    let names: Vec<String> = echo["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .map(|h| h[0].as_str().unwrap_or("").to_ascii_lowercase())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("x-forwarded") || n == "forwarded" || n == "via"),
        "{names:?}"
    );
    // Zoom's own headers come back untouched.
    assert_eq!(a.headers["x-from-zoom"], "back");
    for name in [
        "x-ratelimit-category",
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-zm-trackingid",
    ] {
        assert!(
            a.headers.contains_key(name),
            "{name} missing: {:?}",
            a.headers
        );
    }
}

#[tokio::test]
async fn zoom_errors_pass_through_untouched() {
    let h = support::start_default().await;
    let a = get(&h, "/v2/meetings/424242", S2S_KEY).await;
    assert_eq!(a.status, 404);
    assert_eq!(a.json()["code"], 3001);
    h.shutdown().await;
}

#[tokio::test]
async fn unknown_bearer_gets_zooms_invalid_token_answer() {
    let h = support::start_default().await;
    for auth in [Some("Bearer not-a-known-key"), Some("Basic abc"), None] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        let a = h
            .call(Method::GET, &h.proxy_url("/v2/users/me"), &headers, "")
            .await
            .expect("answer");
        assert_eq!(a.status, 401);
        assert_eq!(
            a.json(),
            serde_json::json!({"code":124,"message":"Invalid access token."})
        );
    }
    assert_eq!(h.sim.stats().api_requests, 0, "nothing reached Zoom");
    h.shutdown().await;
}

#[tokio::test]
async fn passthrough_forwards_unknown_tokens_untouched() {
    let h = support::start(SimConfig::default(), |c| c.proxy.passthrough = true).await;
    let a = get(&h, "/v2/_echo/pass", "legacy-real-token").await;
    // The simulator refuses the token, but it saw it as sent.
    assert_eq!(a.status, 401);
    let recorded = h.sim.last_api_request().expect("forwarded");
    let auth: Vec<_> = recorded
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(auth, ["Bearer legacy-real-token"]);
    h.shutdown().await;
}

#[tokio::test]
async fn user_grant_caller_reaches_zoom_as_the_user() {
    let h = support::start_default().await;
    support::adopt_user(&h).await;
    let a = get(&h, "/v2/users/me", USER_KEY).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.json()["id"], support::USER);
    h.shutdown().await;
}

/// What an ingress in front of grantmux (or a caller) adds: internal addresses and hosts.
const FORWARDING: [(&str, &str); 6] = [
    ("x-forwarded-for", "10.1.2.3, 192.168.7.9"),
    ("x-forwarded-host", "grantmux.internal.example"),
    ("x-forwarded-proto", "https"),
    ("forwarded", "for=10.1.2.3;host=grantmux.internal.example"),
    ("x-real-ip", "10.1.2.3"),
    ("via", "1.1 ingress-7f9c"),
];

/// Sends an API call carrying every forwarding header; returns the names of the
/// headers Zoom (the simulator) received, lowercased.
async fn forwarding_headers_seen_by_zoom(h: &grantmux::harness::Harness) -> Vec<String> {
    let auth = format!("Bearer {S2S_KEY}");
    let mut headers = vec![("authorization", auth.as_str()), ("x-custom", "kept")];
    headers.extend(FORWARDING);
    let a = h
        .call(Method::GET, &h.proxy_url("/v2/users/me"), &headers, "")
        .await
        .expect("answer");
    assert_eq!(a.status, 200, "{:?}", a.body);
    let recorded = h.sim.last_api_request().expect("forwarded");
    let names: Vec<String> = recorded
        .headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .collect();
    assert!(names.iter().any(|n| n == "x-custom"), "{names:?}");
    names
}

#[tokio::test]
async fn caller_sent_forwarding_headers_never_reach_zoom() {
    let h = support::start_default().await;
    let names = forwarding_headers_seen_by_zoom(&h).await;
    for (gone, _) in FORWARDING {
        assert!(
            !names.iter().any(|n| n == gone),
            "{gone} reached Zoom: {names:?}"
        );
    }
    h.shutdown().await;
}

#[tokio::test]
async fn forwarding_headers_named_in_the_keep_list_reach_zoom() {
    let h = support::start(SimConfig::default(), |c| {
        c.proxy.keep_forwarding_headers = vec![http::HeaderName::from_static("x-forwarded-proto")];
    })
    .await;
    forwarding_headers_seen_by_zoom(&h).await;
    let recorded = h.sim.last_api_request().expect("forwarded");
    let seen = |name: &str| -> Vec<&str> {
        recorded
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(seen("x-forwarded-proto"), ["https"], "the kept one arrives");
    for (gone, _) in FORWARDING.iter().filter(|(n, _)| *n != "x-forwarded-proto") {
        assert!(seen(gone).is_empty(), "{gone} reached Zoom");
    }
    h.shutdown().await;
}
