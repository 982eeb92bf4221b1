//! A small HTTP/1 client and OAuth helpers for the simulator tests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use grantmux::sim::{Sim, SimConfig, SimHandle};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

pub(crate) const CLIENT: &str = "sim-client";
pub(crate) const SECRET: &str = "sim-secret";
pub(crate) const REDIRECT: &str = "http://localhost/cb";

pub(crate) type Http = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A running sim and a client for it.
pub(crate) struct Fixture {
    pub(crate) sim: SimHandle,
    pub(crate) http: Http,
    pub(crate) base: String,
}

/// An answer read to the end.
#[derive(Debug)]
pub(crate) struct Resp {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Resp {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .expect("ascii header")
    }

    /// Status and JSON body together, for one-line assertions.
    pub(crate) fn pair(&self) -> (u16, Value) {
        (self.status.as_u16(), self.json())
    }
}

/// An HTTP/1 client that trusts `roots` (nothing if `None`).
pub(crate) fn client(roots: Option<rustls::RootCertStore>) -> Http {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = roots.unwrap_or_else(rustls::RootCertStore::empty);
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(connector)
}

pub(crate) async fn start(cfg: SimConfig) -> Fixture {
    let sim = Sim::start(cfg).await.expect("sim starts");
    let base = sim.base_url();
    Fixture {
        sim,
        http: client(None),
        base,
    }
}

pub(crate) async fn start_default() -> Fixture {
    start(SimConfig::default()).await
}

pub(crate) fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

impl Fixture {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends `req`, returning the transport error if there is no answer.
    pub(crate) async fn try_send(&self, req: Request<Full<Bytes>>) -> Result<Resp, String> {
        let resp = self.http.request(req).await.map_err(|e| format!("{e:?}"))?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.map_err(|e| format!("{e:?}"))?;
        Ok(Resp {
            status: parts.status,
            headers: parts.headers,
            body: body.to_bytes(),
        })
    }

    pub(crate) async fn send(&self, req: Request<Full<Bytes>>) -> Resp {
        self.try_send(req).await.expect("an answer")
    }

    /// A request with optional `Authorization` value and body.
    pub(crate) fn request(
        &self,
        method: Method,
        path: &str,
        auth: Option<&str>,
        body: &str,
    ) -> Request<Full<Bytes>> {
        let mut b = Request::builder().method(method).uri(self.url(path));
        if let Some(auth) = auth {
            b = b.header("authorization", auth);
        }
        b.body(Full::new(Bytes::from(body.to_owned())))
            .expect("valid request")
    }

    /// `POST /oauth/token` with Basic auth and a form body.
    pub(crate) async fn token(&self, form: &str) -> Resp {
        self.token_as(CLIENT, SECRET, form).await
    }

    pub(crate) async fn token_as(&self, id: &str, secret: &str, form: &str) -> Resp {
        let mut req = self.request(Method::POST, "/oauth/token", Some(&basic(id, secret)), form);
        req.headers_mut().insert(
            "content-type",
            "application/x-www-form-urlencoded".parse().expect("header"),
        );
        self.send(req).await
    }

    /// `GET` with a bearer token.
    pub(crate) async fn api_get(&self, path: &str, token: &str) -> Resp {
        let req = self.request(Method::GET, path, Some(&format!("Bearer {token}")), "");
        self.send(req).await
    }

    /// Runs `/oauth/authorize` over HTTP and returns the code from the redirect.
    pub(crate) async fn authorize(&self, query: &str) -> String {
        let resp = self
            .send(self.request(Method::GET, &format!("/oauth/authorize?{query}"), None, ""))
            .await;
        assert_eq!(resp.status, StatusCode::FOUND, "{:?}", resp.body);
        let location = resp.header("location");
        let (_, q) = location.split_once('?').expect("query in location");
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .expect("code in location")
    }

    /// Authorizes `user` and exchanges the code: the token answer as JSON.
    pub(crate) async fn login(&self, user: &str) -> Value {
        let code = self.sim.issue_code(CLIENT, user, REDIRECT);
        let resp = self.exchange(&code).await;
        assert_eq!(resp.status, StatusCode::OK, "{:?}", resp.body);
        resp.json()
    }

    pub(crate) async fn exchange(&self, code: &str) -> Resp {
        let form = form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
        ]);
        self.token(&form).await
    }

    pub(crate) async fn refresh(&self, refresh_token: &str) -> Resp {
        self.token(&form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ]))
        .await
    }

    pub(crate) async fn s2s(&self) -> Resp {
        self.token("grant_type=account_credentials&account_id=sim-account")
            .await
    }
}

pub(crate) fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// A string field of a JSON answer.
pub(crate) fn field(v: &Value, name: &str) -> String {
    v[name]
        .as_str()
        .unwrap_or_else(|| panic!("no string {name} in {v}"))
        .to_owned()
}

pub(crate) fn invalid_token() -> (u16, Value) {
    (
        401,
        serde_json::json!({"code": 124, "message": "Invalid access token."}),
    )
}

pub(crate) fn invalid_grant() -> (u16, Value) {
    (
        400,
        serde_json::json!({"reason": "Invalid Token!", "error": "invalid_grant"}),
    )
}

/// Polls `done` every few milliseconds until it holds; panics naming `what` after 10 s.
/// For state the sim reaches on its own time (a request it is still handling).
pub(crate) async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
