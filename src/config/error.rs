//! `ConfigError`: what is wrong with a config file, always naming the key path.
//!
//! Key paths look like `listen.proxy`, `app[1].client_id` or
//! `caller[0].grant.client_id`. No variant ever holds a secret value: secrets are
//! named by the environment variable or file they come from.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use humantime::format_duration;
use toml::de::{DeTable, DeValue};

/// Why a config file was rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },

    #[error("invalid TOML at line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },

    /// `hint` is empty, or starts with "; ".
    #[error("{key}: unknown key at line {line}, column {column}{hint}")]
    UnknownKey {
        key: String,
        line: usize,
        column: usize,
        hint: String,
    },

    /// A value of the wrong TOML type or out of range, e.g. a number where a string belongs.
    #[error("{key}: {message} (line {line}, column {column})")]
    WrongType {
        key: String,
        line: usize,
        column: usize,
        message: String,
    },

    #[error("app: at least one [[app]] is required")]
    NoApps,

    #[error("{key}: {why}")]
    Missing { key: String, why: String },

    #[error("{key}: cannot be set together with {other}; set only one of them")]
    Conflict { key: String, other: String },

    #[error("{key}: unknown value \"{value}\", expected {expected}")]
    UnknownValue {
        key: String,
        value: String,
        expected: &'static str,
    },

    #[error("{key}: invalid duration \"{value}\": {reason}")]
    Duration {
        key: String,
        value: String,
        reason: String,
    },

    #[error("{key}: invalid socket address \"{value}\": {reason}")]
    SocketAddr {
        key: String,
        value: String,
        reason: String,
    },

    #[error("{key}: invalid URL \"{value}\": {reason}")]
    Url {
        key: String,
        value: String,
        reason: String,
    },

    /// Like [`ConfigError::Url`] but without the value, which may hold a password.
    #[error("{key}: invalid Redis URL: {reason}")]
    RedisUrl { key: String, reason: String },

    /// A URL in the file that carries a user or password. Secrets are never
    /// inline; the value itself is never shown.
    #[error(
        "{key}: credentials are never inline: this URL holds a user or password; \
         put the whole URL in an environment variable and name it in {instead}"
    )]
    InlineCredentials { key: String, instead: String },

    #[error(
        "{key}: plain http:// is allowed only for a loopback host, not \"{host}\"; use https://"
    )]
    InsecureUpstream { key: String, host: String },

    #[error("{key}: environment variable {var} is not set")]
    EnvMissing { key: String, var: String },

    #[error("{key}: environment variable {var} is empty")]
    EnvEmpty { key: String, var: String },

    #[error("{key}: cannot read {}: {source}", path.display())]
    FileUnreadable {
        key: String,
        path: PathBuf,
        source: io::Error,
    },

    #[error("{key}: file {} is empty", path.display())]
    FileEmpty { key: String, path: PathBuf },

    #[error("{key}: duplicate \"{value}\", already used by {first}")]
    Duplicate {
        key: String,
        value: String,
        first: String,
    },

    #[error("{key}: the same key as {first}; every caller needs its own key")]
    DuplicateCallerKey { key: String, first: String },

    #[error("{key}: no [[app]] has client_id \"{client_id}\"")]
    UnknownApp { key: String, client_id: String },

    #[error(
        "refresh.backoff_max: {} is less than refresh.backoff_min ({})",
        format_duration(*max),
        format_duration(*min)
    )]
    BackoffOrder { min: Duration, max: Duration },

    /// Any other value that parses but makes no sense, e.g. a zero timeout.
    #[error("{key}: {reason}")]
    Invalid { key: String, reason: String },
}

// === impl ConfigError ===

impl ConfigError {
    /// The key path the error is about; `None` for unreadable files and TOML syntax.
    pub fn key(&self) -> Option<&str> {
        use ConfigError::*;
        match self {
            Read { .. } | Syntax { .. } => None,
            NoApps => Some("app"),
            BackoffOrder { .. } => Some("refresh.backoff_max"),
            UnknownKey { key, .. }
            | WrongType { key, .. }
            | Missing { key, .. }
            | Conflict { key, .. }
            | UnknownValue { key, .. }
            | Duration { key, .. }
            | SocketAddr { key, .. }
            | Url { key, .. }
            | RedisUrl { key, .. }
            | InlineCredentials { key, .. }
            | InsecureUpstream { key, .. }
            | EnvMissing { key, .. }
            | EnvEmpty { key, .. }
            | FileUnreadable { key, .. }
            | FileEmpty { key, .. }
            | Duplicate { key, .. }
            | DuplicateCallerKey { key, .. }
            | UnknownApp { key, .. }
            | Invalid { key, .. } => Some(key),
        }
    }

    /// Turns toml's error into one naming the key path, found from the error's span.
    pub(super) fn from_toml(text: &str, error: &toml::de::Error) -> Self {
        let pos = error.span().map_or(0, |s| s.start);
        let (line, column) = line_column(text, pos);
        let message = error.message().trim_end().to_owned();
        // Syntax errors leave no document to find a key path in.
        let Ok(doc) = DeTable::parse(text) else {
            return Self::Syntax {
                line,
                column,
                message,
            };
        };
        let key = key_path_at(doc.get_ref(), pos).unwrap_or_else(|| "(document)".to_owned());
        match unknown_field(&message) {
            Some(field) => Self::UnknownKey {
                hint: unknown_key_hint(field, &message),
                key,
                line,
                column,
            },
            None => Self::WrongType {
                key,
                line,
                column,
                message,
            },
        }
    }
}

/// `field` from serde's "unknown field `field`, expected …".
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split_once('`').map(|(field, _)| field)
}

fn unknown_key_hint(field: &str, message: &str) -> String {
    match field {
        "client_secret" | "secret" => {
            "; secrets are never inline: use client_secret_env or client_secret_file".to_owned()
        }
        "key" => "; keys are never inline: use key_env or key_file".to_owned(),
        _ => match message.split_once(", expected ") {
            Some((_, expected)) => format!("; expected {}", expected.replace('`', "")),
            None => String::new(),
        },
    }
}

/// 1-based line and column (in characters) of byte offset `pos`.
pub(super) fn line_column(text: &str, pos: usize) -> (usize, usize) {
    let before = text.get(..pos.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// The dotted key path (`app[1].client_secret`) of the key or value at byte `pos`.
///
/// Table spans cover only their header, not their body, so every child is searched.
fn key_path_at(table: &DeTable<'_>, pos: usize) -> Option<String> {
    for (key, value) in table.iter() {
        let name = key.get_ref();
        if key.span().contains(&pos) {
            return Some(name.to_string());
        }
        if let Some(rest) = value_path_at(value.get_ref(), pos) {
            return Some(format!("{name}{rest}"));
        }
        if value.span().contains(&pos) {
            return Some(name.to_string());
        }
    }
    None
}

/// The rest of a key path (`.x`, `[2].y`) inside `value`, if `pos` falls within
/// one of its children.
fn value_path_at(value: &DeValue<'_>, pos: usize) -> Option<String> {
    match value {
        DeValue::Table(table) => key_path_at(table, pos).map(|p| format!(".{p}")),
        DeValue::Array(array) => array.iter().enumerate().find_map(|(i, item)| {
            value_path_at(item.get_ref(), pos)
                .map(|rest| format!("[{i}]{rest}"))
                .or_else(|| item.span().contains(&pos).then(|| format!("[{i}]")))
        }),
        _ => None,
    }
}
