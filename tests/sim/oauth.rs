//! The authorize and token endpoints over real sockets: codes, client auth, parameters,
//! PKCE, answer shape. Exact status and body for each ZOOM.md §8 row.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use grantmux::sim::SimConfig;
use http::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::*;

#[tokio::test]
async fn user_token_answer_has_zooms_shape() {
    let f = start_default().await;
    let t = f.login("sim-user").await;
    let keys: Vec<&str> = t
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = vec![
        "access_token",
        "token_type",
        "refresh_token",
        "expires_in",
        "scope",
        "api_url",
    ];
    expected.sort_unstable();
    assert_eq!(keys, expected);
    assert_eq!(t["token_type"], "bearer");
    assert_eq!(t["expires_in"], 3599);
    assert_eq!(t["api_url"], json!(f.base));
    assert!(t["scope"].as_str().is_some_and(|s| !s.is_empty()));
}

#[tokio::test]
async fn tokens_are_hs512_jwts_with_zoom_claims() {
    let f = start_default().await;
    let t = f.login("sim-user").await;
    let access = field(&t, "access_token");
    let parts: Vec<&str> = access.split('.').collect();
    assert_eq!(parts.len(), 3);
    let decode = |s: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).expect("b64")).expect("json")
    };
    let header = decode(parts[0]);
    assert_eq!(header["alg"], "HS512");
    assert_eq!(header["v"], "2.0");
    assert!(header["kid"].is_string());
    let claims = decode(parts[1]);
    assert_eq!(claims["aud"], "https://oauth.zoom.us");
    assert_eq!(claims["iss"], "zm:cid:sim-client");
    assert_eq!(claims["uid"], "sim-user");
    assert_eq!(claims["aid"], "sim-account");
    assert_eq!(claims["ver"], 10);
    let exp = claims["exp"].as_u64().expect("exp");
    assert_eq!(exp - claims["iat"].as_u64().expect("iat"), 3599);
    let refresh = field(&t, "refresh_token");
    assert_eq!(refresh.split('.').count(), 3);
    assert_ne!(
        decode(refresh.split('.').nth(1).expect("payload"))["jti"],
        claims["jti"]
    );
}

#[tokio::test]
async fn codes_are_single_use() {
    let f = start_default().await;
    let code = f
        .authorize(&format!(
            "response_type=code&client_id={CLIENT}&redirect_uri={REDIRECT}&state=xyz"
        ))
        .await;
    assert_eq!(f.exchange(&code).await.status, 200);
    let reused =
        json!({"reason": format!("Invalid authorization code {code}"), "error": "invalid_request"});
    assert_eq!(f.exchange(&code).await.pair(), (400, reused));
}

#[tokio::test]
async fn codes_expire_after_five_minutes() {
    let f = start_default().await;
    let fresh = f.sim.issue_code(CLIENT, "sim-user", REDIRECT);
    let stale = f.sim.issue_code(CLIENT, "sim-user", REDIRECT);
    f.sim.clock().advance(Duration::from_secs(299));
    assert_eq!(f.exchange(&fresh).await.status, 200);
    f.sim.clock().advance(Duration::from_secs(1));
    let expired = json!({"reason": format!("Invalid authorization code {stale}"), "error": "invalid_request"});
    assert_eq!(f.exchange(&stale).await.pair(), (400, expired));
}

#[tokio::test]
async fn authorize_redirects_with_code_and_state() {
    let f = start_default().await;
    let path = format!("/oauth/authorize?response_type=code&client_id={CLIENT}&redirect_uri=http%3A%2F%2Fapp%2Fcb%3Fx%3D1&state=s%201&login_hint=alice");
    let resp = f.send(f.request(Method::GET, &path, None, "")).await;
    assert_eq!(resp.status, 302);
    let location = resp.header("location").to_owned();
    assert!(
        location.starts_with("http://app/cb?x=1&code="),
        "{location}"
    );
    assert!(location.ends_with("&state=s+1"), "{location}");
    let unknown = f.request(
        Method::GET,
        "/oauth/authorize?response_type=code&client_id=nope&redirect_uri=x",
        None,
        "",
    );
    let bad_client = json!({"reason": "Invalid client_id", "error": "invalid_client"});
    assert_eq!(f.send(unknown).await.pair(), (400, bad_client));
}

#[tokio::test]
async fn redirect_uri_must_match_the_authorization() {
    let f = start_default().await;
    let code = f.sim.issue_code(CLIENT, "sim-user", REDIRECT);
    let form = form(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", "http://evil/cb"),
    ]);
    let mismatch = json!({"reason": "Redirect URI mismatch.", "error": "invalid_request"});
    assert_eq!(f.token(&form).await.pair(), (400, mismatch));
}

#[tokio::test]
async fn bad_client_credentials_are_invalid_client() {
    let f = start_default().await;
    let expected = (
        400,
        json!({"reason": "Invalid client_id or client_secret", "error": "invalid_client"}),
    );
    let form = "grant_type=account_credentials&account_id=sim-account";
    assert_eq!(f.token_as(CLIENT, "wrong", form).await.pair(), expected);
    assert_eq!(f.token_as("nobody", SECRET, form).await.pair(), expected);
    let no_auth = f.request(Method::POST, "/oauth/token", None, form);
    assert_eq!(f.send(no_auth).await.pair(), expected);
}

#[tokio::test]
async fn unknown_or_missing_grant_type_is_unsupported() {
    let f = start_default().await;
    let expected = (
        400,
        json!({"reason": "unsupported grant type", "error": "unsupported_grant_type"}),
    );
    assert_eq!(f.token("grant_type=password").await.pair(), expected);
    assert_eq!(f.token("").await.pair(), expected);
}

#[tokio::test]
async fn json_body_is_refused_as_unsupported_grant_type() {
    let f = start_default().await;
    let body = r#"{"grant_type":"account_credentials","account_id":"sim-account"}"#;
    let mut req = f.request(
        Method::POST,
        "/oauth/token",
        Some(&basic(CLIENT, SECRET)),
        body,
    );
    req.headers_mut()
        .insert("content-type", "application/json".parse().expect("header"));
    let expected = (
        400,
        json!({"reason": "unsupported grant type", "error": "unsupported_grant_type"}),
    );
    assert_eq!(f.send(req).await.pair(), expected);
}

#[tokio::test]
async fn query_string_params_are_accepted_by_default() {
    let f = start_default().await;
    let path = "/oauth/token?grant_type=account_credentials&account_id=sim-account";
    let resp = f
        .send(f.request(Method::POST, path, Some(&basic(CLIENT, SECRET)), ""))
        .await;
    assert_eq!(resp.status, 200);
    assert!(resp.json()["access_token"].is_string());
}

#[tokio::test]
async fn query_string_params_are_refused_when_switched_off() {
    let f = start(SimConfig {
        allow_query_params: false,
        ..SimConfig::default()
    })
    .await;
    let path = "/oauth/token?grant_type=account_credentials&account_id=sim-account";
    let resp = f
        .send(f.request(Method::POST, path, Some(&basic(CLIENT, SECRET)), ""))
        .await;
    let expected = (
        400,
        json!({"reason": "unsupported grant type", "error": "unsupported_grant_type"}),
    );
    assert_eq!(resp.pair(), expected);
    assert_eq!(f.s2s().await.status, 200, "the form body still works");
}

#[tokio::test]
async fn pkce_s256_accepts_the_verifier_and_refuses_a_mismatch() {
    let f = start_default().await;
    let verifier = "dBjjSWa5H8Kjw0KF9k8J4i3HtpGbC4tyXdwV9LSMMOU";
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let query = format!("response_type=code&client_id={CLIENT}&redirect_uri={REDIRECT}&code_challenge={challenge}&code_challenge_method=S256");
    let exchange = |code: String, verifier: &'static str| {
        form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ])
    };
    let good = f.authorize(&query).await;
    assert_eq!(f.token(&exchange(good, verifier)).await.status, 200);
    let bad = f.authorize(&query).await;
    let mismatch = (
        400,
        json!({"reason": "Invalid code verifier", "error": "invalid_grant"}),
    );
    assert_eq!(
        f.token(&exchange(bad, "wrong-verifier")).await.pair(),
        mismatch
    );
    // `plain` is the default method.
    let plain = f
        .authorize(&format!(
            "response_type=code&client_id={CLIENT}&redirect_uri={REDIRECT}&code_challenge=abc"
        ))
        .await;
    assert_eq!(f.token(&exchange(plain, "abc")).await.status, 200);
}

#[tokio::test]
async fn credentials_in_the_form_body_are_accepted_and_must_agree_with_basic() {
    let f = start_default().await;
    let s2s = "grant_type=account_credentials&account_id=sim-account";
    let posted = format!("{s2s}&client_id={CLIENT}&client_secret={SECRET}");
    let resp = f
        .send(f.request(Method::POST, "/oauth/token", None, &posted))
        .await;
    assert_eq!(resp.status, 200, "{:?}", resp.body);
    // Both methods at once: fine when they agree, invalid_request when not.
    let both = f.request(
        Method::POST,
        "/oauth/token",
        Some(&basic(CLIENT, SECRET)),
        &posted,
    );
    assert_eq!(f.send(both).await.status, 200);
    let differ = format!("{s2s}&client_id={CLIENT}&client_secret=other");
    let both = f.request(
        Method::POST,
        "/oauth/token",
        Some(&basic(CLIENT, SECRET)),
        &differ,
    );
    let (status, body) = f.send(both).await.pair();
    assert_eq!((status, &body["error"]), (400, &json!("invalid_request")));
    // A wrong secret in the body is a wrong secret.
    let wrong = format!("{s2s}&client_id={CLIENT}&client_secret=wrong");
    let resp = f
        .send(f.request(Method::POST, "/oauth/token", None, &wrong))
        .await;
    assert_eq!(resp.json()["error"], "invalid_client");
    // A confidential app's client_id alone is not a public client.
    let id_only = format!("{s2s}&client_id={CLIENT}");
    let resp = f
        .send(f.request(Method::POST, "/oauth/token", None, &id_only))
        .await;
    assert_eq!(resp.json()["error"], "invalid_client");
}

fn with_public_client() -> SimConfig {
    SimConfig {
        apps: vec![
            grantmux::sim::SimApp::default(),
            grantmux::sim::SimApp {
                client_id: "public-app".into(),
                client_secret: String::new(),
                public: true,
            },
        ],
        ..SimConfig::default()
    }
}

#[tokio::test]
async fn a_public_client_exchanges_with_pkce_and_refreshes_with_its_client_id_alone() {
    let f = start(with_public_client()).await;
    let verifier = "a-public-verifier-of-enough-length-0123456789";
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let query = format!("response_type=code&client_id=public-app&redirect_uri={REDIRECT}&code_challenge={challenge}&code_challenge_method=S256");
    let post = |body: String| f.send(f.request(Method::POST, "/oauth/token", None, &body));
    let exchange = |code: &str, verifier: Option<&str>| {
        let mut pairs = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("client_id", "public-app"),
        ];
        pairs.extend(verifier.map(|v| ("code_verifier", v)));
        form(&pairs)
    };

    let code = f.authorize(&query).await;
    let (status, body) = post(exchange(&code, None)).await.pair();
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("invalid_request")),
        "PKCE is required"
    );
    let code = f.authorize(&query).await;
    let tokens = post(exchange(&code, Some(verifier))).await;
    assert_eq!(tokens.status, 200, "{:?}", tokens.body);
    let refresh = field(&tokens.json(), "refresh_token");
    let again = form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &refresh),
        ("client_id", "public-app"),
    ]);
    let refreshed = post(again).await;
    assert_eq!(refreshed.status, 200, "{:?}", refreshed.body);
    let access = field(&refreshed.json(), "access_token");
    assert_eq!(f.api_get("/v2/users/me", &access).await.status, 200);

    // A code issued without a challenge cannot be redeemed by a public client.
    let bare = f
        .authorize(&format!(
            "response_type=code&client_id=public-app&redirect_uri={REDIRECT}"
        ))
        .await;
    assert_eq!(
        post(exchange(&bare, Some(verifier))).await.pair(),
        (
            400,
            json!({"reason": "Invalid code verifier", "error": "invalid_grant"})
        )
    );
    // No app-level tokens for a client without a secret.
    let s2s =
        post("grant_type=account_credentials&account_id=sim-account&client_id=public-app".into())
            .await;
    assert_eq!(s2s.json()["error"], "invalid_client");
}

#[tokio::test]
async fn client_credentials_gives_an_app_token_for_app_level_routes_only() {
    let f = start_default().await;
    let resp = f.token("grant_type=client_credentials").await;
    assert_eq!(resp.status, 200, "{:?}", resp.body);
    let answer = resp.json();
    assert!(answer.get("refresh_token").is_none(), "{answer}");
    assert_eq!(answer["token_type"], "bearer");
    let app_token = field(&answer, "access_token");

    let chat = |token: &str| {
        let mut req = f.request(
            Method::POST,
            "/v2/im/chat/messages",
            None,
            r#"{"robot_jid":"bot@xmpp.zoom.us","to_jid":"u@xmpp.zoom.us"}"#,
        );
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        f.send(req)
    };
    let sent = chat(&app_token).await;
    assert_eq!(sent.status, 201, "{:?}", sent.body);
    assert!(sent.json()["message_id"].is_string());
    // Not a user's token: user routes refuse it as a missing scope (not as a
    // dead token), and a user's token is no bot's.
    let (status, body) = f.api_get("/v2/users/me", &app_token).await.pair();
    assert_eq!((status, &body["code"]), (400, &json!(4711)), "{body}");
    let user = f.login("sim-user").await;
    let (status, body) = chat(&field(&user, "access_token")).await.pair();
    assert_eq!((status, &body["code"]), (400, &json!(4711)), "{body}");
    assert_eq!(f.sim.stats().token_requests.client_credentials, 1);
}
