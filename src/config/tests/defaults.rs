//! Defaults, durations and a config that sets every key.

use super::*;

#[test]
fn minimal_config_gets_every_default() {
    let c = ok("");
    assert_eq!(c.listen.proxy, DEFAULT_PROXY_ADDR.parse().expect("addr"));
    assert_eq!(c.listen.admin, DEFAULT_ADMIN_ADDR.parse().expect("addr"));
    assert_eq!(c.listen.public_url, "http://127.0.0.1:8080");
    assert_eq!(c.listen.max_connections, DEFAULT_MAX_CONNECTIONS);
    assert_eq!(
        c.listen.admin_max_connections,
        DEFAULT_ADMIN_MAX_CONNECTIONS
    );
    assert_eq!(c.listen.header_read_timeout, DEFAULT_HEADER_READ_TIMEOUT);
    assert_eq!(c.listen.max_header_bytes, DEFAULT_MAX_HEADER_BYTES);
    assert_eq!(c.listen.max_headers, DEFAULT_MAX_HEADERS);
    assert_eq!(c.zoom.api_url, "https://api.zoom.us/");
    assert_eq!(c.zoom.oauth_url, "https://zoom.us/");
    assert_eq!(c.zoom.ca_file, None);
    assert_eq!(c.zoom.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
    assert_eq!(c.zoom.response_timeout, DEFAULT_RESPONSE_TIMEOUT);
    assert!(c.zoom.dns_servers.is_empty());
    assert_eq!(c.apps.len(), 1);
    assert_eq!(c.apps[0].client_id, "app1");
    assert_eq!(
        c.apps[0]
            .client_secret
            .as_ref()
            .map(|s| s.expose())
            .unwrap_or_default(),
        APP_SECRET
    );
    assert_eq!(c.apps[0].revoke_upstream, RevokePolicy::Never);
    let state = Path::new(BASE).join("grantmux-state");
    assert_eq!(c.store.backend, StoreBackend::File { path: state });
    assert_eq!(c.store.key, KeySource::Generated);
    assert_eq!(c.refresh.ahead, DEFAULT_REFRESH_AHEAD);
    assert_eq!(c.refresh.keepalive, DEFAULT_KEEPALIVE);
    assert_eq!(c.refresh.backoff_min, DEFAULT_BACKOFF_MIN);
    assert_eq!(c.refresh.backoff_max, DEFAULT_BACKOFF_MAX);
    assert_eq!(c.proxy.replay_body_limit, DEFAULT_REPLAY_BODY_LIMIT);
    assert!(!c.proxy.passthrough);
    assert_eq!(c.proxy.shutdown_grace, DEFAULT_SHUTDOWN_GRACE);
    assert_eq!(c.proxy.upload_stall_timeout, DEFAULT_UPLOAD_STALL_TIMEOUT);
    assert_eq!(
        c.proxy.keep_forwarding_headers,
        DEFAULT_KEEP_FORWARDING_HEADERS
    );
    assert!(c.callers.is_empty());
}

#[test]
fn every_key_set_is_honoured() {
    let c = ok(r#"
[listen]
proxy = "0.0.0.0:18080"
admin = "[::1]:19090"
public_url = "https://grantmux.internal.example/zoom/"
max_connections = 5
admin_max_connections = 3
header_read_timeout = "3s"
max_header_bytes = 1024
max_headers = 7

[zoom]
api_url = "http://127.0.0.1:7000/"
oauth_url = "http://localhost:7001"
connect_timeout = "250ms"
response_timeout = "2m"
dns_servers = ["10.96.0.10:53", "[fd00::10]:5353"]

[store]
backend = "memory"
key_env = "OTHER_KEY"

[refresh]
ahead = "90s"
keepalive = "10d"
backoff_min = "2s"
backoff_max = "2s"

[proxy]
replay_body_limit = 0
passthrough = true
shutdown_grace = "0s"
upload_stall_timeout = "7s"
keep_forwarding_headers = ["X-Forwarded-Proto", "via"]
"#);
    assert_eq!(c.listen.proxy, "0.0.0.0:18080".parse().expect("addr"));
    assert_eq!(c.listen.admin, "[::1]:19090".parse().expect("addr"));
    assert_eq!(
        c.listen.public_url,
        "https://grantmux.internal.example/zoom"
    );
    assert_eq!(c.listen.max_connections, 5);
    assert_eq!(c.listen.admin_max_connections, 3);
    assert_eq!(c.listen.header_read_timeout, Duration::from_secs(3));
    assert_eq!((c.listen.max_header_bytes, c.listen.max_headers), (1024, 7));
    assert_eq!(c.zoom.api_url, "http://127.0.0.1:7000/");
    assert_eq!(c.zoom.api_url.port_u16(), Some(7000));
    assert_eq!(c.zoom.oauth_url, "http://localhost:7001/");
    assert_eq!(c.zoom.connect_timeout, Duration::from_millis(250));
    assert_eq!(c.zoom.response_timeout, Duration::from_secs(120));
    assert_eq!(
        c.zoom.dns_servers,
        vec![
            "10.96.0.10:53".parse::<SocketAddr>().expect("addr"),
            "[fd00::10]:5353".parse().expect("addr")
        ]
    );
    assert_eq!(c.store.backend, StoreBackend::Memory);
    assert_eq!(c.store.key, KeySource::Env("OTHER_KEY".to_owned()));
    assert_eq!(c.refresh.ahead, Duration::from_secs(90));
    assert_eq!(c.refresh.keepalive, Duration::from_secs(10 * 24 * 3600));
    assert_eq!(c.refresh.backoff_min, Duration::from_secs(2));
    assert_eq!(c.refresh.backoff_max, Duration::from_secs(2));
    assert_eq!(c.proxy.replay_body_limit, 0);
    assert!(c.proxy.passthrough);
    assert_eq!(c.proxy.shutdown_grace, Duration::ZERO);
    assert_eq!(c.proxy.upload_stall_timeout, Duration::from_secs(7));
    assert_eq!(
        c.proxy.keep_forwarding_headers,
        ["x-forwarded-proto", "via"],
        "lowercased"
    );
}

#[test]
fn keep_forwarding_headers_names_only_forwarding_headers() {
    let m = extra_fails_on(
        "[proxy]\nkeep_forwarding_headers = [\"x-forwarded-for\", \"authorization\"]\n",
        "proxy.keep_forwarding_headers",
    );
    assert!(
        m.contains("\"authorization\" is not a forwarding header"),
        "{m}"
    );
    let m = extra_fails_on(
        "[proxy]\nkeep_forwarding_headers = [\"x forwarded\"]\n",
        "proxy.keep_forwarding_headers",
    );
    assert!(m.contains("not a header name"), "{m}");
    extra_fails_on(
        "[proxy]\nkeep_forwarding_headers = \"x-real-ip\"\n",
        "proxy.keep_forwarding_headers",
    );
}

#[test]
fn public_url_defaults_to_the_proxy_address() {
    let c = ok("[listen]\nproxy = \"[::1]:8443\"\n");
    assert_eq!(c.listen.public_url, "http://[::1]:8443");
}

#[test]
fn durations_are_human_strings() {
    for (text, want) in [
        ("90s", Duration::from_secs(90)),
        ("5m", Duration::from_secs(300)),
        ("1h 30m", Duration::from_secs(5400)),
        ("30d", Duration::from_secs(30 * 86400)),
        ("1500ms", Duration::from_millis(1500)),
    ] {
        let c = ok(&format!("[refresh]\nahead = \"{text}\"\n"));
        assert_eq!(c.refresh.ahead, want, "{text}");
    }
}

#[test]
fn bad_duration_names_the_key_and_value() {
    let m = extra_fails_on("[refresh]\nahead = \"5 parsecs\"\n", "refresh.ahead");
    assert!(m.contains("invalid duration \"5 parsecs\""), "{m}");
    extra_fails_on(
        "[zoom]\nconnect_timeout = \"soon\"\n",
        "zoom.connect_timeout",
    );
    extra_fails_on("[proxy]\nshutdown_grace = \"\"\n", "proxy.shutdown_grace");
    extra_fails_on(
        "[proxy]\nupload_stall_timeout = \"0s\"\n",
        "proxy.upload_stall_timeout",
    );
}

#[test]
fn zero_limits_and_timeouts_are_rejected() {
    extra_fails_on("[listen]\nmax_connections = 0\n", "listen.max_connections");
    extra_fails_on(
        "[listen]\nadmin_max_connections = 0\n",
        "listen.admin_max_connections",
    );
    extra_fails_on(
        "[listen]\nheader_read_timeout = \"0s\"\n",
        "listen.header_read_timeout",
    );
    extra_fails_on(
        "[zoom]\nresponse_timeout = \"0s\"\n",
        "zoom.response_timeout",
    );
    extra_fails_on("[refresh]\nbackoff_min = \"0s\"\n", "refresh.backoff_min");
}

#[test]
fn backoff_max_below_backoff_min_is_rejected() {
    let m = extra_fails_on(
        "[refresh]\nbackoff_min = \"10s\"\nbackoff_max = \"5s\"\n",
        "refresh.backoff_max",
    );
    assert!(m.contains("5s") && m.contains("10s"), "{m}");
    // Against the default minimum (1s), too.
    extra_fails_on(
        "[refresh]\nbackoff_max = \"500ms\"\n",
        "refresh.backoff_max",
    );
}
