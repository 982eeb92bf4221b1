//! What a caller reads when something inside fails: fixed text chosen by who is
//! at fault, in Zoom's shapes, and never the cause's own text (OS errors, store
//! errors), which goes to the log only.

use std::sync::Arc;

use grantmux::harness::{Answer, Harness};
use grantmux::sim::SimConfig;
use grantmux::store::MemoryStore;
use http::Method;

use crate::support::{self, b64, get, ACCOUNT, CLIENT, S2S_KEY, SECRET};

/// Text that must never reach a caller: the OS's, hyper's and the store's.
const INTERNAL: &[&str] = &[
    "os error",
    "Connection refused",
    "connection refused",
    "tcp connect",
    "client error",
    "store unavailable",
    "writes disabled",
    "127.0.0.1",
];

/// A loopback address nothing listens on: bound, then closed.
fn dead_url() -> http::Uri {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}").parse().expect("uri")
}

fn assert_no_internal_text(answer: &Answer) {
    let text = String::from_utf8_lossy(&answer.body);
    for internal in INTERNAL {
        assert!(
            !text.contains(internal),
            "{internal:?} reached the caller: {text}"
        );
    }
}

/// `POST /oauth/token` through grantmux with the simulator app's credentials.
async fn token(h: &Harness, base: &str, form: &[(&str, &str)]) -> Answer {
    let form = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let basic = format!("Basic {}", b64(&format!("{CLIENT}:{SECRET}")));
    h.call(
        Method::POST,
        &format!("{base}/oauth/token"),
        &[
            ("authorization", &basic),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        form,
    )
    .await
    .expect("grantmux answers")
}

#[tokio::test]
async fn zoom_api_refusing_connections_gets_502_with_fixed_text() {
    // Tokens come from the simulator; the API is a port nothing listens on.
    let dead = dead_url();
    let h = support::start(SimConfig::default(), |c| c.zoom.api_url = dead).await;
    let a = get(&h, "/v2/users/me", S2S_KEY).await;
    assert_eq!(a.status, 502, "{:?}", a.body);
    assert_eq!(
        a.json(),
        serde_json::json!({"code": 502, "message": "grantmux: Zoom could not be reached."})
    );
    assert_no_internal_text(&a);
    h.shutdown().await;
}

#[tokio::test]
async fn zoom_refusing_every_connection_gets_503_with_fixed_text() {
    // No token can be had: the mint's connection error stays in the log.
    let dead = dead_url();
    let h = support::start(SimConfig::default(), |c| {
        c.zoom.api_url = dead.clone();
        c.zoom.oauth_url = dead;
    })
    .await;
    let a = get(&h, "/v2/users/me", S2S_KEY).await;
    assert_eq!(a.status, 503, "{:?}", a.body);
    assert_eq!(
        a.json(),
        serde_json::json!({
            "code": 503,
            "message": "grantmux: no valid Zoom access token is available right now; try again shortly."
        })
    );
    assert_no_internal_text(&a);

    // The token endpoint says the same in Zoom's OAuth shape.
    let base = h.proxy_url("");
    let a = token(
        &h,
        &base,
        &[
            ("grant_type", "account_credentials"),
            ("account_id", ACCOUNT),
        ],
    )
    .await;
    assert_eq!(a.status, 503, "{:?}", a.body);
    assert_eq!(
        a.json(),
        serde_json::json!({
            "reason": "grantmux: no valid Zoom access token is available right now; try again shortly.",
            "error": "server_error"
        })
    );
    assert_no_internal_text(&a);

    // A code exchange is the caller's own call to Zoom: Zoom's fault, 502.
    let a = token(
        &h,
        &base,
        &[
            ("grant_type", "authorization_code"),
            ("code", "some-code"),
            ("redirect_uri", "http://localhost/cb"),
        ],
    )
    .await;
    assert_eq!(a.status, 502, "{:?}", a.body);
    assert_eq!(
        a.json(),
        serde_json::json!({"reason": "grantmux: Zoom could not be reached.", "error": "server_error"})
    );
    assert_no_internal_text(&a);
    h.shutdown().await;
}

#[tokio::test]
async fn a_failing_store_gets_503_with_fixed_text() {
    let store = Arc::new(MemoryStore::new());
    let h = Harness::start_with_store(SimConfig::default(), Some(store.clone()), |_| {})
        .await
        .expect("harness starts");
    store.set_fail_writes(true);
    // The token is minted (and held in memory), but the caller's binding cannot be written.
    let base = h.proxy_url("");
    let a = token(
        &h,
        &base,
        &[
            ("grant_type", "account_credentials"),
            ("account_id", ACCOUNT),
        ],
    )
    .await;
    assert_eq!(a.status, 503, "{:?}", a.body);
    assert_eq!(
        a.json(),
        serde_json::json!({
            "reason": "grantmux: the grant store is unavailable; try again shortly.",
            "error": "server_error"
        })
    );
    assert_no_internal_text(&a);
    store.set_fail_writes(false);
    let a = token(
        &h,
        &base,
        &[
            ("grant_type", "account_credentials"),
            ("account_id", ACCOUNT),
        ],
    )
    .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    h.shutdown().await;
}
