//! Parsers for single config values: durations, addresses, URLs, paths and secrets.
//!
//! Each takes the key path it is parsing, so every error names it.

use std::net::{IpAddr, SocketAddr};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use super::env::Env;
use super::error::ConfigError;
use crate::secret::Secret;

/// A human duration (`"90s"`, `"5m"`, `"30d"`), or `default` when unset.
pub(super) fn duration(
    key: &str,
    value: Option<&str>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let Some(value) = value else {
        return Ok(default);
    };
    humantime::parse_duration(value.trim()).map_err(|e| ConfigError::Duration {
        key: key.to_owned(),
        value: value.to_owned(),
        reason: e.to_string(),
    })
}

/// Like [`duration`], but zero is an error: a zero timeout would fail every request.
pub(super) fn nonzero_duration(
    key: &str,
    value: Option<&str>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let d = duration(key, value, default)?;
    if d.is_zero() {
        return Err(invalid(key, "must be greater than zero"));
    }
    Ok(d)
}

pub(super) fn nonzero(
    key: &str,
    value: Option<usize>,
    default: usize,
) -> Result<usize, ConfigError> {
    match value.unwrap_or(default) {
        0 => Err(invalid(key, "must be greater than zero")),
        n => Ok(n),
    }
}

pub(super) fn socket_addr(
    key: &str,
    value: Option<&str>,
    default: &str,
) -> Result<SocketAddr, ConfigError> {
    let value = value.unwrap_or(default);
    value
        .trim()
        .parse()
        .map_err(|e: std::net::AddrParseError| ConfigError::SocketAddr {
            key: key.to_owned(),
            value: value.to_owned(),
            reason: format!("{e}; expected IP:port, e.g. 127.0.0.1:8080"),
        })
}

/// A Zoom base URL: `http(s)://host[:port]`, no path (a trailing `/` is dropped).
/// Plain `http://` only for loopback hosts.
pub(super) fn upstream_url(
    key: &str,
    value: Option<&str>,
    default: &str,
) -> Result<http::Uri, ConfigError> {
    let value = value.unwrap_or(default);
    let bad = |reason: &str| ConfigError::Url {
        key: key.to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    let base = value.trim().trim_end_matches('/');
    let (scheme, host, authority) = http_base(base).map_err(|r| bad(&r))?;
    let uri: http::Uri = base.parse().map_err(|_| bad("not a URL"))?;
    if uri.path_and_query().is_some_and(|pq| pq.as_str() != "/") {
        return Err(bad("must be scheme and host only, with no path or query"));
    }
    if scheme == "http" && !is_loopback(&host) {
        return Err(ConfigError::InsecureUpstream {
            key: key.to_owned(),
            host,
        });
    }
    format!("{scheme}://{authority}")
        .parse()
        .map_err(|_| bad("not a URL"))
}

/// Where grantmux delivers events: an `http(s)` URL with any path and query.
/// Plain http is allowed anywhere: targets are usually in-cluster services.
pub(super) fn target_url(key: &str, value: &str) -> Result<http::Uri, ConfigError> {
    let bad = |reason: &str| ConfigError::Url {
        key: key.to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    http_base(value.trim()).map_err(|r| bad(&r))?;
    value.trim().parse().map_err(|_| bad("not a URL"))
}

/// Where callers reach grantmux: an `http(s)` URL, stored without a trailing slash.
/// A path is allowed (grantmux may sit behind a prefix); a query or fragment is not.
pub(super) fn public_url(key: &str, value: &str) -> Result<String, ConfigError> {
    let bad = |reason: &str| ConfigError::Url {
        key: key.to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    let url = value.trim().trim_end_matches('/');
    http_base(url).map_err(|r| bad(&r))?;
    let uri: http::Uri = url.parse().map_err(|_| bad("not a URL"))?;
    if uri.query().is_some() {
        return Err(bad("must not have a query"));
    }
    Ok(url.to_owned())
}

/// Checks `url` is `http(s)://host[:port]…` with no user info or fragment, and
/// returns its lowercased scheme, its host (brackets stripped) and its authority.
fn http_base(url: &str) -> Result<(String, String, String), String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("{e}"))?;
    let scheme = uri.scheme_str().unwrap_or_default().to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err("must start with http:// or https://".to_owned());
    }
    if url.contains('#') {
        return Err("must not have a fragment".to_owned());
    }
    let authority = uri.authority().ok_or("has no host")?;
    if authority.as_str().contains('@') {
        return Err("must not contain user info".to_owned());
    }
    let host = authority.host();
    if host.is_empty() {
        return Err("has no host".to_owned());
    }
    let expected = match authority.port_u16() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    if authority.as_str() != expected {
        return Err("has an invalid port".to_owned());
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    Ok((scheme, bare.to_owned(), authority.as_str().to_owned()))
}

/// `localhost`, `127.0.0.0/8` or `::1`.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `path` made absolute against the config file's folder (a leading `./` is dropped).
pub(super) fn resolve(env: &dyn Env, key: &str, path: &str) -> Result<PathBuf, ConfigError> {
    if path.trim().is_empty() {
        return Err(invalid(key, "must not be empty"));
    }
    let path = Path::new(path);
    if path.is_absolute() {
        return Ok(path.to_owned());
    }
    let rest: PathBuf = path
        .components()
        .skip_while(|c| matches!(c, Component::CurDir))
        .collect();
    Ok(env.base_dir().join(rest))
}

/// The non-empty value of the environment variable `var`, named by `key`.
pub(super) fn env_secret(env: &dyn Env, key: &str, var: &str) -> Result<Secret, ConfigError> {
    if var.trim().is_empty() {
        return Err(invalid(key, "must name an environment variable"));
    }
    match env.var(var) {
        None => Err(ConfigError::EnvMissing {
            key: key.to_owned(),
            var: var.to_owned(),
        }),
        Some(value) if value.trim().is_empty() => Err(ConfigError::EnvEmpty {
            key: key.to_owned(),
            var: var.to_owned(),
        }),
        Some(value) => Ok(Secret::new(value)),
    }
}

/// The contents of the file at `path`, bytes as they are; it must exist and not be empty.
pub(super) fn read_nonempty(env: &dyn Env, key: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    let bytes = env
        .read_file(path)
        .map_err(|source| ConfigError::FileUnreadable {
            key: key.to_owned(),
            path: path.to_owned(),
            source,
        })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ConfigError::FileEmpty {
            key: key.to_owned(),
            path: path.to_owned(),
        });
    }
    Ok(bytes)
}

/// A secret read from a file, trailing whitespace (the usual final newline) trimmed.
pub(super) fn file_secret(env: &dyn Env, key: &str, path: &Path) -> Result<Secret, ConfigError> {
    let bytes = read_nonempty(env, key, path)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| invalid(key, &format!("{} is not UTF-8 text", path.display())))?;
    Ok(Secret::new(text.trim_end()))
}

/// A secret from exactly one of `<prefix>.<env_key>` (a variable name) or
/// `<prefix>.<file_key>` (a path).
pub(super) fn one_secret(
    env: &dyn Env,
    prefix: &str,
    (env_key, var): (&str, Option<&str>),
    (file_key, file): (&str, Option<&str>),
) -> Result<Secret, ConfigError> {
    let env_path = format!("{prefix}.{env_key}");
    let file_path = format!("{prefix}.{file_key}");
    match (var, file) {
        (Some(var), None) => env_secret(env, &env_path, var),
        (None, Some(file)) => file_secret(env, &file_path, &resolve(env, &file_path, file)?),
        (Some(_), Some(_)) => Err(ConfigError::Conflict {
            key: file_path,
            other: env_path,
        }),
        (None, None) => Err(ConfigError::Missing {
            key: env_path,
            why: format!("required; set {env_key} or {file_key}"),
        }),
    }
}

pub(super) fn invalid(key: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        reason: reason.to_owned(),
    }
}
