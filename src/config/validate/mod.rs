//! Stage two: the raw [`FileConfig`] checked and turned into a [`Config`], section by section.
//!
//! This is a function and not `TryFrom<FileConfig>` because it needs an [`Env`] to
//! read secrets and resolve paths. Defaults come only from the `DEFAULT_*` constants.

use std::collections::HashMap;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::env::Env;
use super::error::ConfigError;
use super::file::{
    FileApp, FileCaller, FileConfig, FileGrant, FileIntercept, FileListen, FileLog, FileProxy,
    FileRateLimit, FileRefresh, FileStore, FileZoom,
};
use super::values::{
    duration, invalid, nonzero, nonzero_duration, one_secret, public_url, read_nonempty, resolve,
    socket_addr, target_url, upstream_url,
};
use super::*;

mod callers;
mod intercept;
mod rate_limit;
mod store;
mod webhooks;

use self::callers::callers;
use self::intercept::intercept;
use self::store::store;

pub(super) fn config(file: FileConfig, env: &dyn Env) -> Result<Config, ConfigError> {
    let listen = listen(file.listen)?;
    let zoom = zoom(file.zoom, env)?;
    let apps = apps(file.apps, env)?;
    let store = store(file.store, env)?;
    let refresh = refresh(&file.refresh)?;
    let proxy = proxy(&file.proxy)?;
    let callers = callers(file.callers, &apps, env)?;
    let intercept = intercept(file.intercept, &listen, &store, env)?;
    let rate_limit = rate_limit::rate_limit(&file.rate_limit)?;
    let log = log(file.log)?;
    let webhooks = webhooks::webhooks(
        &file.webhooks,
        file.webhook_targets,
        file.notify,
        (&apps, &listen),
        env,
    )?;
    Ok(Config {
        listen,
        zoom,
        apps,
        store,
        refresh,
        proxy,
        callers,
        intercept,
        rate_limit,
        log,
        webhooks,
    })
}

fn log(raw: FileLog) -> Result<Log, ConfigError> {
    if let Some(level) = &raw.level {
        if let Err(error) = tracing_subscriber::EnvFilter::try_new(level) {
            return Err(invalid("log.level", &format!("not a log filter ({error})")));
        }
    }
    Ok(Log { level: raw.level })
}

fn listen(raw: FileListen) -> Result<Listen, ConfigError> {
    let proxy = socket_addr("listen.proxy", raw.proxy.as_deref(), DEFAULT_PROXY_ADDR)?;
    let admin = socket_addr("listen.admin", raw.admin.as_deref(), DEFAULT_ADMIN_ADDR)?;
    if proxy == admin && proxy.port() != 0 {
        return Err(invalid("listen.admin", "must differ from listen.proxy"));
    }
    let public_url = match raw.public_url {
        Some(url) => public_url("listen.public_url", &url)?,
        None => format!("http://{proxy}"),
    };
    Ok(Listen {
        proxy,
        admin,
        public_url,
        max_connections: nonzero(
            "listen.max_connections",
            raw.max_connections,
            DEFAULT_MAX_CONNECTIONS,
        )?,
        admin_max_connections: nonzero(
            "listen.admin_max_connections",
            raw.admin_max_connections,
            DEFAULT_ADMIN_MAX_CONNECTIONS,
        )?,
        header_read_timeout: nonzero_duration(
            "listen.header_read_timeout",
            raw.header_read_timeout.as_deref(),
            DEFAULT_HEADER_READ_TIMEOUT,
        )?,
        max_header_bytes: nonzero(
            "listen.max_header_bytes",
            raw.max_header_bytes,
            DEFAULT_MAX_HEADER_BYTES,
        )?,
        max_headers: nonzero("listen.max_headers", raw.max_headers, DEFAULT_MAX_HEADERS)?,
        forward_proxy: optional_addr("listen.forward_proxy", raw.forward_proxy.as_deref())?,
        tls: optional_addr("listen.tls", raw.tls.as_deref())?,
    })
}

fn optional_addr(key: &str, value: Option<&str>) -> Result<Option<SocketAddr>, ConfigError> {
    value.map(|v| socket_addr(key, Some(v), v)).transpose()
}

fn zoom(raw: FileZoom, env: &dyn Env) -> Result<Zoom, ConfigError> {
    let ca_file = match raw.ca_file {
        Some(path) => Some(ca_file(env, &path)?),
        None => None,
    };
    Ok(Zoom {
        api_url: upstream_url("zoom.api_url", raw.api_url.as_deref(), DEFAULT_ZOOM_API_URL)?,
        oauth_url: upstream_url(
            "zoom.oauth_url",
            raw.oauth_url.as_deref(),
            DEFAULT_ZOOM_OAUTH_URL,
        )?,
        ca_file,
        connect_timeout: nonzero_duration(
            "zoom.connect_timeout",
            raw.connect_timeout.as_deref(),
            DEFAULT_CONNECT_TIMEOUT,
        )?,
        response_timeout: nonzero_duration(
            "zoom.response_timeout",
            raw.response_timeout.as_deref(),
            DEFAULT_RESPONSE_TIMEOUT,
        )?,
        dns_servers: dns_servers(raw.dns_servers.as_deref())?,
    })
}

/// `"IP:port"` or a bare `"IP"` (port 53); a list that is set names at least one.
fn dns_servers(raw: Option<&[String]>) -> Result<Vec<SocketAddr>, ConfigError> {
    const KEY: &str = "zoom.dns_servers";
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    if raw.is_empty() {
        return Err(invalid(
            KEY,
            "must name at least one server; leave it out to use /etc/resolv.conf's",
        ));
    }
    raw.iter()
        .enumerate()
        .map(|(i, value)| {
            let text = value.trim();
            let addr = text
                .parse::<SocketAddr>()
                .ok()
                .or_else(|| {
                    let ip = text.parse::<std::net::IpAddr>().ok()?;
                    Some(SocketAddr::new(ip, DEFAULT_DNS_PORT))
                })
                .filter(|a| a.port() != 0 && !a.ip().is_unspecified());
            addr.ok_or_else(|| ConfigError::SocketAddr {
                key: format!("{KEY}[{i}]"),
                value: value.clone(),
                reason: "expected a nameserver's IP:port or IP, e.g. 10.96.0.10:53".to_owned(),
            })
        })
        .collect()
}

/// The extra roots file must be readable and hold at least one PEM certificate.
fn ca_file(env: &dyn Env, path: &str) -> Result<PathBuf, ConfigError> {
    const KEY: &str = "zoom.ca_file";
    let path = resolve(env, KEY, path)?;
    let pem = read_nonempty(env, KEY, &path)?;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&pem).collect();
    match certs {
        Ok(certs) if !certs.is_empty() => Ok(path),
        Ok(_) => Err(invalid(
            KEY,
            &format!("{} holds no PEM certificate", path.display()),
        )),
        Err(e) => Err(invalid(KEY, &format!("{}: {e}", path.display()))),
    }
}

fn apps(raw: Vec<FileApp>, env: &dyn Env) -> Result<Vec<App>, ConfigError> {
    if raw.is_empty() {
        return Err(ConfigError::NoApps);
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut apps = Vec::with_capacity(raw.len());
    for (i, raw) in raw.into_iter().enumerate() {
        let prefix = format!("app[{i}]");
        let app = app(&prefix, raw, env)?;
        if let Some(first) = seen.insert(app.client_id.clone(), i) {
            return Err(ConfigError::Duplicate {
                key: format!("{prefix}.client_id"),
                value: app.client_id,
                first: format!("app[{first}]"),
            });
        }
        apps.push(app);
    }
    Ok(apps)
}

fn app(prefix: &str, raw: FileApp, env: &dyn Env) -> Result<App, ConfigError> {
    let client_id = required(prefix, "client_id", raw.client_id)?;
    let client_secret = if raw.public {
        // A public client has no secret: one configured is a mistake.
        let set = [
            ("client_secret_env", raw.client_secret_env.is_some()),
            ("client_secret_file", raw.client_secret_file.is_some()),
        ];
        if let Some((key, _)) = set.iter().find(|(_, is_set)| *is_set) {
            return Err(ConfigError::Conflict {
                key: format!("{prefix}.{key}"),
                other: format!("{prefix}.public"),
            });
        }
        None
    } else {
        Some(one_secret(
            env,
            prefix,
            ("client_secret_env", raw.client_secret_env.as_deref()),
            ("client_secret_file", raw.client_secret_file.as_deref()),
        )?)
    };
    let revoke_upstream = match raw.revoke_upstream.as_deref() {
        None | Some("never") => RevokePolicy::Never,
        Some("last_binding") => RevokePolicy::LastBinding,
        Some(other) => {
            return Err(ConfigError::UnknownValue {
                key: format!("{prefix}.revoke_upstream"),
                value: other.to_owned(),
                expected: "\"never\" or \"last_binding\"",
            })
        }
    };
    let webhook_secret = match (&raw.webhook_secret_env, &raw.webhook_secret_file) {
        (None, None) => None,
        (var, file) => Some(one_secret(
            env,
            prefix,
            ("webhook_secret_env", var.as_deref()),
            ("webhook_secret_file", file.as_deref()),
        )?),
    };
    Ok(App {
        client_id,
        client_secret,
        revoke_upstream,
        weight: weight(&format!("{prefix}.weight"), raw.weight)?,
        webhook_secret,
    })
}

fn refresh(raw: &FileRefresh) -> Result<Refresh, ConfigError> {
    let refresh = Refresh {
        ahead: duration("refresh.ahead", raw.ahead.as_deref(), DEFAULT_REFRESH_AHEAD)?,
        keepalive: nonzero_duration(
            "refresh.keepalive",
            raw.keepalive.as_deref(),
            DEFAULT_KEEPALIVE,
        )?,
        backoff_min: nonzero_duration(
            "refresh.backoff_min",
            raw.backoff_min.as_deref(),
            DEFAULT_BACKOFF_MIN,
        )?,
        backoff_max: duration(
            "refresh.backoff_max",
            raw.backoff_max.as_deref(),
            DEFAULT_BACKOFF_MAX,
        )?,
    };
    if refresh.backoff_max < refresh.backoff_min {
        return Err(ConfigError::BackoffOrder {
            min: refresh.backoff_min,
            max: refresh.backoff_max,
        });
    }
    Ok(refresh)
}

fn proxy(raw: &FileProxy) -> Result<Proxy, ConfigError> {
    Ok(Proxy {
        // Zero is allowed: it turns replay buffering off.
        replay_body_limit: raw.replay_body_limit.unwrap_or(DEFAULT_REPLAY_BODY_LIMIT),
        passthrough: raw.passthrough.unwrap_or(false),
        shutdown_grace: duration(
            "proxy.shutdown_grace",
            raw.shutdown_grace.as_deref(),
            DEFAULT_SHUTDOWN_GRACE,
        )?,
        upload_stall_timeout: nonzero_duration(
            "proxy.upload_stall_timeout",
            raw.upload_stall_timeout.as_deref(),
            DEFAULT_UPLOAD_STALL_TIMEOUT,
        )?,
        keep_forwarding_headers: keep_forwarding_headers(raw.keep_forwarding_headers.as_deref())?,
    })
}

/// Each name must be one of the forwarding headers the proxy strips: the list
/// only ever lets those through. Names are case-insensitive. The rule itself
/// lives with the other header rules, so the check and the proxy cannot disagree.
fn keep_forwarding_headers(raw: Option<&[String]>) -> Result<Vec<http::HeaderName>, ConfigError> {
    const KEY: &str = "proxy.keep_forwarding_headers";
    let names: Vec<&str> = match raw {
        Some(names) => names.iter().map(String::as_str).collect(),
        None => DEFAULT_KEEP_FORWARDING_HEADERS.to_vec(),
    };
    names
        .into_iter()
        .map(|name| {
            let parsed = http::HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| invalid(KEY, &format!("{name:?} is not a header name")))?;
            if !crate::proxy::headers::is_forwarding(&parsed) {
                return Err(invalid(
                    KEY,
                    &format!("{name:?} is not a forwarding header (X-Forwarded-*, Forwarded, X-Real-IP, Via)"),
                ));
            }
            Ok(parsed)
        })
        .collect()
}

fn required(prefix: &str, name: &str, value: Option<String>) -> Result<String, ConfigError> {
    match value {
        Some(value) => nonempty(prefix, name, value),
        None => Err(ConfigError::Missing {
            key: format!("{prefix}.{name}"),
            why: "required".to_owned(),
        }),
    }
}

fn nonempty(prefix: &str, name: &str, value: String) -> Result<String, ConfigError> {
    if value.trim().is_empty() {
        return Err(invalid(&format!("{prefix}.{name}"), "must not be empty"));
    }
    Ok(value)
}

/// A rate-limit share: at least 1.
pub(super) fn weight(key: &str, raw: Option<u32>) -> Result<u32, ConfigError> {
    match raw {
        None => Ok(DEFAULT_WEIGHT),
        Some(0) => Err(invalid(key, "must be at least 1")),
        Some(w) => Ok(w),
    }
}
