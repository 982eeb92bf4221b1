//! Zoom's webhooks, sent by the sim: signed events, the URL validation challenge,
//! and the uninstall that revokes a grant and sends `app_deauthorized` (ZOOM.md §3).
//!
//! Every event is signed as Zoom signs it: `x-zm-signature: v0=<hex>` is
//! HMAC-SHA256 keyed with the secret token over `v0:{timestamp}:{raw body}`, and
//! `x-zm-request-timestamp` is that timestamp in Unix seconds. Both read the sim's
//! clock, which tests share with grantmux, so a replay-age check agrees with it.
//!
//! The signing here is written apart from `crate::webhooks::signature` on
//! purpose: the simulator is the tests' stand-in for Zoom, so a mistake in
//! grantmux's reading of the scheme must not be mirrored by its own sender.

use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::header::{CONTENT_TYPE, USER_AGENT};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

use super::api::Caller;
use super::echo::{self, hex};
use super::reply;
use super::state::{lock, Shared};
use crate::body::Body;
use crate::serve::Incoming;

/// Zoom gives an endpoint this long to answer (ZOOM.md §3).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(3);

/// Control bodies are a few fields; anything bigger is a mistake.
const MAX_CONTROL_BYTES: usize = 64 * 1024;

/// Zoom's webhook user agent.
const ZOOM_USER_AGENT: &str = "Zoom Marketplace/1.0a";

const EVENT_CONTENT_TYPE: &str = "application/json; charset=utf-8";

type HmacSha256 = Hmac<Sha256>;

/// Where events go and the secret token they are signed with.
#[derive(Clone)]
pub(crate) struct Target {
    url: Uri,
    secret: String,
}

// The secret never reaches a log, even through `Settings`' Debug.
impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

// --- control routes ---

#[derive(Deserialize)]
struct Configure {
    url: String,
    secret_token: String,
}

#[derive(Deserialize)]
struct Uninstall {
    client_id: String,
    user_id: Option<String>,
    account_id: Option<String>,
}

#[derive(Serialize)]
struct Delivered {
    delivered_status: Option<u16>,
}

#[derive(Serialize)]
struct Configured<'a> {
    url: &'a str,
}

#[derive(Serialize)]
struct Validated {
    valid: bool,
    status: Option<u16>,
}

/// `POST /_sim/webhooks` `{url, secret_token}`: events from now on go there.
pub(crate) async fn configure(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let Some(cfg) = read_json::<Configure>(req).await else {
        return bad_request("Body should be {\"url\": …, \"secret_token\": …}.");
    };
    let Some(url) = plain_http_url(&cfg.url) else {
        return bad_request("url must be an absolute http:// URL.");
    };
    let answer = reply::json(StatusCode::OK, &Configured { url: &cfg.url });
    let target = Target {
        url,
        secret: cfg.secret_token,
    };
    lock(&shared.settings).webhook = Some(target);
    answer
}

/// `POST /_sim/uninstall` `{client_id, user_id | account_id}`: revokes the pair's
/// grant (or, by account, every grant of the app), then sends `app_deauthorized`
/// and waits for the endpoint's answer.
pub(crate) async fn uninstall(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let Some(u) = read_json::<Uninstall>(req).await else {
        return bad_request("Body should be {\"client_id\": …, \"user_id\" | \"account_id\": …}.");
    };
    if !shared.is_client(&u.client_id) {
        return bad_request("Unknown client_id.");
    }
    let user = match (u.user_id, u.account_id) {
        (Some(user), _) => {
            lock(&shared.grants).revoke_user(&u.client_id, &user);
            user
        }
        (None, Some(account)) if account == shared.account_id => {
            lock(&shared.grants).revoke_client(&u.client_id);
            // An account-level uninstall is done by an admin: the owner, here.
            shared.default_user.clone()
        }
        (None, Some(_)) => return bad_request("Unknown account_id."),
        (None, None) => return bad_request("Either user_id or account_id is required."),
    };
    let delivered_status = match shared.settings().webhook {
        Some(target) => {
            let event = deauthorized(shared, &u.client_id, &user);
            send(shared, &target, &event).await.map(|(s, _)| s.as_u16())
        }
        None => None,
    };
    reply::json(StatusCode::OK, &Delivered { delivered_status })
}

/// `POST /_sim/webhooks/validate`: Zoom's challenge against the configured URL.
/// Valid when it answers 200 or 204 with the plain token and its HMAC.
pub(crate) async fn validate(shared: &Shared, _req: Request<Incoming>) -> Response<Body> {
    let Some(target) = shared.settings().webhook else {
        return reply::json(
            StatusCode::OK,
            &Validated {
                valid: false,
                status: None,
            },
        );
    };
    let plain_token = super::jwt::random_id(16);
    let event = Challenge {
        payload: PlainToken {
            plain_token: &plain_token,
        },
        event_ts: shared.clock.now_ms(),
        event: "endpoint.url_validation",
    };
    let answer = send(shared, &target, &event).await;
    let valid = answer
        .as_ref()
        .is_some_and(|(status, body)| challenge_met(&target, &plain_token, *status, body));
    let status = answer.map(|(s, _)| s.as_u16());
    reply::json(StatusCode::OK, &Validated { valid, status })
}

// --- events ---

/// An event envelope, fields in Zoom's order.
#[derive(Serialize)]
struct Event<P> {
    event: &'static str,
    event_ts: u64,
    payload: P,
}

#[derive(Serialize)]
struct Deauthorized<'a> {
    account_id: &'a str,
    user_id: &'a str,
    signature: String,
    deauthorization_time: String,
    client_id: &'a str,
}

#[derive(Serialize)]
struct MeetingCreated<'a> {
    account_id: &'a str,
    operator: String,
    operator_id: &'a str,
    object: MeetingObject,
}

/// The meeting as `meeting.created` carries it: a subset of the REST answer.
#[derive(Serialize)]
struct MeetingObject {
    id: Value,
    uuid: Value,
    host_id: Value,
    topic: Value,
    #[serde(rename = "type")]
    kind: Value,
    start_time: Value,
    duration: Value,
    timezone: Value,
    join_url: Value,
}

/// The validation challenge: Zoom puts `payload` first in this one.
#[derive(Serialize)]
struct Challenge<'a> {
    payload: PlainToken<'a>,
    event_ts: u64,
    event: &'static str,
}

#[derive(Serialize)]
struct PlainToken<'a> {
    #[serde(rename = "plainToken")]
    plain_token: &'a str,
}

#[derive(Deserialize)]
struct ChallengeAnswer {
    #[serde(rename = "plainToken")]
    plain_token: String,
    #[serde(rename = "encryptedToken")]
    encrypted_token: String,
}

fn deauthorized<'a>(
    shared: &'a Shared,
    client_id: &'a str,
    user: &'a str,
) -> Event<Deauthorized<'a>> {
    let now_ms = shared.clock.now_ms();
    let at = UNIX_EPOCH + Duration::from_millis(now_ms);
    // Zoom's own signature field is for the legacy verification flow; any hex will do.
    let signature: [u8; 32] = rand::random();
    Event {
        event: "app_deauthorized",
        event_ts: now_ms,
        payload: Deauthorized {
            account_id: &shared.account_id,
            user_id: user,
            signature: hex(&signature),
            deauthorization_time: humantime::format_rfc3339_millis(at).to_string(),
            client_id,
        },
    }
}

/// Sends `meeting.created` for a meeting `caller` just made, in the background:
/// the API answer must not wait on the app's endpoint.
pub(crate) fn meeting_created(shared: &Shared, caller: &Caller, meeting: &Value) {
    let Some(target) = shared.settings().webhook else {
        return;
    };
    let Some(m) = meeting.as_object() else {
        return;
    };
    let field = |k: &str| m.get(k).cloned().unwrap_or(Value::Null);
    let event = Event {
        event: "meeting.created",
        event_ts: shared.clock.now_ms(),
        payload: MeetingCreated {
            account_id: &caller.account,
            operator: format!("{}@sim.example", caller.user),
            operator_id: &caller.user,
            object: meeting_object(&field),
        },
    };
    let body = to_body(&event);
    let ts = shared.clock.now_secs();
    tokio::spawn(async move {
        if deliver(&target, ts, body).await.is_none() {
            tracing::debug!(url = %target.url, "meeting.created not delivered");
        }
    });
}

fn meeting_object(field: &dyn Fn(&str) -> Value) -> MeetingObject {
    MeetingObject {
        id: field("id"),
        uuid: field("uuid"),
        host_id: field("host_id"),
        topic: field("topic"),
        kind: field("type"),
        start_time: field("start_time"),
        duration: field("duration"),
        timezone: field("timezone"),
        join_url: field("join_url"),
    }
}

fn challenge_met(target: &Target, plain_token: &str, status: StatusCode, body: &[u8]) -> bool {
    if status != StatusCode::OK && status != StatusCode::NO_CONTENT {
        return false;
    }
    let Ok(answer) = serde_json::from_slice::<ChallengeAnswer>(body) else {
        return false;
    };
    answer.plain_token == plain_token
        && answer.encrypted_token == hmac_hex(&target.secret, plain_token.as_bytes())
}

// --- delivery ---

/// Serialises, signs and posts `event` now; the endpoint's status and body, or
/// `None` if it could not be reached in time.
async fn send<T: Serialize>(
    shared: &Shared,
    target: &Target,
    event: &T,
) -> Option<(StatusCode, Bytes)> {
    deliver(target, shared.clock.now_secs(), to_body(event)).await
}

/// One delivery, once: Zoom's retries (+5, +20, +60 min) are not imitated.
async fn deliver(target: &Target, ts_secs: u64, body: Vec<u8>) -> Option<(StatusCode, Bytes)> {
    let req = signed_request(target, ts_secs, body)?;
    // A client per event: events are rare, and nothing outlives the delivery.
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let exchange = async {
        let resp = client.request(req).await.ok()?;
        let status = resp.status();
        let body = resp.into_body().collect().await.ok()?.to_bytes();
        Some((status, body))
    };
    let answer = tokio::time::timeout(DELIVERY_TIMEOUT, Box::pin(exchange)).await;
    answer.ok().flatten()
}

fn signed_request(target: &Target, ts_secs: u64, body: Vec<u8>) -> Option<Request<Full<Bytes>>> {
    let signature = signature(&target.secret, ts_secs, &body);
    Request::builder()
        .method(Method::POST)
        .uri(target.url.clone())
        .header(CONTENT_TYPE, EVENT_CONTENT_TYPE)
        .header(USER_AGENT, ZOOM_USER_AGENT)
        .header("x-zm-request-id", request_id())
        .header("x-zm-request-timestamp", ts_secs.to_string())
        .header("x-zm-signature", signature)
        .header("x-zm-trackingid", reply::tracking_id())
        .body(Full::new(Bytes::from(body)))
        .ok()
}

/// The `x-zm-signature` value for `body` sent at `ts_secs`.
fn signature(secret: &str, ts_secs: u64, body: &[u8]) -> String {
    let mut message = format!("v0:{ts_secs}:").into_bytes();
    message.extend_from_slice(body);
    format!("v0={}", hmac_hex(secret, &message))
}

/// Lowercase hex HMAC-SHA256 of `data` keyed with `secret`.
fn hmac_hex(secret: &str, data: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(data);
    hex(&mac.finalize().into_bytes())
}

/// A random id shaped like a UUID (8-4-4-4-12 hex), as Zoom's request ids are.
fn request_id() -> String {
    let h = hex(&rand::random::<[u8; 16]>());
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn to_body<T: Serialize>(event: &T) -> Vec<u8> {
    // These are plain structs and `Value`s; serialising them cannot fail.
    serde_json::to_vec(event).unwrap_or_default()
}

// --- helpers ---

async fn read_json<T: for<'de> Deserialize<'de>>(req: Request<Incoming>) -> Option<T> {
    let body = echo::read_body(req.into_body(), MAX_CONTROL_BYTES).await;
    serde_json::from_slice(&body.bytes?).ok()
}

/// The client speaks plain HTTP only, so an https:// URL is refused up front.
fn plain_http_url(url: &str) -> Option<Uri> {
    let uri: Uri = url.parse().ok()?;
    (uri.scheme_str() == Some("http") && uri.authority().is_some()).then_some(uri)
}

fn bad_request(message: &str) -> Response<Body> {
    // Zoom's generic validation code, as the REST routes use it.
    reply::api_error(StatusCode::BAD_REQUEST, 300, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The signature, computed here without the module's helpers.
    fn expected(secret: &str, message: &str) -> String {
        let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("any key length");
        mac.update(message.as_bytes());
        let bytes = mac.finalize().into_bytes();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn signature_is_v0_hmac_of_timestamp_and_raw_body() {
        let body = br#"{"event":"meeting.created","event_ts":1739923528000}"#;
        let got = signature("s3cret", 1_739_923_528, body);
        let want = expected(
            "s3cret",
            r#"v0:1739923528:{"event":"meeting.created","event_ts":1739923528000}"#,
        );
        assert_eq!(got, format!("v0={want}"));
        assert_eq!(got.len(), 3 + 64);
        assert!(got[3..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            hmac_hex("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn challenge_answer_is_checked() {
        let target = Target {
            url: Uri::from_static("http://127.0.0.1:1/webhooks/zoom"),
            secret: "s3cret".into(),
        };
        let good = format!(
            r#"{{"plainToken":"abc","encryptedToken":"{}"}}"#,
            expected("s3cret", "abc")
        );
        assert!(challenge_met(
            &target,
            "abc",
            StatusCode::OK,
            good.as_bytes()
        ));
        assert!(!challenge_met(
            &target,
            "abd",
            StatusCode::OK,
            good.as_bytes()
        ));
        assert!(!challenge_met(
            &target,
            "abc",
            StatusCode::CREATED,
            good.as_bytes()
        ));
        assert!(!challenge_met(&target, "abc", StatusCode::OK, b"{}"));
    }

    #[test]
    fn request_id_looks_like_a_uuid() {
        let id = request_id();
        let lens: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(lens, [8, 4, 4, 4, 12]);
    }

    /// One webhook as the receiver saw it.
    type Seen = (http::HeaderMap, Bytes);

    /// A receiver that answers 200 to every POST and hands over what arrived.
    async fn receiver() -> (String, tokio::sync::mpsc::UnboundedReceiver<Seen>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!(
            "http://{}/webhooks/zoom",
            listener.local_addr().expect("addr")
        );
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let tx = tx.clone();
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let tx = tx.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|c| c.to_bytes())
                                .unwrap_or_default();
                            let _ = tx.send((parts.headers, body));
                            Ok::<_, std::convert::Infallible>(Response::new(
                                Full::new(Bytes::new()),
                            ))
                        }
                    });
                let io = hyper_util::rt::TokioIo::new(stream);
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new().serve_connection(io, service),
                );
            }
        });
        (url, rx)
    }

    async fn post(base: &str, path: &str, body: &str) -> Value {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let req = Request::post(format!("{base}{path}"))
            .body(Full::new(Bytes::from(body.to_owned())))
            .expect("request");
        let resp = client.request(req).await.expect("sim answers");
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        serde_json::from_slice(&bytes).expect("json")
    }

    #[tokio::test]
    async fn uninstall_sends_a_signed_app_deauthorized() {
        let sim = crate::sim::Sim::start(crate::sim::SimConfig::default())
            .await
            .expect("sim");
        let base = sim.base_url();
        let (url, mut seen) = receiver().await;
        let cfg = format!(r#"{{"url":"{url}","secret_token":"s3cret"}}"#);
        post(&base, "/_sim/webhooks", &cfg).await;

        let uninstall = format!(
            r#"{{"client_id":"{}","user_id":"u1"}}"#,
            crate::sim::DEFAULT_CLIENT_ID
        );
        let answer = post(&base, "/_sim/uninstall", &uninstall).await;
        assert_eq!(answer["delivered_status"], 200);

        let (headers, body) = seen.recv().await.expect("one event");
        let ts = headers["x-zm-request-timestamp"].to_str().expect("ascii");
        let message = format!("v0:{ts}:{}", std::str::from_utf8(&body).expect("utf-8"));
        assert_eq!(
            headers["x-zm-signature"],
            format!("v0={}", expected("s3cret", &message)).as_str()
        );
        assert_eq!(headers[USER_AGENT], ZOOM_USER_AGENT);
        let event: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(event["event"], "app_deauthorized");
        assert_eq!(event["payload"]["user_id"], "u1");
        assert_eq!(event["payload"]["client_id"], crate::sim::DEFAULT_CLIENT_ID);
        assert_eq!(
            event["payload"]["account_id"],
            crate::sim::DEFAULT_ACCOUNT_ID
        );
        sim.shutdown().await;
    }

    #[tokio::test]
    async fn uninstall_without_a_url_still_answers() {
        let sim = crate::sim::Sim::start(crate::sim::SimConfig::default())
            .await
            .expect("sim");
        let body = format!(
            r#"{{"client_id":"{}","account_id":"{}"}}"#,
            crate::sim::DEFAULT_CLIENT_ID,
            crate::sim::DEFAULT_ACCOUNT_ID
        );
        let answer = post(&sim.base_url(), "/_sim/uninstall", &body).await;
        assert_eq!(answer["delivered_status"], Value::Null);
        let answer = post(&sim.base_url(), "/_sim/webhooks/validate", "").await;
        assert_eq!(answer["valid"], false);
        sim.shutdown().await;
    }
}
