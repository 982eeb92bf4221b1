//! `[intercept]`: the names grantmux answers as, its CA's files, and the
//! `CONNECT` targets it tunnels untouched.

use super::*;

pub(super) fn intercept(
    raw: FileIntercept,
    listen: &Listen,
    store: &Store,
    env: &dyn Env,
) -> Result<Intercept, ConfigError> {
    let hosts = match raw.hosts {
        None => Intercept::off().hosts,
        Some(hosts) if hosts.is_empty() => {
            return Err(invalid("intercept.hosts", "must name at least one host"))
        }
        Some(hosts) => hosts
            .iter()
            .enumerate()
            .map(|(i, h)| dns_name(&format!("intercept.hosts[{i}]"), h))
            .collect::<Result<_, _>>()?,
    };
    let active = listen.forward_proxy.is_some() || listen.tls.is_some();
    let ca = match (raw.ca_cert_file, raw.ca_key_file) {
        (Some(cert), Some(key)) => Some(CaFiles {
            cert: resolve(env, "intercept.ca_cert_file", &cert)?,
            key: resolve(env, "intercept.ca_key_file", &key)?,
        }),
        (Some(_), None) | (None, Some(_)) => {
            return Err(ConfigError::Missing {
                key: "intercept.ca_key_file".to_owned(),
                why: "intercept.ca_cert_file and intercept.ca_key_file go together; set both"
                    .to_owned(),
            })
        }
        (None, None) => match &store.backend {
            // Kept beside the grants, so it survives restarts as they do.
            StoreBackend::File { path } => Some(CaFiles {
                cert: path.join("intercept-ca.crt"),
                key: path.join("intercept-ca.key"),
            }),
            StoreBackend::Redis { .. } if active => {
                return Err(ConfigError::Missing {
                    key: "intercept.ca_cert_file".to_owned(),
                    why: "replicas sharing Redis must all present one CA to their callers: \
                          give each the same intercept.ca_cert_file and intercept.ca_key_file"
                        .to_owned(),
                })
            }
            StoreBackend::Redis { .. } | StoreBackend::Memory => None,
        },
    };
    let tunnel = raw
        .tunnel
        .iter()
        .enumerate()
        .map(|(i, t)| tunnel_rule(&format!("intercept.tunnel[{i}]"), t))
        .collect::<Result<_, _>>()?;
    let ca_bundle_export = raw
        .ca_bundle_export
        .map(|p| resolve(env, "intercept.ca_bundle_export", &p))
        .transpose()?;
    let leaf_lifetime = duration(
        "intercept.leaf_lifetime",
        raw.leaf_lifetime.as_deref(),
        DEFAULT_LEAF_LIFETIME,
    )?;
    if !(crate::intercept::MIN_LEAF_LIFETIME..=crate::intercept::MAX_LEAF_LIFETIME)
        .contains(&leaf_lifetime)
    {
        return Err(invalid(
            "intercept.leaf_lifetime",
            "must be between 1 minute and 398 days (the CA/Browser Forum's limit)",
        ));
    }
    Ok(Intercept {
        hosts,
        ca,
        ca_bundle_export,
        tunnel,
        leaf_lifetime,
    })
}

/// A lowercase DNS name: letters, digits, `-` and dots, no empty label.
fn dns_name(key: &str, value: &str) -> Result<String, ConfigError> {
    let name = value.trim().trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(invalid(key, &format!("\"{value}\" is not a DNS name")));
    }
    Ok(name)
}

/// `host:port` or `*.domain:port`.
fn tunnel_rule(key: &str, value: &str) -> Result<TunnelRule, ConfigError> {
    let bad = || {
        invalid(
            key,
            &format!("\"{value}\": expected host:port or *.domain:port"),
        )
    };
    let (host, port) = value.trim().rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0).ok_or_else(bad)?;
    let (wildcard, host) = match host.strip_prefix("*.") {
        Some(suffix) => (true, suffix),
        None => (false, host),
    };
    Ok(TunnelRule {
        host: dns_name(key, host)?,
        wildcard,
        port,
    })
}
