//! The `[store]` section: backend, its location, and the at-rest key's source.

use super::super::values::{env_secret, invalid, nonzero_duration, read_nonempty, resolve};
use super::*;

pub(super) fn store(raw: FileStore, env: &dyn Env) -> Result<Store, ConfigError> {
    let backend = match raw.backend.as_deref().unwrap_or("file") {
        "memory" => {
            only_for("file", "store.path", raw.path.is_some())?;
            only_for("redis", "store.lock_lease", raw.lock_lease.is_some())?;
            only_for("redis", "store.url", raw.url.is_some())?;
            only_for("redis", "store.url_env", raw.url_env.is_some())?;
            StoreBackend::Memory
        }
        "file" => {
            only_for("redis", "store.url", raw.url.is_some())?;
            only_for("redis", "store.lock_lease", raw.lock_lease.is_some())?;
            only_for("redis", "store.url_env", raw.url_env.is_some())?;
            let path = raw.path.as_deref().unwrap_or(DEFAULT_STORE_PATH);
            StoreBackend::File {
                path: resolve(env, "store.path", path)?,
            }
        }
        "redis" => {
            only_for("file", "store.path", raw.path.is_some())?;
            StoreBackend::Redis {
                url: redis_url(raw.url, raw.url_env.as_deref(), env)?,
                lock_lease: nonzero_duration(
                    "store.lock_lease",
                    raw.lock_lease.as_deref(),
                    DEFAULT_LOCK_LEASE,
                )?,
            }
        }
        other => {
            return Err(ConfigError::UnknownValue {
                key: "store.backend".to_owned(),
                value: other.to_owned(),
                expected: "\"memory\", \"file\" or \"redis\"",
            })
        }
    };
    let key = key_source(raw.key_env, raw.key_file.as_deref(), env)?;
    if matches!(backend, StoreBackend::Redis { .. }) && key == KeySource::Generated {
        // A generated key lives in a state folder, and Redis replicas have none
        // to share: each would seal with its own key and sign its own tokens.
        return Err(ConfigError::Missing {
            key: "store.key_env".to_owned(),
            why: "required for the redis backend, so that every replica uses the same key; \
                  set store.key_env or store.key_file"
                .to_owned(),
        });
    }
    Ok(Store { backend, key })
}

/// A setting that belongs to another backend is an error, not silently ignored:
/// it usually means the backend line is not what the writer thinks.
fn only_for(backend: &str, key: &str, is_set: bool) -> Result<(), ConfigError> {
    if is_set {
        let reason = format!("only used when store.backend = \"{backend}\"");
        return Err(invalid(key, &reason));
    }
    Ok(())
}

fn redis_url(
    url: Option<Secret>,
    url_env: Option<&str>,
    env: &dyn Env,
) -> Result<Secret, ConfigError> {
    let (key, url) = match (url, url_env) {
        (Some(url), None) if has_userinfo(url.expose()) => {
            return Err(ConfigError::InlineCredentials {
                key: "store.url".to_owned(),
                instead: "store.url_env".to_owned(),
            })
        }
        (Some(url), None) => ("store.url", url),
        (None, Some(var)) => ("store.url_env", env_secret(env, "store.url_env", var)?),
        (Some(_), Some(_)) => {
            return Err(ConfigError::Conflict {
                key: "store.url_env".to_owned(),
                other: "store.url".to_owned(),
            })
        }
        (None, None) => {
            return Err(ConfigError::Missing {
                key: "store.url".to_owned(),
                why: "required for the redis backend; set store.url or store.url_env".to_owned(),
            })
        }
    };
    let scheme = url.expose().split_once("://").map(|(s, _)| s);
    if !matches!(scheme, Some("redis" | "rediss")) {
        return Err(ConfigError::RedisUrl {
            key: key.to_owned(),
            reason: "must start with redis:// or rediss://".to_owned(),
        });
    }
    Ok(url)
}

/// Whether `url` names a user or password (`redis://:pw@host`,
/// `rediss://user:pw@host`): anything before an `@` in its authority.
fn has_userinfo(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    authority.contains('@')
}

/// The at-rest key's source. The key itself is read by the store, but `check`
/// already proves it is there.
fn key_source(
    key_env: Option<String>,
    key_file: Option<&str>,
    env: &dyn Env,
) -> Result<KeySource, ConfigError> {
    match (key_env, key_file) {
        (None, None) => Ok(KeySource::Generated),
        (Some(var), None) => {
            env_secret(env, "store.key_env", &var)?;
            Ok(KeySource::Env(var))
        }
        (None, Some(file)) => {
            let path = resolve(env, "store.key_file", file)?;
            read_nonempty(env, "store.key_file", &path)?;
            Ok(KeySource::File(path))
        }
        (Some(_), Some(_)) => Err(ConfigError::Conflict {
            key: "store.key_file".to_owned(),
            other: "store.key_env".to_owned(),
        }),
    }
}
