//! Plain HTTP to a grantmux process a test started itself (in process,
//! `grantmux::harness::Harness::call` does the same).

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub(crate) type Http = Client<HttpConnector, Full<Bytes>>;

pub(crate) fn http() -> Http {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends a request and reads the whole answer.
pub(crate) async fn send(
    http: &Http,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<(StatusCode, Bytes), String> {
    let resp = http
        .request(request(method, url, headers, body)?)
        .await
        .map_err(|e| format!("{e:?}"))?;
    read(resp).await
}

/// A request with `headers` and the whole `body`, for a caller that sends it
/// on its own terms (under a timeout, say).
pub(crate) fn request(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<Request<Full<Bytes>>, String> {
    let mut req = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.body(Full::new(body.into())).map_err(|e| e.to_string())
}

/// Reads the whole answer.
pub(crate) async fn read(resp: Response<Incoming>) -> Result<(StatusCode, Bytes), String> {
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok((status, body.to_bytes()))
}

/// `Authorization: Basic` with an app's credentials, as Zoom's token endpoint wants them.
pub(crate) fn basic(client_id: &str, secret: &str) -> String {
    use base64::Engine as _;
    let pair = format!("{client_id}:{secret}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}
