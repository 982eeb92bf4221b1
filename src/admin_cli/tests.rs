//! The printed views, from JSON shaped as the admin API answers.

use serde_json::json;

use super::render;
use super::{base_url, grant_path, AdminCliError};

#[test]
fn a_table_aligns_its_columns_and_ends_lines_without_spaces() {
    let rows = vec![
        vec!["a-long-id".to_owned(), "x".to_owned()],
        vec!["b".to_owned(), "-".to_owned()],
    ];
    assert_eq!(
        render::table(&["ID", "STATE"], &rows),
        "ID         STATE\na-long-id  x\nb          -\n"
    );
}

#[test]
fn grants_show_expiry_state_and_yes_no() {
    let grants = json!({ "grants": [
        { "id": "c/user:u", "state": "live", "account_id": "acc", "bindings": 2,
          "expires_at_ms": 1_700_000_000_000u64, "expires_in_seconds": 3725,
          "refreshed_at_ms": 1_700_000_000_000u64, "unpersisted": false },
        { "id": "c/user:v", "state": "live", "account_id": null, "bindings": 0,
          "expires_at_ms": 1_700_000_000_000u64, "expires_in_seconds": -90,
          "refreshed_at_ms": 0, "unpersisted": true },
        { "id": "c/account:a", "state": "empty", "expires_at_ms": 0,
          "expires_in_seconds": -1_700_000_000i64, "unpersisted": false },
    ]});
    let out = render::grants(&grants);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("ID "), "{out}");
    assert!(lines[1].contains("1h 2m 5s") && lines[1].contains("2023-11-14T22:13:20Z"));
    assert!(lines[1].ends_with("no"), "{out}");
    assert!(lines[2].contains("expired 1m 30s ago") && lines[2].ends_with("yes"));
    assert!(lines[2].contains(" - "), "no account: {out}");
    let empty: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!(empty[..3], ["c/account:a", "empty", "-"], "{out}");
    assert_eq!(render::grants(&json!({ "grants": [] })), "no grants\n");
}

#[test]
fn a_grant_shows_why_it_is_dead_and_fields_added_later() {
    let g = json!({ "id": "c/user:u", "state": "dead", "dead_reason": "invalid_grant",
        "access_token": "", "expires_at_ms": 0, "new_field": 7 });
    let out = render::grant(&g);
    assert!(out.contains("dead because  invalid_grant"), "{out}");
    assert!(out.contains("new_field     7"), "{out}");
    assert!(!out.contains("access_token"), "{out}");
    let live = render::grant(&json!({ "id": "c/user:u", "dead_reason": null }));
    assert!(!live.contains("dead because"), "{live}");
}

#[test]
fn ratelimits_show_budgets_waiting_callers_and_closures() {
    let v = json!({
        "enabled": true, "max_wait_ms": 200,
        "budgets": [{ "account": "acc", "category": "Medium", "per_second": 20.0,
            "paced_per_second": 0.016_666, "available_now": false, "zoom_remaining": 3,
            "zoom_remaining_type": "daily", "closed_until_ms": null,
            "waiting": [{ "caller": "reports", "requests": 2 }] }],
        "closed": [{ "account": "acc", "category": "Heavy", "user": null,
            "until_ms": 1_700_000_000_000u64, "message": "You have reached the maximum" }],
    });
    let out = render::ratelimits(&v);
    assert!(
        out.starts_with("rate limiting on; a call waits at most 200ms\n"),
        "{out}"
    );
    let budget = out
        .lines()
        .find(|l| l.starts_with("acc "))
        .expect("a budget row");
    for part in ["Medium", "20", "0.017", "no", "3 (daily)", "reports (2)"] {
        assert!(budget.contains(part), "{part}: {out}");
    }
    assert!(out.contains("closed:\nACCOUNT"), "{out}");
    assert!(
        out.contains("2023-11-14T22:13:20Z  You have reached the maximum"),
        "{out}"
    );
    let off = render::ratelimits(&json!({ "enabled": false, "budgets": [], "closed": [] }));
    assert_eq!(
        off,
        "rate limiting off: Zoom's answers pass through\nno budgets yet\n"
    );
}

#[test]
fn admin_urls_are_plain_http_with_a_host() {
    assert_eq!(
        base_url("127.0.0.1:9090").ok(),
        Some("http://127.0.0.1:9090".into())
    );
    assert_eq!(
        base_url("http://[::1]:9090/").ok(),
        Some("http://[::1]:9090".into())
    );
    for bad in ["https://127.0.0.1:9090", "http://", "127.0.0.1:port"] {
        let error = base_url(bad).expect_err(bad);
        assert!(matches!(error, AdminCliError::Usage(_)), "{bad}: {error}");
        assert_eq!(error.exit_code(), 64);
    }
}

#[test]
fn a_grant_id_is_one_path_segment() {
    assert_eq!(
        grant_path("sim-client/user:a b", "/refresh"),
        "/grants/sim-client%2Fuser%3Aa+b/refresh"
    );
}

#[test]
fn the_configs_admin_address_is_reached_on_loopback() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("proxy.toml");
    let admin = |listen: &str| {
        let text = format!("[listen]\n{listen}\n[[app]]\nclient_id = \"x\"\n");
        std::fs::write(&path, text).expect("config written");
        super::configured_admin(Some(&path))
    };
    let addr = |a: &str| a.parse::<std::net::SocketAddr>().expect("an address");
    let ok = |r: Result<_, AdminCliError>| r.expect("an address");
    assert_eq!(
        ok(admin("admin = \"0.0.0.0:9090\"")),
        addr("127.0.0.1:9090")
    );
    assert_eq!(ok(admin("admin = \"[::]:9191\"")), addr("[::1]:9191"));
    assert_eq!(
        ok(admin("proxy = \"127.0.0.1:8080\"")),
        addr("127.0.0.1:9090")
    );
    for bad in ["admin = \"127.0.0.1:0\"", "admin = \"localhost:9090\""] {
        let error = admin(bad).expect_err(bad);
        assert!(error.to_string().contains("listen.admin"), "{error}");
        assert_eq!(error.exit_code(), 64);
    }
}

#[test]
fn deliveries_and_dead_letters_read_as_tables() {
    let queues = json!({ "queues": [
        { "queue": "target:billing", "url": "http://billing/zoom", "pending": 3, "dead": 1,
          "head": { "id": 7, "event": "meeting.created", "queued_at_ms": 1_700_000_000_000u64,
                    "attempts": 2, "next_attempt_ms": 1_700_000_000_000u64,
                    "last_error": "status 503" } },
        { "queue": "notify:ops", "url": "https://ops/hook", "pending": 0, "dead": 0,
          "head": null },
    ]});
    let out = render::deliveries(&queues);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("QUEUE "), "{out}");
    assert!(
        lines[1].contains("meeting.created") && lines[1].contains("2023-11-14T22:13:20Z"),
        "{out}"
    );
    assert!(lines[1].ends_with("status 503"), "{out}");
    let idle: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(
        idle[..4],
        ["notify:ops", "https://ops/hook", "0", "0"],
        "{out}"
    );
    assert!(render::deliveries(&json!({ "queues": [] })).contains("no delivery queues"));

    let dead = json!({ "queue": "target:billing", "dead": [
        { "id": 4, "event": "meeting.ended", "queued_at_ms": 1_700_000_000_000u64,
          "attempts": 20, "last_error": "connection refused" } ]});
    let out = render::dead_letters(&dead);
    assert!(
        out.lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("4 ") && l.ends_with("connection refused")),
        "{out}"
    );
    let none = json!({ "queue": "target:billing", "dead": [] });
    assert_eq!(
        render::dead_letters(&none),
        "no dead letters in target:billing\n"
    );
}
