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
