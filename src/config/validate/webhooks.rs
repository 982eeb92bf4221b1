//! `[webhooks]`, `[[webhook_target]]` and `[[notify]]`.

use std::collections::HashSet;

use super::*;
use crate::config::file::{FileNotify, FileWebhookTarget, FileWebhooks};

pub(super) fn webhooks(
    raw: &FileWebhooks,
    targets: Vec<FileWebhookTarget>,
    notify: Vec<FileNotify>,
    (apps, listen): (&[App], &Listen),
    env: &dyn Env,
) -> Result<Webhooks, ConfigError> {
    let own = optional_addr("webhooks.listen", raw.listen.as_deref())?;
    if let Some(addr) = own.filter(|a| a.port() != 0) {
        if addr == listen.proxy || addr == listen.admin {
            return Err(invalid(
                "webhooks.listen",
                "must differ from listen.proxy and listen.admin (the proxy listener serves /webhooks/zoom already)",
            ));
        }
    }
    let mut names = HashSet::new();
    let targets = targets
        .into_iter()
        .enumerate()
        .map(|(i, t)| target(i, t, apps, &mut names))
        .collect::<Result<Vec<_>, _>>()?;
    let mut names = HashSet::new();
    let notify = notify
        .into_iter()
        .enumerate()
        .map(|(i, n)| notify_target(i, n, env, &mut names))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Webhooks {
        tolerance: nonzero_duration(
            "webhooks.tolerance",
            raw.tolerance.as_deref(),
            DEFAULT_WEBHOOK_TOLERANCE,
        )?,
        listen: own,
        delivery: delivery(raw)?,
        targets,
        notify,
    })
}

fn delivery(raw: &FileWebhooks) -> Result<Delivery, ConfigError> {
    let max_attempts = match raw.max_attempts {
        Some(0) => {
            return Err(invalid(
                "webhooks.max_attempts",
                "must be greater than zero",
            ))
        }
        n => n.unwrap_or(DEFAULT_DELIVERY_MAX_ATTEMPTS),
    };
    let delivery = Delivery {
        max_attempts,
        backoff_min: nonzero_duration(
            "webhooks.backoff_min",
            raw.backoff_min.as_deref(),
            DEFAULT_DELIVERY_BACKOFF_MIN,
        )?,
        backoff_max: nonzero_duration(
            "webhooks.backoff_max",
            raw.backoff_max.as_deref(),
            DEFAULT_DELIVERY_BACKOFF_MAX,
        )?,
        timeout: nonzero_duration(
            "webhooks.timeout",
            raw.timeout.as_deref(),
            DEFAULT_DELIVERY_TIMEOUT,
        )?,
    };
    if delivery.backoff_max < delivery.backoff_min {
        return Err(invalid(
            "webhooks.backoff_max",
            "must not be below webhooks.backoff_min",
        ));
    }
    Ok(delivery)
}

fn target(
    i: usize,
    raw: FileWebhookTarget,
    apps: &[App],
    names: &mut HashSet<String>,
) -> Result<WebhookTarget, ConfigError> {
    let prefix = format!("webhook_target[{i}]");
    let (name, url) = named_url(&prefix, raw.name, raw.url, names)?;
    if let Some(app) = &raw.app {
        if !apps.iter().any(|a| &a.client_id == app) {
            return Err(invalid(
                &format!("{prefix}.app"),
                "names no [[app]] client_id",
            ));
        }
    }
    Ok(WebhookTarget {
        name,
        url,
        events: events(&prefix, raw.events, None)?,
        app: raw.app,
    })
}

fn notify_target(
    i: usize,
    raw: FileNotify,
    env: &dyn Env,
    names: &mut HashSet<String>,
) -> Result<NotifyTarget, ConfigError> {
    let prefix = format!("notify[{i}]");
    let (name, url) = named_url(&prefix, raw.name, raw.url, names)?;
    let secret = one_secret(
        env,
        &prefix,
        ("secret_env", raw.secret_env.as_deref()),
        ("secret_file", raw.secret_file.as_deref()),
    )?;
    Ok(NotifyTarget {
        name,
        url,
        events: events(&prefix, raw.events, Some(GRANT_EVENTS))?,
        secret,
    })
}

/// The entry's URL and the name of its queue (default: the URL), unique.
fn named_url(
    prefix: &str,
    name: Option<String>,
    url: Option<String>,
    names: &mut HashSet<String>,
) -> Result<(String, http::Uri), ConfigError> {
    let key = format!("{prefix}.url");
    let Some(url) = url else {
        return Err(ConfigError::Missing {
            key,
            why: "where to deliver".into(),
        });
    };
    let uri = target_url(&key, &url)?;
    let name = name.unwrap_or(url);
    if name.is_empty() {
        return Err(invalid(&format!("{prefix}.name"), "must not be empty"));
    }
    if !names.insert(name.clone()) {
        return Err(invalid(
            &format!("{prefix}.name"),
            "another entry has this name (or URL); each needs a queue of its own",
        ));
    }
    Ok((name, uri))
}

/// Event filters: non-empty; for `[[notify]]`, names from `known`.
fn events(
    prefix: &str,
    events: Option<Vec<String>>,
    known: Option<&[&str]>,
) -> Result<Vec<String>, ConfigError> {
    let events = events.unwrap_or_default();
    let key = format!("{prefix}.events");
    for event in &events {
        if event.is_empty() || event == "*" {
            return Err(invalid(&key, "leave the key out to take every event"));
        }
        if let Some(known) = known {
            if event != "grant.*" && !known.contains(&event.as_str()) {
                return Err(ConfigError::UnknownValue {
                    key,
                    value: event.clone(),
                    expected:
                        "grant.dead, grant.deauthorized, grant.reauthorized or grant.unpersisted",
                });
            }
        }
    }
    Ok(events)
}
