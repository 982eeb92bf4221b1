//! A file-store `grantmux serve` in front of an in-process simulator whose token
//! endpoint answers [`ANSWER_DELAY`] after acting, and a caller that hangs up in between.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use grantmux::sim::{Faults, Sim, SimConfig, SimHandle, SimStats};
use http::{Method, StatusCode};
use serde_json::Value;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

use crate::common::client::{basic, http, send, Http};
pub(crate) use crate::common::process::CLIENT;
use crate::common::process::{Grantmux, SECRET};

/// How long Zoom's token endpoint holds back its answer once it has acted. The
/// caller hangs up well before; a fixed grantmux takes the answer in after it.
const ANSWER_DELAY: Duration = Duration::from_millis(1500);
/// How long a fixed grantmux may take to take in the late answer.
const SETTLE: Duration = ANSWER_DELAY.saturating_mul(3);
/// Bound on every other wait for state: generous for a busy 2-core machine.
const PATIENCE: Duration = Duration::from_secs(10);
pub(crate) const REDIRECT: &str = "http://localhost/cb";
const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

/// One scenario's world: Zoom, grantmux on a file store, and a client.
pub(crate) struct World {
    pub(crate) sim: SimHandle,
    pub(crate) gmx: Grantmux,
    pub(crate) http: Http,
    _dir: tempfile::TempDir,
}

/// A raw HTTP/1.1 request, for a caller that hangs up on its own schedule: on a
/// plain socket the hang-up is one close at a known moment, whatever a client
/// library would do with a dropped request.
pub(crate) struct Raw(String);

// === impl World ===

impl World {
    /// `refresh.ahead = 0s`: the grant never refreshes early, so an expired token is
    /// refreshed inline, by the request that finds it expired.
    pub(crate) async fn start() -> Self {
        let sim = Sim::start(SimConfig::default()).await.expect("sim starts");
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        let rest = format!(
            r#"
[store]
backend = "file"
path = "{state}"
[refresh]
ahead = "0s"
backoff_min = "50ms"
backoff_max = "200ms"
"#,
            state = state.display()
        );
        let config = crate::common::process::write_config(dir.path(), &sim.base_url(), &rest);
        let gmx = Grantmux::start(&config, &[]);
        Self {
            sim,
            gmx,
            http: http(),
            _dir: dir,
        }
    }

    /// From now on Zoom's token endpoint acts at once and answers [`ANSWER_DELAY`] later.
    pub(crate) fn delay_answers(&self) {
        self.sim.set_token_faults(Faults {
            answer_delay: ANSWER_DELAY,
            ..Faults::default()
        });
    }

    /// Sends `request` to grantmux and hangs up once `reached` says Zoom's token
    /// endpoint has grantmux's call: Zoom has acted, its answer is on its way.
    pub(crate) async fn hang_up_once(&self, request: Raw, reached: impl Fn(&SimStats) -> bool) {
        let mut caller = TcpStream::connect(self.gmx.proxy).await.expect("connect");
        caller
            .write_all(request.0.as_bytes())
            .await
            .expect("request sent");
        until("Zoom's token endpoint to get grantmux's call", || {
            reached(&self.sim.stats())
        })
        .await;
        let mut byte = [0u8; 1];
        match caller.try_read(&mut byte) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("grantmux answered before Zoom did: {other:?}"),
        }
        drop(caller);
    }

    /// Zoom answers at once again: waiting callers from now on are not the test.
    pub(crate) fn answer_at_once(&self) {
        self.sim.set_token_faults(Faults::default());
    }

    /// Waits (up to [`SETTLE`]) until grantmux shows `user`'s grant with tokens
    /// installed after `before` (a `refreshed_at_ms`; `None`: no grant yet) and at
    /// least `bindings` callers. Returns whether it did; the old code never does,
    /// and the assertions that follow say what that cost.
    pub(crate) async fn took_in(&self, user: &str, before: Option<u64>, bindings: u64) -> bool {
        let deadline = Instant::now() + SETTLE;
        while Instant::now() < deadline {
            if let Some(g) = self.grant(user).await {
                let at = g["refreshed_at_ms"].as_u64();
                if at > before && g["bindings"].as_u64() >= Some(bindings) {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// `user`'s grant as admin `/grants` shows it.
    pub(crate) async fn grant(&self, user: &str) -> Option<Value> {
        let url = format!("http://{}/grants", self.gmx.admin);
        let (_, body) = self.call(Method::GET, &url, &[], "").await;
        let id = format!("{CLIENT}/user:{user}");
        body["grants"]
            .as_array()?
            .iter()
            .find(|g| g["id"] == id.as_str())
            .cloned()
    }

    /// Polls the wall clock (grantmux's clock) until `user`'s real token has expired.
    pub(crate) async fn until_expired(&self, user: &str) {
        let grant = self.grant(user).await.expect("a grant");
        let expires_at_ms = grant["expires_at_ms"].as_u64().expect("expires_at_ms");
        until("the real token to expire", || now_ms() > expires_at_ms).await;
    }

    /// A caller's authorization: a code from Zoom, exchanged at grantmux.
    /// Returns (virtual access token, virtual refresh token).
    pub(crate) async fn authorize(&self, user: &str) -> (String, String) {
        let code = self.sim.issue_code(CLIENT, user, REDIRECT);
        let (status, body) = self.token(&code_form(&code)).await;
        assert_eq!(status, 200, "code exchange at grantmux: {body}");
        tokens(&body)
    }

    /// A legacy caller's authorization straight at Zoom: its real tokens.
    pub(crate) async fn authorize_at_zoom(&self, user: &str) -> (String, String) {
        let code = self.sim.issue_code(CLIENT, user, REDIRECT);
        let url = format!("{}/oauth/token", self.sim.base_url());
        let (status, body) = self.post_form(&url, &code_form(&code)).await;
        assert_eq!(status, 200, "code exchange at Zoom: {body}");
        tokens(&body)
    }

    /// `POST /oauth/token` at grantmux with the app's credentials.
    pub(crate) async fn token(&self, form: &str) -> (StatusCode, Value) {
        let url = format!("http://{}/oauth/token", self.gmx.proxy);
        self.post_form(&url, form).await
    }

    async fn post_form(&self, url: &str, form: &str) -> (StatusCode, Value) {
        let auth = basic(CLIENT, SECRET);
        let headers = [("authorization", auth.as_str()), FORM];
        self.call(Method::POST, url, &headers, form).await
    }

    /// `GET /v2/users/me` through grantmux.
    pub(crate) async fn me(&self, access: &str) -> (StatusCode, Value) {
        let url = format!("http://{}/v2/users/me", self.gmx.proxy);
        let bearer = format!("Bearer {access}");
        self.call(Method::GET, &url, &[("authorization", &bearer)], "")
            .await
    }

    /// Admin `POST /grants/{id}/refresh`: a rotation at Zoom, now.
    pub(crate) async fn force_refresh(&self, user: &str) -> (StatusCode, Value) {
        let url = format!(
            "http://{}/grants/{CLIENT}%2Fuser%3A{user}/refresh",
            self.gmx.admin
        );
        self.call(Method::POST, &url, &[], "").await
    }

    /// After the hang-up: the grant still answers through grantmux, also after one
    /// more rotation, and Zoom never had to refuse a refresh token.
    pub(crate) async fn assert_grant_works(&self, user: &str, access: &str) {
        let (status, body) = self.me(access).await;
        assert_eq!(status, 200, "API call: {body}");
        let (status, body) = self.force_refresh(user).await;
        assert_eq!(status, 200, "a further rotation: {body}");
        let (status, body) = self.me(access).await;
        assert_eq!(status, 200, "API call after a further rotation: {body}");
        let stats = self.sim.stats();
        assert_eq!(
            stats.invalid_grant, 0,
            "Zoom refused a refresh token: {stats:?}"
        );
    }

    async fn call(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (StatusCode, Value) {
        let (status, bytes) = send(&self.http, method, url, headers, body.to_owned())
            .await
            .unwrap_or_else(|e| panic!("{url} answers: {e}"));
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

// === impl Raw ===

impl Raw {
    /// `POST /oauth/token` with the app's credentials and `form`.
    pub(crate) fn token(form: &str) -> Self {
        let auth = basic(CLIENT, SECRET);
        Self(format!(
            "POST /oauth/token HTTP/1.1\r\nhost: grantmux\r\nauthorization: {auth}\r\n\
             content-type: {}\r\ncontent-length: {}\r\n\r\n{form}",
            FORM.1,
            form.len()
        ))
    }

    /// `GET /v2/users/me` with a virtual access token.
    pub(crate) fn me(access: &str) -> Self {
        Self(format!(
            "GET /v2/users/me HTTP/1.1\r\nhost: grantmux\r\nauthorization: Bearer {access}\r\n\r\n"
        ))
    }
}

pub(crate) fn code_form(code: &str) -> String {
    form(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
    ])
}

pub(crate) fn refresh_form(refresh_token: &str) -> String {
    form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ])
}

fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// (access_token, refresh_token) of a token answer.
pub(crate) fn tokens(body: &Value) -> (String, String) {
    let get = |k: &str| {
        body[k]
            .as_str()
            .unwrap_or_else(|| panic!("{k} in {body}"))
            .to_owned()
    };
    (get("access_token"), get("refresh_token"))
}

/// Polls `done` every 10 ms until it holds; panics naming `what` after [`PATIENCE`].
pub(crate) async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH);
    since.map_or(0, |d| d.as_millis() as u64)
}
