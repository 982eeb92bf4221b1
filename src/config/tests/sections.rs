//! Per-section validation: listen, zoom, apps, store and callers.

use super::*;

#[test]
fn bad_socket_addresses_name_the_key() {
    let m = extra_fails_on("[listen]\nproxy = \"localhost:8080\"\n", "listen.proxy");
    assert!(
        m.contains("invalid socket address \"localhost:8080\""),
        "{m}"
    );
    extra_fails_on("[listen]\nadmin = \"127.0.0.1\"\n", "listen.admin");
    extra_fails_on(
        "[listen]\nproxy = \"127.0.0.1:1\"\nadmin = \"127.0.0.1:1\"\n",
        "listen.admin",
    );
}

#[test]
fn public_url_must_be_http_or_https() {
    extra_fails_on("[listen]\npublic_url = \"ftp://x\"\n", "listen.public_url");
    extra_fails_on(
        "[listen]\npublic_url = \"127.0.0.1:8080\"\n",
        "listen.public_url",
    );
    extra_fails_on(
        "[listen]\npublic_url = \"http://h/?a=b\"\n",
        "listen.public_url",
    );
    let c = ok("[listen]\npublic_url = \"https://proxy.example.com/\"\n");
    assert_eq!(c.listen.public_url, "https://proxy.example.com");
}

#[test]
fn upstream_urls_are_scheme_and_host_only() {
    let c = ok("[zoom]\napi_url = \"https://api.zoom.us/\"\noauth_url = \"HTTPS://zoom.us\"\n");
    assert_eq!(c.zoom.api_url, "https://api.zoom.us/");
    assert_eq!(c.zoom.oauth_url.scheme_str(), Some("https"));
    let m = extra_fails_on(
        "[zoom]\napi_url = \"https://api.zoom.us/v2\"\n",
        "zoom.api_url",
    );
    assert!(m.contains("no path"), "{m}");
    extra_fails_on("[zoom]\napi_url = \"api.zoom.us\"\n", "zoom.api_url");
    extra_fails_on(
        "[zoom]\napi_url = \"https://u:p@api.zoom.us\"\n",
        "zoom.api_url",
    );
    extra_fails_on(
        "[zoom]\napi_url = \"https://api.zoom.us:99999\"\n",
        "zoom.api_url",
    );
    extra_fails_on(
        "[zoom]\noauth_url = \"https://zoom.us?x=1\"\n",
        "zoom.oauth_url",
    );
}

#[test]
fn dns_servers_are_ip_and_port_or_ip_alone() {
    let c = ok("[zoom]\ndns_servers = [\"10.96.0.10\", \" 127.0.0.1:5353 \", \"::1\"]\n");
    let want: Vec<SocketAddr> = ["10.96.0.10:53", "127.0.0.1:5353", "[::1]:53"]
        .iter()
        .map(|a| a.parse().expect("addr"))
        .collect();
    assert_eq!(c.zoom.dns_servers, want);
    let m = extra_fails_on("[zoom]\ndns_servers = []\n", "zoom.dns_servers");
    assert!(m.contains("resolv.conf"), "{m}");
    let m = extra_fails_on(
        "[zoom]\ndns_servers = [\"10.0.0.1\", \"dns.example:53\"]\n",
        "zoom.dns_servers[1]",
    );
    assert!(m.contains("\"dns.example:53\""), "{m}");
    extra_fails_on(
        "[zoom]\ndns_servers = [\"10.0.0.1:0\"]\n",
        "zoom.dns_servers[0]",
    );
    extra_fails_on(
        "[zoom]\ndns_servers = [\"0.0.0.0\"]\n",
        "zoom.dns_servers[0]",
    );
    extra_fails_on("[zoom]\ndns_servers = \"10.0.0.1\"\n", "zoom.dns_servers");
}

#[test]
fn plain_http_only_for_loopback_upstreams() {
    let m = extra_fails_on("[zoom]\napi_url = \"http://api.zoom.us\"\n", "zoom.api_url");
    assert!(matches!(
        parse("[zoom]\napi_url = \"http://api.zoom.us\"\n"),
        Err(ConfigError::InsecureUpstream { .. })
    ));
    assert!(m.contains("loopback"), "{m}");
    extra_fails_on(
        "[zoom]\noauth_url = \"http://10.0.0.1:80\"\n",
        "zoom.oauth_url",
    );
    extra_fails_on(
        "[zoom]\noauth_url = \"http://localhost.evil.com\"\n",
        "zoom.oauth_url",
    );
    for host in [
        "127.0.0.1:9",
        "127.3.4.5",
        "[::1]:9",
        "localhost:9",
        "LOCALHOST",
    ] {
        let c = ok(&format!("[zoom]\napi_url = \"http://{host}\"\n"));
        assert_eq!(c.zoom.api_url.scheme_str(), Some("http"), "{host}");
    }
}

#[test]
fn ca_file_is_resolved_and_must_hold_a_certificate() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    let pem = cert.cert.pem();
    let env = env()
        .file("certs/roots.pem", pem)
        .file("empty.pem", "\n")
        .file("junk.pem", "x");
    let text = |file: &str| format!("{MINIMAL}[zoom]\nca_file = \"{file}\"\n");
    let c = Config::from_toml_str(&text("./certs/roots.pem"), &env).expect("valid");
    assert_eq!(
        c.zoom.ca_file,
        Some(Path::new(BASE).join("certs/roots.pem"))
    );
    let m = fails_on(&text("missing.pem"), &env, "zoom.ca_file");
    assert!(m.contains("/etc/grantmux/missing.pem"), "{m}");
    fails_on(&text("empty.pem"), &env, "zoom.ca_file");
    fails_on(&text("junk.pem"), &env, "zoom.ca_file");
}

#[test]
fn zero_apps_is_an_error() {
    let error = Config::from_toml_str("", &env()).expect_err("no apps");
    assert!(matches!(error, ConfigError::NoApps));
    assert!(error.to_string().starts_with("app: "), "{error}");
}

#[test]
fn apps_need_a_unique_nonempty_client_id() {
    let m = extra_fails_on(
        "[[app]]\nclient_id = \"app1\"\nclient_secret_env = \"ZOOM_CLIENT_SECRET\"\n",
        "app[1].client_id",
    );
    assert!(m.contains("app[0]"), "{m}");
    fails_on(
        "[[app]]\nclient_secret_env = \"ZOOM_CLIENT_SECRET\"\n",
        &env(),
        "app[0].client_id",
    );
    fails_on(
        "[[app]]\nclient_id = \" \"\nclient_secret_env = \"ZOOM_CLIENT_SECRET\"\n",
        &env(),
        "app[0].client_id",
    );
}

#[test]
fn revoke_upstream_values() {
    let text = |v: &str| format!("{MINIMAL}revoke_upstream = \"{v}\"\n");
    let c = Config::from_toml_str(&text("last_binding"), &env()).expect("valid");
    assert_eq!(c.apps[0].revoke_upstream, RevokePolicy::LastBinding);
    let m = fails_on(&text("always"), &env(), "app[0].revoke_upstream");
    assert!(m.contains("\"never\" or \"last_binding\""), "{m}");
}

#[test]
fn store_backends() {
    let c = ok("[store]\nbackend = \"file\"\npath = \"state\"\n");
    let path = Path::new(BASE).join("state");
    assert_eq!(c.store.backend, StoreBackend::File { path });
    let c = ok("[store]\npath = \"/var/lib/grantmux\"\n");
    let path = Path::new("/var/lib/grantmux").to_owned();
    assert_eq!(c.store.backend, StoreBackend::File { path });
    let c = ok("[store]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:6379/0\"\nkey_env = \"OTHER_KEY\"\n");
    let redis = RedisStore {
        url: Secret::new("redis://127.0.0.1:6379/0"),
        lock_lease: DEFAULT_LOCK_LEASE,
        sentinel: None,
        min_replicas_acked: 0,
        replica_ack_timeout: DEFAULT_REPLICA_ACK_TIMEOUT,
    };
    assert_eq!(c.store.backend, StoreBackend::Redis(Box::new(redis)));
    extra_fails_on("[store]\nbackend = \"sqlite\"\n", "store.backend");
}

#[test]
fn redis_needs_exactly_one_valid_url() {
    let m = extra_fails_on(
        "[store]\nbackend = \"redis\"\nkey_env = \"OTHER_KEY\"\n",
        "store.url",
    );
    assert!(m.contains("url_env"), "{m}");
    let env = env().var("REDIS_URL", "rediss://:hunter2@redis.internal:6380");
    let text = format!(
        "{MINIMAL}[store]\nbackend = \"redis\"\nkey_env = \"OTHER_KEY\"\nurl_env = \"REDIS_URL\"\n"
    );
    let c = Config::from_toml_str(&text, &env).expect("valid");
    assert!(matches!(c.store.backend, StoreBackend::Redis { .. }));
    let both = format!("{text}url = \"redis://x\"\n");
    fails_on(&both, &env, "store.url_env");
    fails_on(
        &format!(
            "{MINIMAL}[store]\nbackend = \"redis\"\nkey_env = \"OTHER_KEY\"\nurl_env = \"NOPE\"\n"
        ),
        &env,
        "store.url_env",
    );
    let m = extra_fails_on(
        "[store]\nbackend = \"redis\"\nkey_env = \"OTHER_KEY\"\nurl = \"http://:pw-value@h\"\n",
        "store.url",
    );
    assert!(!m.contains("pw-value"), "{m}");
    extra_fails_on(
        "[store]\nbackend = \"redis\"\nkey_env = \"OTHER_KEY\"\nurl = \"redis://h\"\npath = \"x\"\n",
        "store.path",
    );
    extra_fails_on("[store]\nurl = \"redis://h\"\n", "store.url");
    extra_fails_on("[store]\nlock_lease = \"5s\"\n", "store.lock_lease");
}

#[test]
fn redis_needs_a_shared_key_and_a_lease() {
    let redis = "[store]\nbackend = \"redis\"\nurl = \"redis://h\"\n";
    let m = extra_fails_on(redis, "store.key_env");
    assert!(m.contains("every replica"), "{m}");
    let c = ok(&format!(
        "{redis}key_env = \"OTHER_KEY\"\nlock_lease = \"3s\"\n"
    ));
    let StoreBackend::Redis(r) = c.store.backend else {
        panic!("redis backend: {:?}", c.store.backend);
    };
    assert_eq!(r.lock_lease, Duration::from_secs(3));
    extra_fails_on(
        &format!("{redis}key_env = \"OTHER_KEY\"\nlock_lease = \"0s\"\n"),
        "store.lock_lease",
    );
    extra_fails_on(
        "[store]\nbackend = \"memory\"\npath = \"x\"\n",
        "store.path",
    );
}

#[test]
fn store_key_sources() {
    let env = env().file("keys/state.key", [7u8, 0, 255, 10]);
    let text = |extra: &str| format!("{MINIMAL}[store]\n{extra}");
    let c = Config::from_toml_str(&text("key_file = \"keys/state.key\"\n"), &env).expect("valid");
    assert_eq!(
        c.store.key,
        KeySource::File(Path::new(BASE).join("keys/state.key"))
    );
    let both = text("key_env = \"OTHER_KEY\"\nkey_file = \"keys/state.key\"\n");
    fails_on(&both, &env, "store.key_file");
    let m = fails_on(&text("key_env = \"GRANTMUX_KEY\"\n"), &env, "store.key_env");
    assert!(m.contains("GRANTMUX_KEY is not set"), "{m}");
    fails_on(&text("key_file = \"nope.key\"\n"), &env, "store.key_file");
}

#[test]
fn callers_bind_a_static_key_to_a_grant() {
    let c = ok(&caller("{ client_id = \"app1\", account_id = \"acct-1\" }"));
    assert_eq!(c.callers.len(), 1);
    assert_eq!(c.callers[0].name, "reports");
    assert_eq!(c.callers[0].key.expose(), CALLER_KEY);
    let want = GrantKey::new("app1", Subject::Account("acct-1".to_owned()));
    assert_eq!(c.callers[0].grant, want);
    let c = ok(&caller("{ client_id = \"app1\", user_id = \"u-1\" }"));
    assert_eq!(c.callers[0].grant.subject, Subject::User("u-1".to_owned()));
}

#[test]
fn caller_grant_must_name_a_known_app_and_one_subject() {
    let m = extra_fails_on(
        &caller("{ client_id = \"app9\", account_id = \"a\" }"),
        "caller[0].grant.client_id",
    );
    assert!(m.contains("\"app9\""), "{m}");
    extra_fails_on(
        &caller("{ client_id = \"app1\", account_id = \"a\", user_id = \"u\" }"),
        "caller[0].grant.user_id",
    );
    extra_fails_on(
        &caller("{ client_id = \"app1\" }"),
        "caller[0].grant.account_id",
    );
    extra_fails_on(
        &caller("{ account_id = \"a\" }"),
        "caller[0].grant.client_id",
    );
    extra_fails_on(
        &caller("{ client_id = \"app1\", user_id = \"\" }"),
        "caller[0].grant.user_id",
    );
    extra_fails_on(
        "[[caller]]\nname = \"r\"\nkey_env = \"REPORTS_KEY\"\n",
        "caller[0].grant",
    );
    extra_fails_on("[[caller]]\nkey_env = \"REPORTS_KEY\"\n", "caller[0].name");
}

#[test]
fn caller_names_and_keys_are_unique() {
    let grant = "{ client_id = \"app1\", account_id = \"a\" }";
    let second = |name: &str, var: &str| {
        format!("[[caller]]\nname = \"{name}\"\nkey_env = \"{var}\"\ngrant = {grant}\n")
    };
    let m = extra_fails_on(
        &format!("{}{}", caller(grant), second("reports", "OTHER_KEY")),
        "caller[1].name",
    );
    assert!(m.contains("caller[0]"), "{m}");
    let m = extra_fails_on(
        &format!("{}{}", caller(grant), second("billing", "REPORTS_KEY")),
        "caller[1].key_env",
    );
    assert!(m.contains("caller[0]") && !m.contains(CALLER_KEY), "{m}");
    ok(&format!(
        "{}{}",
        caller(grant),
        second("billing", "OTHER_KEY")
    ));
}

#[test]
fn rate_limit_defaults_to_pro_paced_and_on() {
    let config = ok("");
    let rl = &config.rate_limit;
    assert!(rl.enabled);
    assert_eq!(rl.plan, Plan::Pro);
    assert_eq!(rl.max_wait, Duration::from_secs(5));
    assert_eq!(rl.headroom, 0.05);
    use crate::ratelimit::Category::*;
    assert_eq!(rl.rates.per_second(Light), 30.0);
    assert_eq!(rl.rates.per_second(Medium), 20.0);
    assert_eq!(rl.rates.per_second(Heavy), 10.0);
    assert_eq!(rl.rates.per_second(ResourceIntensive), 10.0 / 60.0);
    assert_eq!(config.apps[0].weight, 1);
}

#[test]
fn rate_limit_plan_overrides_and_weights() {
    let config = ok(r#"
[[caller]]
name = "batch"
key_env = "REPORTS_KEY"
grant = { client_id = "app1", account_id = "acc" }
weight = 3
[rate_limit]
plan = "business"
medium = 45
resource_intensive_per_minute = 30
max_wait = "2s"
headroom = 0.1
"#);
    use crate::ratelimit::Category::*;
    let rl = &config.rate_limit;
    assert_eq!(rl.plan, Plan::Business);
    assert_eq!(rl.rates.per_second(Light), 80.0);
    assert_eq!(rl.rates.per_second(Medium), 45.0);
    assert_eq!(rl.rates.per_second(ResourceIntensive), 0.5);
    assert_eq!(rl.max_wait, Duration::from_secs(2));
    assert_eq!(config.callers[0].weight, 3);
    assert!(!ok("[rate_limit]\nenabled = false\n").rate_limit.enabled);
}

#[test]
fn rate_limit_errors_name_the_key() {
    let env = env();
    fails_on(
        &format!("{MINIMAL}[rate_limit]\nplan = \"gold\"\n"),
        &env,
        "rate_limit.plan",
    );
    fails_on(
        &format!("{MINIMAL}[rate_limit]\nplan = \"custom\"\nlight = 5\n"),
        &env,
        "rate_limit.medium",
    );
    fails_on(
        &format!("{MINIMAL}[rate_limit]\nheavy = 0\n"),
        &env,
        "rate_limit.heavy",
    );
    fails_on(
        &format!("{MINIMAL}[rate_limit]\nheadroom = 1.5\n"),
        &env,
        "rate_limit.headroom",
    );
    fails_on(
        &format!("{MINIMAL}[rate_limit]\nmax_wait = \"soon\"\n"),
        &env,
        "rate_limit.max_wait",
    );
    fails_on(&format!("{MINIMAL}weight = 0\n"), &env, "app[0].weight");
}

#[test]
fn log_level_is_a_filter() {
    assert_eq!(ok("").log.level, None);
    assert_eq!(
        ok("[log]\nlevel = \"grantmux=debug,info\"\n")
            .log
            .level
            .as_deref(),
        Some("grantmux=debug,info")
    );
    extra_fails_on("[log]\nlevel = \"grantmux=loud\"\n", "log.level");
}

#[test]
fn webhook_secrets_and_tolerance() {
    let c = ok("");
    assert!(c.apps[0].webhook_secret.is_none(), "off unless set");
    assert_eq!(c.webhooks.tolerance, DEFAULT_WEBHOOK_TOLERANCE);
    let env = env().var("ZOOM_WEBHOOK_SECRET", "whsec-1");
    let text = format!(
        "{MINIMAL}webhook_secret_env = \"ZOOM_WEBHOOK_SECRET\"\n[webhooks]\ntolerance = \"90s\"\n"
    );
    let c = Config::from_toml_str(&text, &env).expect("valid");
    assert_eq!(
        c.apps[0]
            .webhook_secret
            .as_ref()
            .map(|s| s.expose().to_owned()),
        Some("whsec-1".to_owned())
    );
    assert_eq!(c.webhooks.tolerance, Duration::from_secs(90));
    fails_on(
        &format!("{MINIMAL}webhook_secret_env = \"NOT_SET\"\n"),
        &env,
        "app[0].webhook_secret_env",
    );
    fails_on(
        &format!("{MINIMAL}[webhooks]\ntolerance = \"0s\"\n"),
        &env,
        "webhooks.tolerance",
    );
}

#[test]
fn webhook_targets_and_notify_urls() {
    let c = ok("");
    assert!(c.webhooks.targets.is_empty() && c.webhooks.notify.is_empty());
    assert_eq!(c.webhooks.delivery, Delivery::default());
    let env = env().var("NOTIFY_SECRET", "n-1");
    let text = format!(
        r#"{MINIMAL}
[webhooks]
listen = "127.0.0.1:9099"
max_attempts = 5
backoff_min = "2s"
backoff_max = "1m"
timeout = "3s"
[[webhook_target]]
url = "http://billing.internal:8080/zoom?team=a"
[[webhook_target]]
name = "crm"
url = "https://crm.example/hooks"
events = ["meeting.*", "app_deauthorized"]
[[notify]]
url = "https://ops.example/grantmux"
secret_env = "NOTIFY_SECRET"
events = ["grant.dead"]
"#
    );
    let c = Config::from_toml_str(&text, &env).expect("valid");
    let w = &c.webhooks;
    assert_eq!(w.listen, Some("127.0.0.1:9099".parse().expect("addr")));
    assert_eq!(
        w.delivery,
        Delivery {
            max_attempts: 5,
            backoff_min: Duration::from_secs(2),
            backoff_max: Duration::from_secs(60),
            timeout: Duration::from_secs(3),
        }
    );
    assert_eq!(
        w.targets[0].name, "http://billing.internal:8080/zoom?team=a",
        "named by URL"
    );
    assert_eq!(w.targets[1].name, "crm");
    assert!(event_matches(&w.targets[1].events, "meeting.ended"));
    assert!(!event_matches(&w.targets[1].events, "recording.completed"));
    assert!(
        event_matches(&w.targets[0].events, "recording.completed"),
        "no filter: all"
    );
    assert_eq!(w.notify[0].secret.expose(), "n-1");

    let bad = [
        ("[[webhook_target]]\nname = \"x\"\n", "webhook_target[0].url"),
        ("[[webhook_target]]\nurl = \"ftp://x\"\n", "webhook_target[0].url"),
        (
            "[[webhook_target]]\nurl = \"http://a/\"\n[[webhook_target]]\nurl = \"http://a/\"\n",
            "webhook_target[1].name",
        ),
        ("[[webhook_target]]\nurl = \"http://a/\"\napp = \"nobody\"\n", "webhook_target[0].app"),
        ("[[webhook_target]]\nurl = \"http://a/\"\nevents = [\"*\"]\n", "webhook_target[0].events"),
        ("[[notify]]\nurl = \"http://a/\"\n", "notify[0].secret_env"),
        (
            "[[notify]]\nurl = \"http://a/\"\nsecret_env = \"NOTIFY_SECRET\"\nevents = [\"grant.died\"]\n",
            "notify[0].events",
        ),
        ("[webhooks]\nmax_attempts = 0\n", "webhooks.max_attempts"),
        ("[webhooks]\nbackoff_min = \"1m\"\nbackoff_max = \"1s\"\n", "webhooks.backoff_max"),
        ("[webhooks]\nlisten = \"not-an-address\"\n", "webhooks.listen"),
    ];
    for (extra, key) in bad {
        fails_on(&format!("{MINIMAL}{extra}"), &env, key);
    }
}

#[test]
fn redis_sentinel_and_replica_acknowledgement() {
    let env = env().var("REDIS_URL", "rediss://:pw-value@ignored:6380/1");
    let redis = format!("{MINIMAL}[store]\nbackend = \"redis\"\nkey_env = \"OTHER_KEY\"\n");
    let text = format!(
        "{redis}url_env = \"REDIS_URL\"\nsentinels = [\"10.0.0.1:26379\", \"s-1.sentinel:26379\"]\nsentinel_master = \"grantmux\"\nmin_replicas_acked = 1\nreplica_ack_timeout = \"500ms\"\n"
    );
    let c = Config::from_toml_str(&text, &env).expect("valid");
    let StoreBackend::Redis(r) = c.store.backend else {
        panic!("redis backend");
    };
    let sentinel = r.sentinel.expect("sentinel");
    assert_eq!(sentinel.addrs, ["10.0.0.1:26379", "s-1.sentinel:26379"]);
    assert_eq!(sentinel.master, "grantmux");
    assert_eq!(
        (r.min_replicas_acked, r.replica_ack_timeout),
        (1, Duration::from_millis(500))
    );
    // With Sentinels, the URL is optional: it only adds credentials and TLS.
    let bare = format!("{redis}sentinels = [\"h:1\"]\nsentinel_master = \"m\"\n");
    let c = Config::from_toml_str(&bare, &env).expect("valid without a URL");
    assert!(matches!(c.store.backend, StoreBackend::Redis(r) if r.min_replicas_acked == 0));
    let bad = [
        ("sentinels = [\"h:1\"]\n", "store.sentinel_master"),
        (
            "sentinel_master = \"m\"\nurl = \"redis://h\"\n",
            "store.sentinels",
        ),
        (
            "sentinels = []\nsentinel_master = \"m\"\n",
            "store.sentinels",
        ),
        (
            "sentinels = [\"no-port\"]\nsentinel_master = \"m\"\n",
            "store.sentinels",
        ),
        (
            "url = \"redis://h\"\nreplica_ack_timeout = \"0s\"\n",
            "store.replica_ack_timeout",
        ),
    ];
    for (extra, key) in bad {
        fails_on(&format!("{redis}{extra}"), &env, key);
    }
    extra_fails_on(
        "[store]\nmin_replicas_acked = 1\n",
        "store.min_replicas_acked",
    );
    extra_fails_on(
        "[store]\nbackend = \"memory\"\nsentinels = [\"h:1\"]\n",
        "store.sentinels",
    );
}
