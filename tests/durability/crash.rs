//! Restarts and crashes: what survives, and the one loss that cannot be avoided.

use grantmux::sim::{Sim, SimConfig, SimHandle};

use crate::process::{write_config, Grantmux};
use crate::support::{admin_json, authorize, force_refresh, http, me, refresh};

const USER: &str = "durable-user";

async fn sim() -> SimHandle {
    Sim::start(SimConfig::default()).await.expect("sim")
}

/// Authorize through grantmux, stop it with `signal`, start again: the caller's
/// old virtual tokens keep working and Zoom sees no new authorization.
async fn survives(signal: &str) {
    let sim = sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &sim);
    let http = http();
    let gmx = Grantmux::start(&config, &[]);
    let (access, refresh_token) = authorize(&http, &sim, gmx.proxy, USER).await;
    assert_eq!(me(&http, gmx.proxy, &access).await.expect("answer").0, 200);
    let (code, _) = gmx.stop(signal);
    if signal == "-TERM" {
        assert_eq!(code, Some(0), "a clean stop exits 0");
    }
    let gmx = Grantmux::start(&config, &[]);
    let (status, body) = me(&http, gmx.proxy, &access).await.expect("answer");
    assert_eq!(
        status, 200,
        "old virtual access token after restart: {body}"
    );
    let (status, body) = refresh(&http, gmx.proxy, &refresh_token)
        .await
        .expect("answer");
    assert_eq!(
        status, 200,
        "old virtual refresh token after restart: {body}"
    );
    let stats = sim.stats();
    assert_eq!(
        stats.token_requests.authorization_code, 1,
        "no new authorization: {stats:?}"
    );
    assert_eq!(stats.token_errors, 0);
    gmx.stop("-TERM");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_and_virtual_tokens_survive_sigterm() {
    survives("-TERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_and_virtual_tokens_survive_kill_9() {
    survives("-KILL").await;
}

/// Arms `step`, authorizes, forces a refresh that crashes the process at `step`,
/// restarts. Returns the simulator, the restarted process and the caller's token.
async fn crash_at(step: &str) -> (SimHandle, Grantmux, String, tempfile::TempDir) {
    let sim = sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &sim);
    let http = http();
    let mut gmx = Grantmux::start(&config, &[("GRANTMUX_FAILPOINT", step)]);
    let (access, _) = authorize(&http, &sim, gmx.proxy, USER).await;
    // The refresh never answers: the process aborts at the failpoint.
    let answer = force_refresh(&http, gmx.admin, USER).await;
    assert!(
        answer.is_none(),
        "the process should have crashed at {step}: {answer:?}"
    );
    assert!(gmx.exited().await, "no crash at {step}");
    let (code, log) = gmx.wait();
    assert_eq!(code, None, "killed by SIGABRT at {step}");
    assert!(
        log.iter()
            .any(|l| l.contains(&format!("failpoint {step} reached"))),
        "{log:#?}"
    );
    let gmx = Grantmux::start(&config, &[]);
    (sim, gmx, access, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_before_the_zoom_call_or_after_the_write_loses_nothing() {
    for step in ["before_zoom", "after_write", "after_publish"] {
        let (sim, gmx, access, _dir) = crash_at(step).await;
        let http = http();
        let (status, body) = me(&http, gmx.proxy, &access).await.expect("answer");
        assert_eq!(status, 200, "{step}: {body}");
        // And the grant keeps rotating after the restart.
        let (status, body) = force_refresh(&http, gmx.admin, USER).await.expect("answer");
        assert_eq!(status, 200, "{step}: {body}");
        assert_eq!(
            me(&http, gmx.proxy, &access).await.expect("answer").0,
            200,
            "{step}"
        );
        assert_eq!(
            sim.stats().token_errors,
            0,
            "{step}: no invalid_grant, ever"
        );
        gmx.stop("-TERM");
        sim.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_zooms_answer_and_the_write_is_the_one_loss_reported_clearly() {
    let (sim, gmx, access, _dir) = crash_at("after_zoom").await;
    let http = http();
    let refreshes = sim.stats().token_requests.refresh_token;
    assert_eq!(refreshes, 1, "Zoom rotated the token before the crash");
    // The stored refresh token is the one Zoom just rotated out: the grant is lost.
    for _ in 0..20 {
        let (status, body) = me(&http, gmx.proxy, &access).await.expect("answer");
        assert_eq!(status, 401, "{body}");
        assert_eq!(
            body,
            serde_json::json!({"code":124,"message":"Invalid access token."})
        );
    }
    let stats = sim.stats();
    assert_eq!(
        stats.token_requests.refresh_token,
        refreshes + 1,
        "one refused refresh, then no loop: {stats:?}"
    );
    let ready = admin_json(&http, gmx.admin, "/readyz").await;
    assert_eq!(ready["ready"], true, "{ready}");
    assert_eq!(
        ready["dead_grants"],
        serde_json::json!([format!("sim-client/user:{USER}")])
    );
    // Nothing is corrupt: the user authorizes again and everything works.
    let (access, _) = authorize(&http, &sim, gmx.proxy, USER).await;
    assert_eq!(me(&http, gmx.proxy, &access).await.expect("answer").0, 200);
    gmx.stop("-TERM");
    sim.shutdown().await;
}

/// A legacy system's real refresh token presented at grantmux, which crashes
/// right after storing Zoom's answer under the token's hash, before it knows
/// whose it is. After the restart the same legacy token gets the same tokens:
/// Zoom saw one refresh and refused nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_in_the_middle_of_a_legacy_adoption_loses_nothing() {
    let sim = sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &sim);
    let http = http();
    let legacy = legacy_refresh_token(&http, &sim).await;
    let mut gmx = Grantmux::start(&config, &[("GRANTMUX_FAILPOINT", "adoption_stored")]);
    let answer = refresh(&http, gmx.proxy, &legacy).await;
    assert!(
        answer.is_none(),
        "the process should have crashed: {answer:?}"
    );
    assert!(gmx.exited().await, "no crash at adoption_stored");
    let (code, _) = gmx.wait();
    assert_eq!(code, None, "killed by SIGABRT");
    assert_eq!(
        sim.stats().token_requests.refresh_token,
        1,
        "Zoom rotated it"
    );

    let gmx = Grantmux::start(&config, &[]);
    let (status, body) = refresh(&http, gmx.proxy, &legacy).await.expect("answer");
    assert_eq!(status, 200, "the legacy token after the restart: {body}");
    let access = body["access_token"].as_str().expect("access").to_owned();
    let (status, me_body) = me(&http, gmx.proxy, &access).await.expect("answer");
    assert_eq!(
        (status.as_u16(), &me_body["id"]),
        (200, &serde_json::json!(USER))
    );
    let stats = sim.stats();
    assert_eq!(
        stats.token_requests.refresh_token, 1,
        "one refresh at Zoom: {stats:?}"
    );
    assert_eq!(stats.invalid_grant, 0, "{stats:?}");
    gmx.stop("-TERM");
    sim.shutdown().await;
}

/// A real refresh token from Zoom itself, as a legacy system holds one.
async fn legacy_refresh_token(http: &crate::support::Http, sim: &SimHandle) -> String {
    let code = sim.issue_code(crate::process::CLIENT, USER, "http://localhost/cb");
    let (status, body) = crate::support::call(
        http,
        http::Method::POST,
        &format!("{}/oauth/token", sim.base_url()),
        &[
            (
                "authorization",
                &crate::common::client::basic(crate::process::CLIENT, crate::process::SECRET),
            ),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        &format!(
            "grant_type=authorization_code&code={code}&redirect_uri=http%3A%2F%2Flocalhost%2Fcb"
        ),
    )
    .await
    .expect("the simulator answers");
    assert_eq!(status, 200, "{body}");
    body["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned()
}
