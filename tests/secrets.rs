//! A full run at trace level writes no token, secret or code into the logs.
//!
//! Its own test binary, because it installs a global trace-level subscriber
//! that captures every thread's logs.

use std::time::Duration;

use grantmux::config::Caller;
use grantmux::grants::{GrantKey, Subject};
use grantmux::harness::Harness;
use grantmux::sim::{Faults, SimConfig};
use http::Method;
use tracing::Level;

mod common;

use common::client::basic;
use common::logs::capture_every_thread;

const CLIENT: &str = "sim-client";
const SECRET: &str = "sim-secret";
const CALLER_KEY: &str = "secret-scan-caller-key-7f3a9";
const REDIRECT: &str = "http://localhost/cb";

async fn token(h: &Harness, base: &str, form: &str) -> serde_json::Value {
    let a = h
        .call(
            Method::POST,
            &format!("{base}/oauth/token"),
            &[
                ("authorization", &basic(CLIENT, SECRET)),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            form.to_owned(),
        )
        .await
        .expect("answer");
    a.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_run_at_trace_level_logs_no_secret() {
    let logs = capture_every_thread(Level::TRACE);
    let mut secrets: Vec<String> = vec![SECRET.into(), CALLER_KEY.into()];

    let sim = SimConfig {
        invalidate_previous_access: true,
        api_faults: Faults {
            latency: Duration::from_millis(5),
            ..Faults::default()
        },
        ..SimConfig::default()
    };
    let h = Harness::start(sim, |c| {
        c.callers = vec![Caller {
            name: "reports".into(),
            key: CALLER_KEY.into(),
            grant: GrantKey::new(CLIENT, Subject::Account("sim-account".into())),
            weight: 1,
        }];
    })
    .await
    .expect("harness");
    let proxy = h.proxy_url("");
    let sim_base = h.sim.base_url();

    // Server-to-Server through a static caller key.
    let a = h
        .call(
            Method::GET,
            &h.proxy_url("/v2/users/me"),
            &[("authorization", &format!("Bearer {CALLER_KEY}"))],
            "",
        )
        .await
        .expect("answer");
    assert_eq!(a.status, 200);

    // A caller's code exchange through grantmux, then API calls with virtual tokens.
    let code = h.sim.issue_code(CLIENT, "scan-user", REDIRECT);
    secrets.push(code.clone());
    let answer = token(
        &h,
        &proxy,
        &format!(
            "grant_type=authorization_code&code={code}&redirect_uri=http%3A%2F%2Flocalhost%2Fcb"
        ),
    )
    .await;
    let access = answer["access_token"]
        .as_str()
        .expect("virtual access")
        .to_owned();
    let refresh = answer["refresh_token"]
        .as_str()
        .expect("virtual refresh")
        .to_owned();
    secrets.extend([access.clone(), refresh.clone()]);
    for _ in 0..3 {
        // Rotate the real grant under load: refresh-ahead, replay on 401.
        h.clock.advance(Duration::from_secs(3400));
        let url = h.proxy_url("/v2/users/me");
        let auth = format!("Bearer {access}");
        let headers = [("authorization", auth.as_str())];
        let calls: Vec<_> = (0..8)
            .map(|_| h.call(Method::GET, &url, &headers, ""))
            .collect();
        for c in calls {
            let _ = c.await;
        }
        if let Some(real) = h.sim.current_access_token(CLIENT, "scan-user") {
            secrets.push(real);
        }
        let answer = token(
            &h,
            &proxy,
            &format!("grant_type=refresh_token&refresh_token={refresh}"),
        )
        .await;
        if let Some(t) = answer["access_token"].as_str() {
            secrets.push(t.to_owned());
        }
    }
    // A legacy caller's real refresh token, adopted.
    let code = h.sim.issue_code(CLIENT, "legacy-user", REDIRECT);
    secrets.push(code.clone());
    let direct = token(
        &h,
        &sim_base,
        &format!(
            "grant_type=authorization_code&code={code}&redirect_uri=http%3A%2F%2Flocalhost%2Fcb"
        ),
    )
    .await;
    let legacy_refresh = direct["refresh_token"]
        .as_str()
        .expect("real refresh")
        .to_owned();
    secrets.extend([
        legacy_refresh.clone(),
        direct["access_token"]
            .as_str()
            .expect("real access")
            .to_owned(),
    ]);
    let adopted = token(
        &h,
        &proxy,
        &format!("grant_type=refresh_token&refresh_token={legacy_refresh}"),
    )
    .await;
    assert!(adopted["access_token"].is_string(), "{adopted}");
    // Refused inputs log too.
    let _ = token(
        &h,
        &proxy,
        "grant_type=refresh_token&refresh_token=garbage-refresh-token-9d2",
    )
    .await;
    secrets.push("garbage-refresh-token-9d2".into());
    // Every real token grantmux holds now.
    for grant in h.gmx.registry.all() {
        let record = grant.record().await;
        secrets.push(record.access_token.expose().to_owned());
        if let Some(r) = record.refresh_token {
            secrets.push(r.expose().to_owned());
        }
    }
    h.shutdown().await;

    let text = logs.text();
    assert!(
        text.lines().count() > 50,
        "the capture works: {} lines",
        text.lines().count()
    );
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        assert!(
            !text.contains(secret.as_str()),
            "a secret appears in the logs: {}…",
            &secret[..secret.len().min(12)]
        );
        // Token payloads (the middle of a JWT) are as sensitive as the token.
        if let Some(payload) = secret.split('.').nth(1).filter(|p| p.len() > 16) {
            assert!(
                !text.contains(payload),
                "a token payload appears in the logs"
            );
        }
    }
}
