// The properties each fuzz target checks, shared by the targets
// (`fuzz_targets/*.rs`) and by `tests/fuzz_corpus.rs`, which replays the
// committed corpus and every crash found through them under `cargo test`.
//
// Each check takes raw bytes, must never panic on any input, and panics (so
// libFuzzer records a crash) when a property a user relies on breaks.

use std::io;
use std::path::{Path, PathBuf};

use grantmux::config::{Config, Env};
use grantmux::grants::vtoken::{Claims, Kind, Signer, VerifyError};
use grantmux::oauth::{Credentials, TokenRequest};
use grantmux::proxy::headers;
use grantmux::sim::{OfflineTokenEndpoint, SimConfig, DEFAULT_CLIENT_SECRET};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Every value the fuzzed config's environment hands out contains this; no
/// error text and no `Debug` output may show it.
const ENV_SECRET: &str = "s3cr3t-from-env";

/// Splits an input into `n` parts at newlines; the last part keeps the rest.
fn split(data: &[u8], n: usize) -> Vec<&[u8]> {
    let mut parts: Vec<&[u8]> = data.splitn(n, |b| *b == b'\n').collect();
    parts.resize(n, &[]);
    parts
}

fn header_value(bytes: &[u8]) -> Option<HeaderValue> {
    (!bytes.is_empty())
        .then(|| HeaderValue::from_bytes(bytes).ok())
        .flatten()
}

/// Lines: `Authorization`, `Content-Type`, query, then the body.
fn token_request_parts(data: &[u8]) -> (HeaderMap, Option<String>, Vec<u8>) {
    let parts = split(data, 4);
    let mut headers = HeaderMap::new();
    if let Some(v) = header_value(parts[0]) {
        headers.insert(header::AUTHORIZATION, v);
    }
    if let Some(v) = header_value(parts[1]) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    let query = (!parts[2].is_empty()).then(|| String::from_utf8_lossy(parts[2]).into_owned());
    (headers, query, parts[3].to_vec())
}

/// grantmux's `/oauth/token` and `/oauth/revoke` request reading.
pub fn token_request(data: &[u8]) {
    let (headers, query, body) = token_request_parts(data);
    let Ok(request) = TokenRequest::parse(&headers, query.as_deref(), &body) else {
        return;
    };
    // Credentials never stay among the parameters, which are forwarded to Zoom.
    assert!(!request.params.contains_key("client_id"));
    assert!(!request.params.contains_key("client_secret"));
    assert!(!request.credentials.client_id().is_empty());
    // A secret never shows in Debug output: it reads the same whatever the secret.
    if let Credentials::Confidential { client_id, .. } = &request.credentials {
        let other = Credentials::Confidential {
            client_id: client_id.clone(),
            secret: "another secret".into(),
        };
        assert_eq!(format!("{:?}", request.credentials), format!("{other:?}"));
    }
    if request.json_body {
        // A JSON body is never read as a form.
        let from_query = query.as_deref().map_or(0, |q| {
            form_urlencoded::parse(q.as_bytes())
                .filter(|(k, _)| k != "client_id" && k != "client_secret")
                .map(|(k, _)| k)
                .collect::<std::collections::HashSet<_>>()
                .len()
        });
        assert_eq!(request.params.len(), from_query);
    }
}

fn signer() -> Signer {
    Signer::new([7; 32])
}

/// The virtual-token verifier: any input is answered, a token it signed
/// verifies to the same claims, and no one-byte change of it verifies.
pub fn vtoken(data: &[u8]) {
    let signer = signer();
    let text = String::from_utf8_lossy(data);
    if let Ok(claims) = signer.verify(&text) {
        // Only a token this key signed verifies; signing its claims again
        // must give a token that verifies to the same claims.
        let again = signer.sign(&claims);
        assert_eq!(signer.verify(again.expose()).as_ref(), Ok(&claims));
    }
    let parts = split(data, 4);
    let field = |i: usize| String::from_utf8_lossy(parts[i]).into_owned();
    let number = |i: usize| {
        parts[i]
            .iter()
            .fold(0u64, |n, b| n.wrapping_mul(31).wrapping_add(u64::from(*b)))
    };
    let claims = Claims {
        gid: field(0),
        bid: field(1),
        typ: if number(2) % 2 == 0 {
            Kind::Access
        } else {
            Kind::Refresh
        },
        iat: number(2),
        exp: (number(3) % 3 != 0).then(|| number(3)),
        jti: field(3),
    };
    let token = signer.sign(&claims);
    assert_eq!(signer.verify(token.expose()).as_ref(), Ok(&claims));
    // Another key's token is never ours.
    let other = Signer::new([8; 32]).sign(&claims);
    assert_eq!(signer.verify(other.expose()), Err(VerifyError::Tampered));
    // Change one byte, chosen by the input: never accepted.
    let mut bytes = token.expose().as_bytes().to_vec();
    let at = usize::try_from(number(0)).unwrap_or(0) % bytes.len();
    let by = data.first().copied().unwrap_or(1).max(1);
    bytes[at] = bytes[at].wrapping_add(by);
    if let Ok(changed) = String::from_utf8(bytes) {
        assert!(signer.verify(&changed).is_err(), "a changed token verified");
    }
}

/// An environment where every variable is set (to a value carrying
/// [`ENV_SECRET`]) and no file exists.
struct FuzzEnv {
    base: PathBuf,
}

impl Env for FuzzEnv {
    fn var(&self, name: &str) -> Option<String> {
        Some(format!("{ENV_SECRET}-{name}"))
    }

    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} is not there", path.display()),
        ))
    }

    fn base_dir(&self) -> &Path {
        &self.base
    }
}

/// Config loading and validation: any text is accepted or refused with an
/// error, and neither the error nor an accepted config's `Debug` shows a
/// secret taken from the environment.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = FuzzEnv {
        base: PathBuf::from("/nonexistent"),
    };
    match Config::from_toml_str(text, &env) {
        Ok(config) => assert!(!format!("{config:?}").contains(ENV_SECRET)),
        Err(error) => {
            assert!(!error.to_string().contains(ENV_SECRET), "{error}");
            assert!(!format!("{error:?}").contains(ENV_SECRET));
        }
    }
}

/// Lines `name: value` become request headers; a first line starting with
/// `keep:` lists forwarding headers to keep; `bearer:` sets the real token.
pub fn header_rules(data: &[u8]) {
    let mut headers = HeaderMap::new();
    let mut keep = Vec::new();
    let mut bearer = None;
    for line in data.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name == b"keep" {
            keep.extend(
                value
                    .split(|b| *b == b',')
                    .filter_map(|n| HeaderName::from_bytes(n.trim_ascii()).ok()),
            );
        } else if name == b"bearer" {
            bearer = HeaderValue::from_bytes(value).ok();
        } else if let (Ok(n), Ok(v)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            headers.append(n, v);
        }
    }
    let before = headers.clone();
    let named_in_connection: Vec<HeaderName> = before
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    let host = HeaderValue::from_static("api.zoom.us");
    headers::prepare_request(&mut headers, &keep, &host, bearer.as_ref());

    assert_eq!(
        headers.get_all(header::HOST).iter().collect::<Vec<_>>(),
        [&host]
    );
    if let Some(bearer) = &bearer {
        assert_eq!(
            headers
                .get_all(header::AUTHORIZATION)
                .iter()
                .collect::<Vec<_>>(),
            [bearer]
        );
    }
    // RFC 9110 §7.6.1's hop-by-hop headers, written out here rather than taken
    // from the code under test.
    let hop = [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
    ];
    for name in headers.keys() {
        assert!(!hop.contains(name), "hop-by-hop {name} forwarded");
        assert!(
            !headers::is_forwarding(name) || keep.contains(name),
            "forwarding header {name} forwarded"
        );
        let replaced =
            *name == header::HOST || (*name == header::AUTHORIZATION && bearer.is_some());
        assert!(
            replaced || !named_in_connection.contains(name),
            "{name} named in Connection, forwarded"
        );
    }
    // Every other header arrives whole, values in order.
    for name in before.keys() {
        let dropped = named_in_connection.contains(name)
            || headers::is_forwarding(name) && !keep.contains(name)
            || !headers.contains_key(name);
        let replaced =
            *name == header::HOST || (*name == header::AUTHORIZATION && bearer.is_some());
        if !dropped && !replaced {
            let a: Vec<_> = before.get_all(name).iter().collect();
            let b: Vec<_> = headers.get_all(name).iter().collect();
            assert_eq!(a, b, "{name} changed");
        }
    }
    // End-to-end headers that are not forwarding headers are never dropped.
    for name in before.keys() {
        let hop_like = named_in_connection.contains(name) || hop.contains(name);
        if !hop_like && !headers::is_forwarding(name) {
            assert!(headers.contains_key(name), "{name} dropped");
        }
    }
}

/// The simulator's token endpoint. `{CODE}` in the input becomes a code just
/// issued for `https://app.example/cb`, `{BASIC}` the default app's
/// `Authorization` value, `{REFRESH}` a refresh token from a first exchange.
/// It answers 200, 400 or 401 in Zoom's JSON shape, never shows the client
/// secret the request did not carry, and a 200 carries tokens.
pub fn sim_token(data: &[u8]) {
    let sim = OfflineTokenEndpoint::new(SimConfig::default());
    let basic = {
        use base64::Engine as _;
        let pair = format!(
            "{}:{}",
            grantmux::sim::DEFAULT_CLIENT_ID,
            DEFAULT_CLIENT_SECRET
        );
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    };
    let redirect = "https://app.example/cb";
    let refresh = {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&basic).expect("ascii"),
        );
        let code = sim.issue_code(redirect);
        let form = format!(
            "grant_type=authorization_code&code={code}&redirect_uri={}",
            form_urlencoded::byte_serialize(redirect.as_bytes()).collect::<String>()
        );
        let (status, body) = sim.answer(&h, None, form.as_bytes());
        assert_eq!(status, http::StatusCode::OK);
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        v["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .to_owned()
    };
    let text = String::from_utf8_lossy(data)
        .replace("{CODE}", &sim.issue_code(redirect))
        .replace("{BASIC}", &basic)
        .replace("{REFRESH}", &refresh);
    let (headers, query, body) = token_request_parts(text.as_bytes());
    let (status, answer) = sim.answer(&headers, query.as_deref(), &body);
    assert!(
        [200, 400, 401].contains(&status.as_u16()),
        "status {status}"
    );
    let value: serde_json::Value = serde_json::from_slice(&answer).expect("a JSON answer");
    // Zoom quotes a bad code back ("Invalid authorization code …"), so a secret
    // the request itself carried may come back; one it did not carry never may.
    if !text.contains(DEFAULT_CLIENT_SECRET) {
        assert!(!String::from_utf8_lossy(&answer).contains(DEFAULT_CLIENT_SECRET));
    }
    if status == 200 {
        assert!(value["access_token"].is_string(), "{value}");
    } else {
        assert!(
            value["error"].is_string() && value["reason"].is_string(),
            "{value}"
        );
    }
}
