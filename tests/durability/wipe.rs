//! A `kill -9` in the middle of an uninstall: Zoom's `app_deauthorized`
//! reaches a grantmux that aborts inside the wipe, before its write
//! (`wipe_decided`) or once the write is durable (`wipe_stored`). Zoom got no
//! answer, so it delivers again, to the restarted process.
//!
//! What users rely on: Zoom hears 200 only once the wipe is durable; after
//! Zoom's retry the uninstalled user's tokens are dead at grantmux itself
//! (answered without asking Zoom) and gone from the file; the other users'
//! grants carry on; and the `[[notify]]` URL is told of the uninstall, once.

use std::path::PathBuf;
use std::time::Duration;

use grantmux::config::KeySource;
use grantmux::grants::{Grant, GrantKey, Subject};
use grantmux::sim::{Sim, SimConfig, SimHandle};
use grantmux::store::{FileStore, GrantStore};
use grantmux::webhooks::signature;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::common::receiver::Receiver;
use crate::process::{write_config_with, Grantmux, CLIENT};
use crate::support::{
    authorize, http, me, point_zoom_at, raw_metrics, refresh, sealed_record, uninstall_at_zoom,
    Http,
};

const WEBHOOK_SECRET: &str = "whsec-wipe-crash-0123";
const NOTIFY_SECRET: &str = "notify-wipe-crash-4567";
/// Every start's environment: the app's webhook secret and the notify secret.
const ENV: [(&str, &str); 2] = [
    ("ZOOM_WEBHOOK_SECRET", WEBHOOK_SECRET),
    ("GRANTMUX_NOTIFY_SECRET", NOTIFY_SECRET),
];
/// How long a test waits for a notification that needs no retry.
const PATIENCE: Duration = Duration::from_secs(20);
const USER: &str = "uninstalling-user";
/// Another user of the same app, who keeps the app installed.
const BYSTANDER: &str = "staying-user";

/// The state a crash mid-wipe left: grantmux is down.
struct Crashed {
    sim: SimHandle,
    dir: TempDir,
    config: PathBuf,
    /// The uninstalling user's virtual tokens.
    access: String,
    refresh: String,
    /// The bystander's virtual access token.
    bystander: String,
    /// The user's sealed record as stored before the uninstall.
    sealed: Vec<u8>,
    /// The access token Zoom had issued the user when they uninstalled.
    at_zoom: Option<String>,
    /// The `[[notify]]` URL, told of `grant.deauthorized` only.
    ops: Receiver,
}

/// Both users authorize; then, with the failpoint `step` armed, the user
/// uninstalls at Zoom, and grantmux aborts at `step` while taking Zoom's
/// `app_deauthorized` in.
async fn crash_mid_wipe(step: &str) -> Crashed {
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let dir = tempfile::tempdir().expect("tempdir");
    let ops = Receiver::start().await;
    let app = "webhook_secret_env = \"ZOOM_WEBHOOK_SECRET\"";
    let notify = format!(
        r#"
[[notify]]
name = "ops"
url = "{}"
secret_env = "GRANTMUX_NOTIFY_SECRET"
events = ["grant.deauthorized"]
"#,
        ops.url("/grantmux")
    );
    let config = write_config_with(dir.path(), &sim, &notify, app);
    let http = http();
    let gmx = Grantmux::start(&config, &ENV);
    let (access, refresh) = authorize(&http, &sim, gmx.proxy, USER).await;
    let (bystander, _) = authorize(&http, &sim, gmx.proxy, BYSTANDER).await;
    gmx.stop("-TERM");
    let sealed = sealed_record(&dir.path().join("state"), &id(USER));
    let at_zoom = sim.current_access_token(CLIENT, USER);

    let [zoom, notify] = ENV;
    let mut gmx = Grantmux::start(&config, &[zoom, notify, ("GRANTMUX_FAILPOINT", step)]);
    point_zoom_at(&http, &sim, gmx.proxy, WEBHOOK_SECRET).await;
    let delivered = uninstall_at_zoom(&http, &sim, USER).await;
    assert_eq!(
        delivered,
        Value::Null,
        "Zoom got an answer from a process that aborted at {step}"
    );
    assert!(gmx.exited().await, "no crash at {step}");
    let (code, log) = gmx.wait();
    assert_eq!(code, None, "killed by SIGABRT at {step}");
    let reached = format!("failpoint {step} reached");
    assert!(log.iter().any(|l| l.contains(&reached)), "{log:#?}");
    assert!(ops.received().is_empty(), "told before the crash");
    Crashed {
        sim,
        dir,
        config,
        access,
        refresh,
        bystander,
        sealed,
        at_zoom,
        ops,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_once_the_wipe_is_stored_leaves_the_user_uninstalled_and_zoom_s_retry_gets_200() {
    let crashed = crash_mid_wipe("wipe_stored").await;
    // Durable means whole: the old file was rewritten away before the crash.
    crashed.assert_no_sealed_copy();
    let http = http();
    let gmx = Grantmux::start(&crashed.config, &ENV);
    // The wipe was durable: the restarted process holds it before Zoom retries.
    crashed.assert_dead_here(&http, &gmx).await;
    crashed.zoom_retries_and_the_wipe_is_whole(&http, gmx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_before_the_wipe_is_written_keeps_the_grant_whole_until_zoom_s_retry_wipes_it() {
    let crashed = crash_mid_wipe("wipe_decided").await;
    // Zoom heard nothing, so nothing was promised it: the store holds the
    // grant as last written, neither lost nor half wiped.
    let stored = crashed.stored(USER).await.expect("the grant is kept");
    assert_eq!(stored.deauthorized_at(), None, "{:?}", stored.state);
    // Compared, not printed: a failure message is no place for a token.
    let kept = Some(stored.access_token.expose().to_owned()) == crashed.at_zoom;
    assert!(kept, "the store holds other tokens than Zoom had issued");
    assert!(stored.bindings.iter().all(|b| !b.revoked), "bindings kept");

    let http = http();
    let gmx = Grantmux::start(&crashed.config, &ENV);
    crashed.assert_bystander_served(&http, &gmx).await;
    crashed.zoom_retries_and_the_wipe_is_whole(&http, gmx).await;
}

/// The `[[notify]]` URL hears of the uninstall although the process died
/// between the wipe's write and the queueing of its event: Zoom's retry finds
/// the wiped record still owing its `grant.deauthorized`, raises it, counts
/// the wipe and logs it. Zoom delivering the finished uninstall once more
/// tells nobody again: the next event the URL hears is another user's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_once_the_wipe_is_stored_still_tells_notify_of_the_uninstall_once() {
    let crashed = crash_mid_wipe("wipe_stored").await;
    let http = http();
    let gmx = Grantmux::start(&crashed.config, &ENV);
    point_zoom_at(&http, &crashed.sim, gmx.proxy, WEBHOOK_SECRET).await;
    let delivered = uninstall_at_zoom(&http, &crashed.sim, USER).await;
    assert_eq!(delivered, json!(200), "Zoom's retry answered");
    let told = crashed.told(1).await;
    assert_eq!(users(&told), [USER], "told of the uninstall");
    assert_eq!(wipes_counted(&gmx).await, Some(1), "the wipe counted");

    // Zoom's duplicate of an uninstall that is done: no event, not counted.
    let delivered = uninstall_at_zoom(&http, &crashed.sim, USER).await;
    assert_eq!(delivered, json!(200), "the duplicate answered");
    assert_eq!(wipes_counted(&gmx).await, Some(1), "the duplicate counted");
    // One queue, delivered in order: had the duplicate queued an event, it
    // would arrive before the bystander's.
    let delivered = uninstall_at_zoom(&http, &crashed.sim, BYSTANDER).await;
    assert_eq!(delivered, json!(200), "the bystander's uninstall answered");
    let told = crashed.told(2).await;
    assert_eq!(users(&told), [USER, BYSTANDER], "one event per uninstall");
    assert_eq!(wipes_counted(&gmx).await, Some(2));

    let (_, log) = gmx.stop("-TERM");
    for user in [USER, BYSTANDER] {
        let wiped = log
            .iter()
            .filter(|l| l.contains("app_deauthorized: grant wiped") && l.contains(&id(user)))
            .count();
        assert_eq!(wiped, 1, "{user}'s wipe logged once: {log:#?}");
    }
    // The event carries the wipe's own time, whichever process raised it,
    // so that a receiver can tell a repeat from a new uninstall.
    let stored = crashed.stored(USER).await.expect("the record stays");
    assert_eq!(stored.deauthorized_at(), Some(told[0].1), "event_ts");
    crashed.sim.shutdown().await;
}

/// A grant's id in the store.
fn id(user: &str) -> String {
    format!("{CLIENT}/user:{user}")
}

/// The users of `told`, in order.
fn users(told: &[(String, u64)]) -> Vec<&str> {
    told.iter().map(|(user, _)| user.as_str()).collect()
}

/// `grantmux_grants_deauthorized_total`, as `gmx` reports it now.
async fn wipes_counted(gmx: &Grantmux) -> Option<u64> {
    let metrics = raw_metrics(gmx.admin).await;
    let line = metrics
        .lines()
        .find_map(|l| l.strip_prefix("grantmux_grants_deauthorized_total "));
    line.and_then(|n| n.parse().ok())
}

// === impl Crashed ===

impl Crashed {
    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// `user`'s grant as the store holds it, read with the store's own key
    /// (grantmux down: redb locks its file).
    async fn stored(&self, user: &str) -> Option<Grant> {
        let store = FileStore::open(&self.state(), &KeySource::Generated).expect("store opens");
        let key = GrantKey::new(CLIENT, Subject::User(user.into()));
        store.load(&key).await.expect("load")
    }

    /// Zoom delivers `app_deauthorized` again, to the restarted `gmx`, which
    /// answers 200 once the wipe is whole: the user's tokens dead here, no
    /// copy left in the file, the bystander served. Then stops it and checks
    /// the store.
    async fn zoom_retries_and_the_wipe_is_whole(self, http: &Http, gmx: Grantmux) {
        point_zoom_at(http, &self.sim, gmx.proxy, WEBHOOK_SECRET).await;
        let delivered = uninstall_at_zoom(http, &self.sim, USER).await;
        assert_eq!(delivered, json!(200), "Zoom's retry answered");
        assert_eq!(users(&self.told(1).await), [USER], "told of the uninstall");
        // Zoom's 200 says no copy of the tokens is left.
        self.assert_no_sealed_copy();
        self.assert_dead_here(http, &gmx).await;
        self.assert_bystander_served(http, &gmx).await;
        gmx.stop("-TERM");
        self.assert_wiped_in_file().await;
        self.sim.shutdown().await;
    }

    /// The users the `[[notify]]` URL was told were deauthorized, with each
    /// event's `event_ts`, in order, once it has heard of `n` (or PATIENCE
    /// has passed: then what there is, for the assertion to show). Each is
    /// signed with the notify secret.
    async fn told(&self, n: usize) -> Vec<(String, u64)> {
        let got = self.ops.wait_until(PATIENCE, |g| g.len() >= n).await;
        got.iter()
            .map(|r| {
                let event = r.json();
                assert_eq!(event["event"], "grant.deauthorized", "{event}");
                let ts = r.header("x-grantmux-request-timestamp");
                let signed = signature::sign(NOTIFY_SECRET.as_bytes(), ts, r.body.as_bytes());
                assert_eq!(r.header("x-grantmux-signature"), signed, "signed");
                let user = event["payload"]["user_id"].as_str().expect("user_id");
                (
                    user.to_owned(),
                    event["event_ts"].as_u64().expect("event_ts"),
                )
            })
            .collect()
    }

    /// The uninstalled user's virtual tokens get Zoom's refusals from grantmux
    /// itself: no call reaches Zoom with the wiped grant.
    async fn assert_dead_here(&self, http: &Http, gmx: &Grantmux) {
        let before = self.sim.stats();
        let (status, body) = me(http, gmx.proxy, &self.access).await.expect("answer");
        assert_eq!(status, 401, "{body}");
        assert_eq!(
            body,
            json!({"code": 124, "message": "Invalid access token."})
        );
        let (status, body) = refresh(http, gmx.proxy, &self.refresh)
            .await
            .expect("answer");
        assert_eq!(
            (status.as_u16(), &body["error"]),
            (400, &json!("invalid_grant"))
        );
        let after = self.sim.stats();
        assert_eq!(
            (after.api_requests, after.token_requests.refresh_token),
            (before.api_requests, before.token_requests.refresh_token),
            "refused without asking Zoom: {after:?}"
        );
    }

    async fn assert_bystander_served(&self, http: &Http, gmx: &Grantmux) {
        let (status, body) = me(http, gmx.proxy, &self.bystander).await.expect("answer");
        assert_eq!((status.as_u16(), &body["id"]), (200, &json!(BYSTANDER)));
    }

    /// No page of the store's file holds the user's sealed record as it was
    /// before the uninstall. Checked as soon as the wipe is owed: a later
    /// start and its writes may reuse a freed page and hide a copy left.
    fn assert_no_sealed_copy(&self) {
        let file = std::fs::read(self.state().join("grants.redb")).expect("read the file");
        let sealed = self.sealed.as_slice();
        assert!(
            !file.windows(sealed.len()).any(|w| w == sealed),
            "grants.redb still holds the uninstalled grant's sealed record"
        );
    }

    /// With grantmux stopped: the record stays, tokenless, every binding
    /// revoked; the bystander's grant is there, live, for the next start.
    async fn assert_wiped_in_file(&self) {
        let stored = self.stored(USER).await.expect("the record stays");
        assert!(stored.deauthorized_at().is_some(), "{:?}", stored.state);
        assert!(stored.access_token.is_empty(), "access token wiped");
        assert!(stored.refresh_token.is_none(), "refresh token wiped");
        assert!(
            stored.bindings.iter().all(|b| b.revoked),
            "bindings revoked"
        );
        let kept = self.stored(BYSTANDER).await.expect("the bystander's grant");
        assert!(kept.issued().is_some(), "{:?}", kept.state);
    }
}
