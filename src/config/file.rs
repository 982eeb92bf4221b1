//! The raw TOML shape of `proxy.toml`, exactly as written: stage one of two.
//!
//! Every key is optional here, so that a missing one becomes a validation error
//! that names it, or a `DEFAULT_*` constant, in `validate.rs`. Values that need
//! parsing (durations, addresses, URLs, enum names) stay strings for the same
//! reason: the error can then say which key held the bad value.
//! `deny_unknown_fields` everywhere turns a typo into an error instead of a
//! silently ignored setting.

use serde::Deserialize;

use crate::secret::Secret;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileConfig {
    pub(super) listen: FileListen,
    pub(super) zoom: FileZoom,
    #[serde(rename = "app")]
    pub(super) apps: Vec<FileApp>,
    pub(super) store: FileStore,
    pub(super) refresh: FileRefresh,
    pub(super) proxy: FileProxy,
    #[serde(rename = "caller")]
    pub(super) callers: Vec<FileCaller>,
    pub(super) intercept: FileIntercept,
    pub(super) rate_limit: FileRateLimit,
    pub(super) log: FileLog,
    pub(super) webhooks: FileWebhooks,
    #[serde(rename = "webhook_target")]
    pub(super) webhook_targets: Vec<FileWebhookTarget>,
    #[serde(rename = "notify")]
    pub(super) notify: Vec<FileNotify>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileListen {
    pub(super) proxy: Option<String>,
    pub(super) admin: Option<String>,
    pub(super) public_url: Option<String>,
    pub(super) max_connections: Option<usize>,
    pub(super) admin_max_connections: Option<usize>,
    pub(super) header_read_timeout: Option<String>,
    pub(super) max_header_bytes: Option<usize>,
    pub(super) max_headers: Option<usize>,
    pub(super) forward_proxy: Option<String>,
    pub(super) tls: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileIntercept {
    pub(super) hosts: Option<Vec<String>>,
    pub(super) ca_cert_file: Option<String>,
    pub(super) ca_key_file: Option<String>,
    pub(super) ca_bundle_export: Option<String>,
    pub(super) tunnel: Vec<String>,
    pub(super) leaf_lifetime: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileZoom {
    pub(super) api_url: Option<String>,
    pub(super) oauth_url: Option<String>,
    pub(super) ca_file: Option<String>,
    pub(super) connect_timeout: Option<String>,
    pub(super) response_timeout: Option<String>,
    pub(super) dns_servers: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileApp {
    pub(super) client_id: Option<String>,
    pub(super) client_secret_env: Option<String>,
    pub(super) client_secret_file: Option<String>,
    pub(super) public: bool,
    pub(super) revoke_upstream: Option<String>,
    pub(super) weight: Option<u32>,
    pub(super) webhook_secret_env: Option<String>,
    pub(super) webhook_secret_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileWebhooks {
    pub(super) tolerance: Option<String>,
    pub(super) listen: Option<String>,
    pub(super) max_attempts: Option<u32>,
    pub(super) backoff_min: Option<String>,
    pub(super) backoff_max: Option<String>,
    pub(super) timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileWebhookTarget {
    pub(super) name: Option<String>,
    pub(super) url: Option<String>,
    pub(super) events: Option<Vec<String>>,
    pub(super) app: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileNotify {
    pub(super) name: Option<String>,
    pub(super) url: Option<String>,
    pub(super) events: Option<Vec<String>>,
    pub(super) secret_env: Option<String>,
    pub(super) secret_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileStore {
    pub(super) backend: Option<String>,
    pub(super) path: Option<String>,
    /// A Redis URL may carry a password, so even the raw value is redacted.
    pub(super) url: Option<Secret>,
    pub(super) url_env: Option<String>,
    pub(super) lock_lease: Option<String>,
    pub(super) sentinels: Option<Vec<String>>,
    pub(super) sentinel_master: Option<String>,
    pub(super) min_replicas_acked: Option<u32>,
    pub(super) replica_ack_timeout: Option<String>,
    pub(super) key_env: Option<String>,
    pub(super) key_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileRefresh {
    pub(super) ahead: Option<String>,
    pub(super) keepalive: Option<String>,
    pub(super) backoff_min: Option<String>,
    pub(super) backoff_max: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileProxy {
    pub(super) replay_body_limit: Option<usize>,
    pub(super) passthrough: Option<bool>,
    pub(super) shutdown_grace: Option<String>,
    pub(super) upload_stall_timeout: Option<String>,
    pub(super) keep_forwarding_headers: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileCaller {
    pub(super) name: Option<String>,
    pub(super) key_env: Option<String>,
    pub(super) key_file: Option<String>,
    pub(super) grant: Option<FileGrant>,
    pub(super) weight: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileGrant {
    pub(super) client_id: Option<String>,
    pub(super) account_id: Option<String>,
    pub(super) user_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileRateLimit {
    pub(super) enabled: Option<bool>,
    pub(super) plan: Option<String>,
    pub(super) max_wait: Option<String>,
    pub(super) headroom: Option<f64>,
    /// Per-label overrides, requests per second (Resource-intensive: per minute).
    pub(super) light: Option<f64>,
    pub(super) medium: Option<f64>,
    pub(super) heavy: Option<f64>,
    pub(super) resource_intensive_per_minute: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileLog {
    pub(super) level: Option<String>,
}
