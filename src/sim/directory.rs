//! In-memory users and meetings behind the simulated REST routes.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, UNIX_EPOCH};

use serde_json::{json, Map, Value};

/// Meeting ids start here so they look like Zoom's 11-digit ids.
const FIRST_MEETING_ID: u64 = 85_000_000_001;

/// Fields a PATCH may not change.
const READ_ONLY: &[&str] = &["id", "uuid", "host_id", "join_url", "created_at"];

pub(crate) struct Directory {
    account_id: String,
    owner: String,
    /// User id → created-at (RFC 3339).
    users: HashMap<String, String>,
    /// Ordered so listings are stable.
    meetings: BTreeMap<u64, Map<String, Value>>,
    next_meeting_id: u64,
}

// === impl Directory ===

impl Directory {
    pub(crate) fn new(account_id: &str, owner: &str, now_secs: u64) -> Self {
        let mut dir = Self {
            account_id: account_id.to_owned(),
            owner: owner.to_owned(),
            users: HashMap::new(),
            meetings: BTreeMap::new(),
            next_meeting_id: FIRST_MEETING_ID,
        };
        dir.ensure_user(owner, now_secs);
        dir
    }

    /// Creates `id` on first use, as `/oauth/authorize` does for a new `login_hint`.
    pub(crate) fn ensure_user(&mut self, id: &str, now_secs: u64) {
        self.users
            .entry(id.to_owned())
            .or_insert_with(|| rfc3339(now_secs));
    }

    pub(crate) fn has_user(&self, id: &str) -> bool {
        self.users.contains_key(id)
    }

    /// The `GET /v2/users/{id}` shape (a subset of Zoom's fields).
    pub(crate) fn user(&self, id: &str) -> Option<Value> {
        let created_at = self.users.get(id)?;
        let owner = id == self.owner;
        Some(json!({
            "id": id,
            "first_name": "Sim",
            "last_name": id,
            "display_name": format!("Sim {id}"),
            "email": format!("{id}@sim.example"),
            "type": 2,
            "role_name": if owner { "Owner" } else { "Member" },
            "pmi": 1_000_000_000u64 + (fnv(id) % 8_999_999_999),
            "use_pmi": false,
            "timezone": "UTC",
            "verified": 1,
            "dept": "",
            "created_at": created_at,
            "user_created_at": created_at,
            "account_id": self.account_id,
            "language": "en-US",
            "status": "active",
            "cluster": "sim",
        }))
    }

    /// Stores a meeting from a POST body; unknown fields are kept as sent.
    pub(crate) fn create_meeting(
        &mut self,
        host: &str,
        body: Map<String, Value>,
        now_secs: u64,
    ) -> Value {
        let id = self.next_meeting_id;
        self.next_meeting_id += 1;
        let now = rfc3339(now_secs);
        let mut m = body;
        m.entry("topic").or_insert_with(|| json!("Zoom meeting"));
        m.entry("type").or_insert_with(|| json!(2));
        m.entry("start_time").or_insert_with(|| json!(now));
        m.entry("duration").or_insert_with(|| json!(60));
        m.entry("timezone").or_insert_with(|| json!("UTC"));
        m.insert("id".into(), json!(id));
        m.insert(
            "uuid".into(),
            json!(format!("{}==", super::jwt::random_id(16))),
        );
        m.insert("host_id".into(), json!(host));
        m.insert(
            "join_url".into(),
            json!(format!("https://sim.zoom.us/j/{id}")),
        );
        m.insert("created_at".into(), json!(now));
        self.meetings.insert(id, m.clone());
        Value::Object(m)
    }

    pub(crate) fn meetings_of(&self, host: &str) -> Value {
        let list: Vec<&Map<String, Value>> = self
            .meetings
            .values()
            .filter(|m| m.get("host_id").and_then(Value::as_str) == Some(host))
            .collect();
        json!({"page_size": 30, "total_records": list.len(), "meetings": list})
    }

    pub(crate) fn meeting(&self, id: u64) -> Option<Value> {
        self.meetings.get(&id).cloned().map(Value::Object)
    }

    pub(crate) fn patch_meeting(&mut self, id: u64, body: Map<String, Value>) -> bool {
        let Some(m) = self.meetings.get_mut(&id) else {
            return false;
        };
        for (k, v) in body {
            if !READ_ONLY.contains(&k.as_str()) {
                m.insert(k, v);
            }
        }
        true
    }

    pub(crate) fn delete_meeting(&mut self, id: u64) -> bool {
        self.meetings.remove(&id).is_some()
    }
}

fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

/// A stable small hash, so a user's PMI is the same on every run.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
