//! Fixtures for the proxy tests: a simulator and grantmux with two static callers.

use grantmux::config::{Caller, Config};
use grantmux::grants::{GrantKey, Subject};
use grantmux::harness::{Answer, Harness};
use grantmux::oauth::TokenResponse;
use grantmux::sim::SimConfig;
use http::Method;

pub(crate) const CLIENT: &str = "sim-client";
pub(crate) const SECRET: &str = "sim-secret";
pub(crate) const ACCOUNT: &str = "sim-account";
pub(crate) const USER: &str = "sim-user";
/// Static caller keys: one bound to the S2S grant, one to the user grant.
pub(crate) const S2S_KEY: &str = "caller-key-s2s-0123456789";
pub(crate) const USER_KEY: &str = "caller-key-user-0123456789";
const REDIRECT: &str = "http://localhost/cb";

pub(crate) fn s2s_key() -> GrantKey {
    GrantKey::new(CLIENT, Subject::Account(ACCOUNT.into()))
}

pub(crate) fn user_key() -> GrantKey {
    GrantKey::new(CLIENT, Subject::User(USER.into()))
}

pub(crate) fn with_callers(config: &mut Config) {
    config.callers = vec![
        Caller {
            name: "s2s".into(),
            key: S2S_KEY.into(),
            grant: s2s_key(),
            weight: 1,
        },
        Caller {
            name: "user".into(),
            key: USER_KEY.into(),
            grant: user_key(),
            weight: 1,
        },
    ];
}

/// Simulator with `sim`, grantmux with both callers and `tweak`.
pub(crate) async fn start(sim: SimConfig, tweak: impl FnOnce(&mut Config)) -> Harness {
    Harness::start(sim, |c| {
        with_callers(c);
        tweak(c);
    })
    .await
    .expect("harness starts")
}

pub(crate) async fn start_default() -> Harness {
    start(SimConfig::default(), |_| {}).await
}

/// Authorizes `USER` at the simulator and installs the grant in grantmux, as
/// the token endpoint would.
pub(crate) async fn adopt_user(h: &Harness) {
    let tokens = authorize_at_sim(h).await;
    h.gmx
        .registry
        .install(&user_key(), &tokens.into())
        .await
        .expect("grant installed");
}

/// `USER` authorizes the app straight at the simulator (no grantmux): Zoom then
/// revokes every earlier token of the pair.
pub(crate) async fn authorize_at_sim(h: &Harness) -> TokenResponse {
    let code = h.sim.issue_code(CLIENT, USER, REDIRECT);
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", &code)
        .append_pair("redirect_uri", REDIRECT)
        .finish();
    let basic = format!("Basic {}", b64(&format!("{CLIENT}:{SECRET}")));
    let answer = h
        .call(
            Method::POST,
            &format!("{}/oauth/token", h.sim.base_url()),
            &[
                ("authorization", &basic),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            form,
        )
        .await
        .expect("sim answers");
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    serde_json::from_slice(&answer.body).expect("token answer")
}

pub(crate) fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// `GET path` through grantmux as the caller holding `key`.
pub(crate) async fn get(h: &Harness, path: &str, key: &str) -> Answer {
    h.call(
        Method::GET,
        &h.proxy_url(path),
        &[("authorization", &format!("Bearer {key}"))],
        "",
    )
    .await
    .expect("grantmux answers")
}

/// Fires `n` concurrent GETs as `key`; returns the statuses that were not 200.
pub(crate) async fn storm(
    h: &std::sync::Arc<Harness>,
    n: usize,
    key: &'static str,
) -> Vec<(u16, String)> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let h = h.clone();
            tokio::spawn(async move { get(&h, "/v2/users/me", key).await })
        })
        .collect();
    let mut failures = Vec::new();
    for t in tasks {
        let a = t.await.expect("task");
        if a.status != 200 {
            failures.push((
                a.status.as_u16(),
                String::from_utf8_lossy(&a.body).into_owned(),
            ));
        }
    }
    failures
}

/// The Prometheus text from the admin listener.
pub(crate) async fn metrics(h: &Harness) -> String {
    let a = h
        .call(Method::GET, &h.admin_url("/metrics"), &[], "")
        .await
        .expect("admin answers");
    String::from_utf8_lossy(&a.body).into_owned()
}

/// The value of one sample line, `name{labels} value`, if present.
pub(crate) fn sample(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
