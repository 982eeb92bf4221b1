//! `grantmux admin`: the admin API from a terminal, so that operators need not
//! curl `/grants` and read raw JSON. Each command is one call (`status`: three)
//! to a running grantmux's admin listener, printed as a plain aligned table, or
//! with `--json` as the API's own JSON.
//!
//! The address comes from `--admin`, or else from `listen.admin` in the config
//! file. Only that one key is read, not the whole config validated as `serve`
//! does: validation needs the apps' secrets and the store's files, which the
//! shell an operator runs this from usually lacks.
//!
//! Exit codes: 0 ok; 1 the API answered an error (its message is printed);
//! 2 nothing answered at the admin address; 64 a bad `--admin` URL or config.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

use self::render::{pretty, GrantSummary, Probe};
use crate::config::DEFAULT_ADMIN_ADDR;

mod render;
#[cfg(test)]
mod tests;

/// Read for `listen.admin` when `--config` is not given (as `serve` and `check` default).
const DEFAULT_CONFIG: &str = "proxy.toml";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longer than a forced refresh can take: it waits for Zoom, which grantmux
/// gives `zoom.response_timeout` (60 s by default).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(90);

/// `grantmux admin [--admin URL] [--config FILE] [--json] <command>`.
#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    /// The admin listener, e.g. `http://127.0.0.1:9090` [default: `listen.admin` of the config]
    #[arg(long, global = true, value_name = "URL")]
    pub admin: Option<String>,
    /// The config whose `listen.admin` is the default address [default: proxy.toml if it
    /// exists, else 127.0.0.1:9090]
    #[arg(long, short, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the admin API's JSON (pretty) instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// Every grant: id, state, account, bindings, expiry, last refresh, unpersisted.
    Grants,
    /// One grant's details (ID as `grants` lists it, e.g. `sim-client/user:abc`).
    Grant { id: String },
    /// Refresh a grant now: a real rotation at Zoom, at most once per grant per 5 s.
    Refresh { id: String },
    /// Revoke every caller binding of a user grant: the virtual tokens its callers
    /// hold are refused. Zoom is not called, and static callers keep their keys.
    Revoke { id: String },
    /// Liveness, readiness, and the grants by state.
    Status,
    /// Rate-limit budgets and daily closures.
    Ratelimits,
    /// Webhook and notification queues: pending, dead, the oldest one's attempts.
    Deliveries,
    /// A queue's dead letters (QUEUE as `deliveries` lists it, e.g. `target:billing`).
    Dead { queue: String },
}

/// Why a command failed, by who is at fault; [`AdminCliError::exit_code`] tells them apart.
#[derive(Debug, thiserror::Error)]
pub enum AdminCliError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot reach the admin API at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{what}: HTTP {status}: {message}")]
    Api {
        what: String,
        status: StatusCode,
        message: String,
        /// The answer's JSON, printed as is under `--json`.
        body: Option<Value>,
    },
}

/// A plain-HTTP client for one admin listener.
#[derive(Debug)]
struct AdminApi {
    /// `http://host:port`, without a trailing slash.
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// An answer read to the end.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    body: Bytes,
}

/// Runs one `grantmux admin` command, printing its output on stdout.
pub async fn run(args: AdminArgs) -> Result<(), AdminCliError> {
    let api = AdminApi::new(admin_url(&args)?);
    let json = args.json;
    let result = match &args.command {
        AdminCommand::Grants => show(&api, Method::GET, "/grants", json, render::grants).await,
        AdminCommand::Grant { id } => {
            show(&api, Method::GET, &grant_path(id, ""), json, render::grant).await
        }
        AdminCommand::Refresh { id } => {
            let path = grant_path(id, "/refresh");
            show(&api, Method::POST, &path, json, render::refresh).await
        }
        AdminCommand::Revoke { id } => {
            let path = grant_path(id, "/revoke");
            show(&api, Method::POST, &path, json, render::revoke).await
        }
        AdminCommand::Status => status(&api, json).await,
        AdminCommand::Ratelimits => {
            show(&api, Method::GET, "/ratelimits", json, render::ratelimits).await
        }
        AdminCommand::Deliveries => {
            show(&api, Method::GET, "/deliveries", json, render::deliveries).await
        }
        AdminCommand::Dead { queue } => {
            let queue: String = form_urlencoded::byte_serialize(queue.as_bytes()).collect();
            let path = format!("/deliveries/{queue}/dead");
            show(&api, Method::GET, &path, json, render::dead_letters).await
        }
    };
    match result {
        Ok(out) => {
            print!("{out}");
            Ok(())
        }
        Err(error) => {
            if let (true, AdminCliError::Api { body: Some(b), .. }) = (json, &error) {
                print!("{}", pretty(b));
            }
            Err(error)
        }
    }
}

/// GETs or POSTs `path` and renders its JSON, or passes it through.
async fn show(
    api: &AdminApi,
    method: Method,
    path: &str,
    json: bool,
    view: fn(&Value) -> String,
) -> Result<String, AdminCliError> {
    let value = api.json(method, path).await?;
    Ok(if json { pretty(&value) } else { view(&value) })
}

/// `/healthz`, `/readyz`, `/readyz/store` and `/grants` in one view. A probe
/// that fails is an error (exit 1), printed after the view so that the reasons
/// are seen with it.
async fn status(api: &AdminApi, json: bool) -> Result<String, AdminCliError> {
    let mut probes = Vec::new();
    for path in ["/healthz", "/readyz", "/readyz/store"] {
        let reply = api.call(Method::GET, path).await?;
        // A grantmux from before `/readyz/store` has none: left out, not failed.
        if path == "/readyz/store" && reply.status == StatusCode::NOT_FOUND {
            continue;
        }
        probes.push(Probe::new(path, reply.status, &reply.body));
    }
    let grants = GrantSummary::of(&api.json(Method::GET, "/grants").await?);
    let view = if json {
        let mut all = serde_json::Map::new();
        all.insert("admin".into(), api.base.clone().into());
        for p in &probes {
            let answer = json!({ "status": p.status.as_u16(), "body": p.body });
            all.insert(p.name().into(), answer);
        }
        all.insert("grants".into(), grants.to_json());
        pretty(&Value::Object(all))
    } else {
        render::status(&api.base, &probes, &grants)
    };
    let Some(failed) = probes.iter().find(|p| !p.status.is_success()) else {
        return Ok(view);
    };
    print!("{view}");
    Err(AdminCliError::Api {
        what: format!("GET {}", failed.path),
        status: failed.status,
        message: failed.summary(),
        body: None,
    })
}

/// `--admin`, or `http://` + `listen.admin` of the config.
fn admin_url(args: &AdminArgs) -> Result<String, AdminCliError> {
    match &args.admin {
        Some(url) => base_url(url),
        None => Ok(format!(
            "http://{}",
            configured_admin(args.config.as_deref())?
        )),
    }
}

/// An `http://` URL with an authority; a bare `host:port` gets the scheme.
fn base_url(raw: &str) -> Result<String, AdminCliError> {
    let url = if raw.contains("://") {
        raw.to_owned()
    } else {
        format!("http://{raw}")
    };
    let bad = |why: String| AdminCliError::Usage(format!("--admin {raw}: {why}"));
    let uri: Uri = url.parse().map_err(|e| bad(format!("{e}")))?;
    if uri.scheme_str() != Some("http") {
        return Err(bad(
            "the admin listener speaks plain HTTP: use http://".into()
        ));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("no host".into()));
    }
    // `Uri` takes any text after the host's colon; a port must be a number.
    let authority = uri.authority().map_or("", |a| a.as_str());
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.ends_with(']'));
    if has_port && uri.port_u16().is_none() {
        return Err(bad("the port is not a number".into()));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// `listen.admin` from `config`, or from `proxy.toml`, or the default when
/// no config was named and there is no `proxy.toml` here.
fn configured_admin(config: Option<&Path>) -> Result<SocketAddr, AdminCliError> {
    #[derive(Default, serde::Deserialize)]
    struct AdminOnly {
        #[serde(default)]
        listen: ListenAdmin,
    }
    #[derive(Default, serde::Deserialize)]
    struct ListenAdmin {
        admin: Option<String>,
    }
    let path = config.unwrap_or(Path::new(DEFAULT_CONFIG));
    let bad = |why: String| AdminCliError::Usage(format!("{}: {why}", path.display()));
    let file: AdminOnly = match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|e| bad(e.to_string()))?,
        Err(e) if config.is_none() && e.kind() == std::io::ErrorKind::NotFound => {
            AdminOnly::default()
        }
        Err(e) => return Err(bad(e.to_string())),
    };
    let raw = file.listen.admin.as_deref().unwrap_or(DEFAULT_ADMIN_ADDR);
    let mut addr: SocketAddr = raw.trim().parse().map_err(|_| {
        bad(format!(
            "listen.admin: {raw:?} is not an IP address and port"
        ))
    })?;
    if addr.port() == 0 {
        return Err(bad(
            "listen.admin has port 0 (picked at start): pass --admin".into(),
        ));
    }
    // A listener on every address is reached on loopback.
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    Ok(addr)
}

/// `/grants/{id}{rest}`, the id percent-encoded as admin decodes it.
fn grant_path(id: &str, rest: &str) -> String {
    let id: String = form_urlencoded::byte_serialize(id.as_bytes()).collect();
    format!("/grants/{id}{rest}")
}

// === impl AdminApi ===

impl AdminApi {
    fn new(base: String) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Self { base, client }
    }

    /// Sends `method path` with no body and no `Content-Type`, as admin's
    /// browser rule asks of a write, and reads the whole answer.
    async fn call(&self, method: Method, path: &str) -> Result<Reply, AdminCliError> {
        let unreachable = |reason: String| AdminCliError::Unreachable {
            url: self.base.clone(),
            reason,
        };
        let req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::USER_AGENT,
                concat!("grantmux-admin/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(Bytes::new()))
            .map_err(|e| AdminCliError::Usage(format!("{}{path}: {e}", self.base)))?;
        let exchange = async {
            let resp = self.client.request(req).await.map_err(|e| causes(&e))?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.map_err(|e| causes(&e))?;
            Ok::<_, String>(Reply {
                status: parts.status,
                body: body.to_bytes(),
            })
        };
        match tokio::time::timeout(ANSWER_TIMEOUT, exchange).await {
            Ok(reply) => reply.map_err(unreachable),
            Err(_) => Err(unreachable(format!(
                "no answer within {}s",
                ANSWER_TIMEOUT.as_secs()
            ))),
        }
    }

    /// The answer's JSON; an error answer becomes [`AdminCliError::Api`] with its message.
    async fn json(&self, method: Method, path: &str) -> Result<Value, AdminCliError> {
        // Grant ids shown as `grants` lists them, not percent-encoded.
        let query = format!("p={path}");
        let decoded = form_urlencoded::parse(query.as_bytes()).next();
        let what = format!("{method} {}", decoded.map_or(path.into(), |(_, p)| p));
        let reply = self.call(method, path).await?;
        let value: Option<Value> = serde_json::from_slice(&reply.body).ok();
        match value {
            Some(value) if reply.status.is_success() => Ok(value),
            body => Err(AdminCliError::Api {
                what,
                status: reply.status,
                message: message_of(body.as_ref(), &reply.body),
                body,
            }),
        }
    }
}

/// An error answer's message: admin's `error`, a Zoom-style `message`, or the text.
fn message_of(json: Option<&Value>, body: &Bytes) -> String {
    let field = |name: &str| json.and_then(|v| v[name].as_str()).map(str::to_owned);
    field("error")
        .or_else(|| field("message"))
        .unwrap_or_else(|| match String::from_utf8_lossy(body).trim() {
            "" => "(empty answer)".to_owned(),
            text => text.to_owned(),
        })
}

/// An error and its sources, each once: hyper-util's own text ("client error
/// (Connect)") says little; the OS error beneath it says why.
fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

// === impl AdminCliError ===

impl AdminCliError {
    /// 1 when the API answered an error, 2 when nothing answered, 64 (`EX_USAGE`) for bad input.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Api { .. } => 1,
            Self::Unreachable { .. } => 2,
            Self::Usage(_) => 64,
        }
    }
}
