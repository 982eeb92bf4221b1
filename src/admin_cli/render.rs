//! What `grantmux admin` prints: the admin API's JSON as plain aligned tables
//! and key-value lists. Read leniently: a field that is missing or of another
//! type shows as `-`, so that an admin API a version ahead or behind still prints.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use http::StatusCode;
use serde_json::{json, Value};

/// One health or readiness answer, as `status` shows it.
#[derive(Debug)]
pub(super) struct Probe {
    pub(super) path: &'static str,
    pub(super) status: StatusCode,
    /// JSON, or the text of a plain answer (`/healthz`'s `ok`).
    pub(super) body: Value,
}

/// Grants counted by their `state` as `/grants` gives it.
#[derive(Debug, Default)]
pub(super) struct GrantSummary {
    total: usize,
    by_state: BTreeMap<String, usize>,
    unpersisted: usize,
}

// === impl Probe ===

impl Probe {
    pub(super) fn new(path: &'static str, status: StatusCode, body: &[u8]) -> Self {
        let body = serde_json::from_slice(body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).trim().to_owned()));
        Self { path, status, body }
    }

    /// `healthz`, `readyz`, `readyz/store`.
    pub(super) fn name(&self) -> &'static str {
        self.path.trim_start_matches('/')
    }

    /// `ready`, `not ready: <problems>`, or the plain answer.
    pub(super) fn summary(&self) -> String {
        match self.body["ready"].as_bool() {
            Some(true) => "ready".to_owned(),
            Some(false) => format!("not ready: {}", joined(&self.body["problems"])),
            None => match (&self.body, self.status.is_success()) {
                (Value::String(text), _) if !text.is_empty() => text.clone(),
                (_, true) => "ok".to_owned(),
                (_, false) => format!("HTTP {}", self.status),
            },
        }
    }
}

// === impl GrantSummary ===

impl GrantSummary {
    pub(super) fn of(grants: &Value) -> Self {
        let mut summary = Self::default();
        for g in grants["grants"].as_array().into_iter().flatten() {
            summary.total += 1;
            *summary.by_state.entry(cell(&g["state"])).or_default() += 1;
            summary.unpersisted += usize::from(g["unpersisted"] == true);
        }
        summary
    }

    pub(super) fn to_json(&self) -> Value {
        json!({ "total": self.total, "by_state": self.by_state, "unpersisted": self.unpersisted })
    }

    /// `3 (2 live, 1 dead), 0 unpersisted`.
    fn line(&self) -> String {
        let states: Vec<String> = self
            .by_state
            .iter()
            .map(|(s, n)| format!("{n} {s}"))
            .collect();
        match self.total {
            0 => "none".to_owned(),
            n => format!(
                "{n} ({}), {} unpersisted",
                states.join(", "),
                self.unpersisted
            ),
        }
    }
}

pub(super) fn grants(value: &Value) -> String {
    let grants = value["grants"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    if grants.is_empty() {
        return "no grants\n".to_owned();
    }
    let header = [
        "ID",
        "STATE",
        "ACCOUNT",
        "BINDINGS",
        "EXPIRES IN",
        "REFRESHED AT",
        "UNPERSISTED",
    ];
    let rows: Vec<Vec<String>> = grants
        .iter()
        .map(|g| {
            vec![
                cell(&g["id"]),
                cell(&g["state"]),
                cell(&g["account_id"]),
                cell(&g["bindings"]),
                expires_in(g),
                time(&g["refreshed_at_ms"]),
                cell(&g["unpersisted"]),
            ]
        })
        .collect();
    table(&header, &rows)
}

/// One grant as `label  value` lines.
pub(super) fn grant(g: &Value) -> String {
    const SHOWN: &[(&str, &str)] = &[
        ("id", "id"),
        ("client_id", "app"),
        ("subject", "subject"),
        ("account_id", "account"),
        ("state", "state"),
        ("dead_reason", "dead because"),
        ("scope", "scope"),
        ("version", "version"),
        ("bindings", "bindings"),
        ("unpersisted", "unpersisted"),
    ];
    let mut rows: Vec<Vec<String>> = SHOWN
        .iter()
        .filter(|(key, _)| !(*key == "dead_reason" && g[key].is_null()))
        .map(|(key, label)| vec![(*label).to_owned(), cell(&g[key])])
        .collect();
    let at = time(&g["expires_at_ms"]);
    rows.push(vec![
        "expires at".into(),
        format!("{at} ({})", expires_in(g)),
    ]);
    rows.push(vec!["refreshed at".into(), time(&g["refreshed_at_ms"])]);
    // Fields added to `/grants` later still show. The token never does (it is
    // redacted anyway).
    let known = [
        "expires_at_ms",
        "expires_in_seconds",
        "refreshed_at_ms",
        "access_token",
    ];
    for (key, value) in g.as_object().into_iter().flatten() {
        if !known.contains(&key.as_str()) && !SHOWN.iter().any(|(k, _)| k == key) {
            rows.push(vec![key.clone(), cell(value)]);
        }
    }
    table(&[], &rows)
}

pub(super) fn refresh(v: &Value) -> String {
    format!(
        "refreshed {}: version {}\n",
        cell(&v["id"]),
        cell(&v["version"])
    )
}

pub(super) fn revoke(v: &Value) -> String {
    format!(
        "revoked {} binding(s) of {}; {} live now. The grant stays authorized at Zoom, \
         and static callers keep their keys.\n",
        cell(&v["revoked_bindings"]),
        cell(&v["id"]),
        cell(&v["live_bindings"]),
    )
}

/// `label  value` lines: the address, each probe, dead grants, grants by state.
pub(super) fn status(admin: &str, probes: &[Probe], grants: &GrantSummary) -> String {
    let mut rows = vec![vec!["admin".to_owned(), admin.to_owned()]];
    for probe in probes {
        rows.push(vec![probe.name().to_owned(), probe.summary()]);
        let dead = &probe.body["dead_grants"];
        if dead.as_array().is_some_and(|d| !d.is_empty()) {
            rows.push(vec!["dead grants".to_owned(), joined(dead)]);
        }
    }
    rows.push(vec!["grants".to_owned(), grants.line()]);
    table(&[], &rows)
}

pub(super) fn ratelimits(v: &Value) -> String {
    let mut out = match v["enabled"].as_bool() {
        Some(true) => {
            let max_wait = Duration::from_millis(v["max_wait_ms"].as_u64().unwrap_or(0));
            let max_wait = humantime::format_duration(max_wait);
            format!("rate limiting on; a call waits at most {max_wait}\n")
        }
        _ => "rate limiting off: Zoom's answers pass through\n".to_owned(),
    };
    let budgets = v["budgets"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    if budgets.is_empty() {
        out.push_str("no budgets yet\n");
    } else {
        let header = [
            "ACCOUNT",
            "CATEGORY",
            "ZOOM/S",
            "PACED/S",
            "FREE NOW",
            "ZOOM REMAINING",
            "CLOSED UNTIL",
            "WAITING",
        ];
        let rows: Vec<Vec<String>> = budgets.iter().map(budget_row).collect();
        out.push('\n');
        out.push_str(&table(&header, &rows));
    }
    let closed = v["closed"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    if !closed.is_empty() {
        let header = ["ACCOUNT", "CATEGORY", "USER", "CLOSED UNTIL", "ZOOM SAID"];
        let rows: Vec<Vec<String>> = closed
            .iter()
            .map(|c| {
                let fields = [&c["account"], &c["category"], &c["user"]];
                let mut row: Vec<String> = fields.into_iter().map(cell).collect();
                row.extend([time(&c["until_ms"]), cell(&c["message"])]);
                row
            })
            .collect();
        out.push_str("\nclosed:\n");
        out.push_str(&table(&header, &rows));
    }
    out
}

/// `/deliveries`: one row per queue.
pub(super) fn deliveries(v: &Value) -> String {
    let queues = v["queues"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    if queues.is_empty() {
        return "no delivery queues: no [[webhook_target]] or [[notify]] configured\n".to_owned();
    }
    let header = [
        "QUEUE",
        "URL",
        "PENDING",
        "DEAD",
        "OLDEST",
        "ATTEMPTS",
        "NEXT ATTEMPT",
        "LAST ERROR",
    ];
    let rows: Vec<Vec<String>> = queues
        .iter()
        .map(|q| {
            let head = &q["head"];
            vec![
                cell(&q["queue"]),
                cell(&q["url"]),
                cell(&q["pending"]),
                cell(&q["dead"]),
                cell(&head["event"]),
                cell(&head["attempts"]),
                time(&head["next_attempt_ms"]),
                cell(&head["last_error"]),
            ]
        })
        .collect();
    table(&header, &rows)
}

/// `/deliveries/{queue}/dead`: the dead letters, oldest first.
pub(super) fn dead_letters(v: &Value) -> String {
    let dead = v["dead"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    if dead.is_empty() {
        return format!("no dead letters in {}\n", cell(&v["queue"]));
    }
    let header = ["ID", "EVENT", "QUEUED", "ATTEMPTS", "LAST ERROR"];
    let rows: Vec<Vec<String>> = dead
        .iter()
        .map(|d| {
            vec![
                cell(&d["id"]),
                cell(&d["event"]),
                time(&d["queued_at_ms"]),
                cell(&d["attempts"]),
                cell(&d["last_error"]),
            ]
        })
        .collect();
    table(&header, &rows)
}

fn budget_row(b: &Value) -> Vec<String> {
    let remaining = match (&b["zoom_remaining"], &b["zoom_remaining_type"]) {
        (Value::Null, _) => "-".to_owned(),
        (n, Value::Null) => cell(n),
        (n, kind) => format!("{} ({})", cell(n), cell(kind)),
    };
    let waiting: Vec<String> = b["waiting"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| format!("{} ({})", cell(&w["caller"]), cell(&w["requests"])))
        .collect();
    let waiting = if waiting.is_empty() {
        "-".to_owned()
    } else {
        waiting.join(", ")
    };
    vec![
        cell(&b["account"]),
        cell(&b["category"]),
        rate(&b["per_second"]),
        rate(&b["paced_per_second"]),
        cell(&b["available_now"]),
        remaining,
        time(&b["closed_until_ms"]),
        waiting,
    ]
}

/// Left-aligned columns two spaces apart; `header` may be empty (key-value lists).
pub(super) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    let lines: Vec<&Vec<String>> = std::iter::once(&header)
        .filter(|h| !h.is_empty())
        .chain(rows)
        .collect();
    let mut widths: Vec<usize> = Vec::new();
    for line in &lines {
        widths.resize(widths.len().max(line.len()), 0);
        for (w, c) in widths.iter_mut().zip(line.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for line in lines {
        let padded: Vec<String> = line
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(padded.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// One JSON value as a table cell: strings bare, `null` as `-`, booleans yes/no.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) if s.is_empty() => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Bool(true) => "yes".to_owned(),
        Value::Bool(false) => "no".to_owned(),
        other => other.to_string(),
    }
}

/// Milliseconds since the epoch as UTC RFC 3339; 0 or absent as `-`.
fn time(ms: &Value) -> String {
    match ms.as_u64() {
        None | Some(0) => "-".to_owned(),
        Some(ms) => {
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
        }
    }
}

/// A grant's time to expiry; `-` while it holds no token.
fn expires_in(g: &Value) -> String {
    let seconds = g["expires_in_seconds"].as_i64();
    match (g["expires_at_ms"].as_u64(), seconds) {
        (None | Some(0), _) | (_, None) => "-".to_owned(),
        (_, Some(s)) if s >= 0 => seconds_text(s.unsigned_abs()),
        (_, Some(s)) => format!("expired {} ago", seconds_text(s.unsigned_abs())),
    }
}

fn seconds_text(seconds: u64) -> String {
    humantime::format_duration(Duration::from_secs(seconds)).to_string()
}

/// A rate: whole numbers bare, fractions to three places.
fn rate(v: &Value) -> String {
    match v.as_f64() {
        Some(r) if r.fract() == 0.0 => format!("{r:.0}"),
        Some(r) => format!("{r:.3}"),
        None => "-".to_owned(),
    }
}

/// A JSON array of strings as `a; b`.
fn joined(list: &Value) -> String {
    let items: Vec<String> = list.as_array().into_iter().flatten().map(cell).collect();
    items.join("; ")
}

pub(super) fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    text.push('\n');
    text
}
