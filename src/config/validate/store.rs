//! The `[store]` section: backend, its location, and the at-rest key's source.

use super::super::values::{env_secret, invalid, nonzero_duration, read_nonempty, resolve};
use super::*;

pub(super) fn store(raw: FileStore, env: &dyn Env) -> Result<Store, ConfigError> {
    let backend = match raw.backend.as_deref().unwrap_or("file") {
        "memory" | "file" if redis_only_set(&raw).is_some() => {
            return Err(invalid(
                redis_only_set(&raw).unwrap_or("store"),
                "only used when store.backend = \"redis\"",
            ))
        }
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
            let sentinel = sentinel(raw.sentinels, raw.sentinel_master)?;
            let url = match (&raw.url, &raw.url_env, &sentinel) {
                // Sentinel names the host; a URL only adds credentials and TLS.
                (None, None, Some(_)) => Secret::from("redis://sentinel-named".to_owned()),
                _ => redis_url(raw.url, raw.url_env.as_deref(), env)?,
            };
            StoreBackend::Redis(Box::new(RedisStore {
                url,
                lock_lease: nonzero_duration(
                    "store.lock_lease",
                    raw.lock_lease.as_deref(),
                    DEFAULT_LOCK_LEASE,
                )?,
                sentinel,
                min_replicas_acked: raw.min_replicas_acked.unwrap_or(0),
                replica_ack_timeout: nonzero_duration(
                    "store.replica_ack_timeout",
                    raw.replica_ack_timeout.as_deref(),
                    DEFAULT_REPLICA_ACK_TIMEOUT,
                )?,
            }))
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

/// The first Redis-only key (beyond url and lock_lease) set in the section.
fn redis_only_set(raw: &FileStore) -> Option<&'static str> {
    [
        ("store.sentinels", raw.sentinels.is_some()),
        ("store.sentinel_master", raw.sentinel_master.is_some()),
        ("store.min_replicas_acked", raw.min_replicas_acked.is_some()),
        (
            "store.replica_ack_timeout",
            raw.replica_ack_timeout.is_some(),
        ),
    ]
    .into_iter()
    .find_map(|(key, set)| set.then_some(key))
}

/// `store.sentinels` with `store.sentinel_master`: both or neither.
fn sentinel(
    addrs: Option<Vec<String>>,
    master: Option<String>,
) -> Result<Option<Sentinel>, ConfigError> {
    match (addrs, master) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(ConfigError::Missing {
            key: "store.sentinel_master".to_owned(),
            why: "the name the Sentinels know the primary by; required with store.sentinels"
                .to_owned(),
        }),
        (None, Some(_)) => Err(ConfigError::Missing {
            key: "store.sentinels".to_owned(),
            why: "the Sentinels' host:port; required with store.sentinel_master".to_owned(),
        }),
        (Some(addrs), Some(master)) => {
            if addrs.is_empty() {
                return Err(invalid("store.sentinels", "list at least one host:port"));
            }
            for addr in &addrs {
                let port = addr.rsplit_once(':').and_then(|(h, p)| {
                    (!h.is_empty()).then_some(())?;
                    p.parse::<u16>().ok()
                });
                if port.is_none() {
                    let reason = format!("{addr:?} is not host:port");
                    return Err(invalid("store.sentinels", &reason));
                }
            }
            if master.is_empty() {
                return Err(invalid("store.sentinel_master", "must not be empty"));
            }
            Ok(Some(Sentinel { addrs, master }))
        }
    }
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
