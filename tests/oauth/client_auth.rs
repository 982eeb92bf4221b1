//! Every way Zoom lets a client authenticate, through grantmux: HTTP Basic,
//! credentials in the form body (`client_secret_post`, as passport-oauth2
//! strategies send them), both at once when they agree, a public PKCE client
//! with no secret, and the app's own token (`client_credentials`).

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use grantmux::harness::{Answer, Harness};
use grantmux::sim::{SimApp, SimConfig};
use http::Method;
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;

use crate::support::{
    self, assert_oauth_error, basic, create_and_read, form, gmx, me, post, text, tokens, ACCOUNT,
    CLIENT, REDIRECT, SECRET, USER,
};

const FORM: &str = "application/x-www-form-urlencoded";
const PUBLIC: &str = "public-app";

async fn token_with(h: &Harness, authorization: &str, pairs: &[(&str, &str)]) -> Answer {
    let url = format!("{}/oauth/token", gmx(h));
    post(h, &url, authorization, FORM, form(pairs)).await
}

#[tokio::test]
async fn credentials_in_the_body_exchange_a_code_and_refresh_as_basic_does() {
    let h = support::start().await;
    let code = h.sim.issue_code(CLIENT, USER, REDIRECT);
    let answer = token_with(
        &h,
        "",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", CLIENT),
            ("client_secret", SECRET),
        ],
    )
    .await;
    let t = tokens(&answer);
    let refresh = t.refresh.expect("a refresh token");
    let again = token_with(
        &h,
        "",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", CLIENT),
            ("client_secret", SECRET),
        ],
    )
    .await;
    let t = tokens(&again);
    assert!(create_and_read(&h, &gmx(&h), &t.access).await.is_ok());
    h.shutdown().await;
}

#[tokio::test]
async fn basic_and_body_credentials_must_agree_and_missing_ones_are_invalid_client() {
    let h = support::start().await;
    let s2s = [
        ("grant_type", "account_credentials"),
        ("account_id", ACCOUNT),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut pairs = s2s.to_vec();
        pairs.extend_from_slice(extra);
        pairs
    };
    let agree = token_with(
        &h,
        &basic(CLIENT, SECRET),
        &with(&[("client_id", CLIENT), ("client_secret", SECRET)]),
    )
    .await;
    assert_eq!(agree.status, 200, "{}", text(&agree));
    for extra in [
        &[("client_id", "another-app")][..],
        &[("client_id", CLIENT), ("client_secret", "another-secret")],
    ] {
        let differ = token_with(&h, &basic(CLIENT, SECRET), &with(extra)).await;
        assert_eq!(differ.status, 400, "{}", text(&differ));
        assert_eq!(
            differ.json()["error"],
            "invalid_request",
            "{}",
            text(&differ)
        );
    }
    let missing = token_with(&h, "", &s2s).await;
    assert_oauth_error(
        &missing,
        400,
        "Invalid client_id or client_secret",
        "invalid_client",
    );
    // A confidential app's client_id alone does not make it a public client.
    let id_only = token_with(&h, "", &with(&[("client_id", CLIENT)])).await;
    assert_eq!(id_only.json()["error"], "invalid_client");
    assert_eq!(h.sim.stats().token_requests.account_credentials, 1);
    h.shutdown().await;
}

/// The simulator with the default confidential app and a public one.
async fn start_with_public_client() -> Harness {
    let sim = SimConfig {
        apps: vec![
            SimApp::default(),
            SimApp {
                client_id: PUBLIC.into(),
                client_secret: String::new(),
                public: true,
            },
        ],
        ..SimConfig::default()
    };
    Harness::start(sim, |_| {}).await.expect("harness starts")
}

/// The browser leg: grantmux's `/oauth/authorize` redirects to Zoom's, which
/// approves at once and redirects back with a code.
async fn authorize_via_grantmux(h: &Harness, client_id: &str, challenge: &str) -> String {
    let query = form(&[
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]);
    let mut url = format!("{}/oauth/authorize?{query}", gmx(h));
    for _ in 0..2 {
        let a = h.call(Method::GET, &url, &[], "").await.expect("an answer");
        assert_eq!(a.status, 302, "{}", text(&a));
        url = a.headers["location"].to_str().expect("ascii").to_owned();
    }
    let (_, q) = url.split_once('?').expect("a query");
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code")
}

#[tokio::test]
async fn a_public_pkce_client_exchanges_a_code_and_refreshes_with_no_secret() {
    let h = start_with_public_client().await;
    let verifier = "public-client-verifier-0123456789-abcdefghijklmnop";
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let code = authorize_via_grantmux(&h, PUBLIC, &challenge).await;
    let answer = token_with(
        &h,
        "",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", PUBLIC),
            ("code_verifier", verifier),
        ],
    )
    .await;
    let t = tokens(&answer);
    assert_eq!(me(&h, &gmx(&h), &t.access).await.status, 200);

    let refreshed = token_with(
        &h,
        "",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", t.refresh.as_deref().expect("refresh")),
            ("client_id", PUBLIC),
        ],
    )
    .await;
    let t = tokens(&refreshed);
    assert!(create_and_read(&h, &gmx(&h), &t.access).await.is_ok());

    // The real grant refreshes at Zoom as a public client too.
    let before = h.sim.stats().token_requests.refresh_token;
    let url = h.admin_url(&format!("/grants/{PUBLIC}%2Fuser%3A{USER}/refresh"));
    let forced = h
        .call(Method::POST, &url, &[], "")
        .await
        .expect("an answer");
    assert_eq!(forced.status, 200, "{}", text(&forced));
    assert_eq!(h.sim.stats().token_requests.refresh_token, before + 1);
    assert_eq!(me(&h, &gmx(&h), &t.access).await.status, 200);

    // A public client gets no app-level token, and a secret does not fit it.
    let s2s = token_with(
        &h,
        "",
        &[("grant_type", "client_credentials"), ("client_id", PUBLIC)],
    )
    .await;
    assert_eq!(s2s.json()["error"], "invalid_client", "{}", text(&s2s));
    let with_secret = token_with(
        &h,
        &basic(PUBLIC, "made-up"),
        &[("grant_type", "refresh_token"), ("refresh_token", "x")],
    )
    .await;
    assert_eq!(with_secret.json()["error"], "invalid_client");
    h.shutdown().await;
}

#[tokio::test]
async fn client_credentials_two_hundred_at_once_cause_one_mint_and_the_token_works() {
    const CALLERS: usize = 200;
    let h = Arc::new(support::start().await);
    let mut set = JoinSet::new();
    for _ in 0..CALLERS {
        let h = h.clone();
        set.spawn(async move {
            let a = token_with(
                &h,
                &basic(CLIENT, SECRET),
                &[("grant_type", "client_credentials")],
            )
            .await;
            tokens(&a)
        });
    }
    let mut answers = Vec::new();
    while let Some(done) = set.join_next().await {
        answers.push(done.expect("no panic"));
    }
    assert_eq!(answers.len(), CALLERS);
    assert_eq!(h.sim.stats().token_requests.client_credentials, 1);
    let t = &answers[0];
    assert!(t.refresh.is_none(), "app tokens carry no refresh token");

    // A virtual token, and it reaches the app-level API through grantmux.
    assert!(t.access.starts_with("eyJ"), "a JWT-shaped virtual token");
    let url = format!("{}/v2/im/chat/messages", gmx(&h));
    let bearer = format!("Bearer {}", t.access);
    let sent = h
        .call(
            Method::POST,
            &url,
            &[
                ("authorization", &bearer),
                ("content-type", "application/json"),
            ],
            r#"{"robot_jid":"bot@xmpp.zoom.us","to_jid":"u@xmpp.zoom.us"}"#,
        )
        .await
        .expect("an answer");
    assert_eq!(sent.status, 201, "{}", text(&sent));
    assert_eq!(h.sim.stats().token_requests.client_credentials, 1);
    Arc::try_unwrap(h)
        .expect("no task holds the harness")
        .shutdown()
        .await;
}

#[tokio::test]
async fn an_app_token_on_a_user_route_gets_zooms_missing_scope_answer_and_no_new_mint() {
    let h = support::start().await;
    let a = token_with(
        &h,
        &basic(CLIENT, SECRET),
        &[("grant_type", "client_credentials")],
    )
    .await;
    let t = tokens(&a);
    for _ in 0..3 {
        let answer = me(&h, &gmx(&h), &t.access).await;
        assert_eq!(answer.status, 400, "{}", text(&answer));
        assert_eq!(answer.json()["code"], 4711);
    }
    // A missing scope is no dead token: nothing was minted again.
    assert_eq!(h.sim.stats().token_requests.client_credentials, 1);
    h.shutdown().await;
}
