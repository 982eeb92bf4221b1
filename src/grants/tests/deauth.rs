//! The uninstall wipe's two writes: the wiped record owes its
//! `grant.deauthorized` event until the write after the event clears it, and
//! a retry of the uninstall finishes a wipe only when something is owed.

use std::time::Duration;

use super::support::{FakeZoom, World};
use crate::grants::GrantState;
use crate::store::GrantStore as _;

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn a_wipe_is_stored_owing_its_event_then_cleared_and_a_retry_is_a_duplicate() {
    let w = World::new(FakeZoom::new(false), HOUR).await;
    let before = w.stored().await.version;
    assert!(w.grant().deauthorize(7, None).await.expect("wiped"));
    let stored = w.stored().await;
    assert!(!stored.owes_event(), "the event is raised and recorded");
    assert_eq!(
        (stored.version, stored.deauthorized_at()),
        (before + 2, Some(7))
    );
    assert!(!w.grant().deauthorize(8, None).await.expect("answered"));
    assert_eq!(w.stored().await, stored, "a duplicate changes nothing");
}

#[tokio::test]
async fn a_wipe_stored_by_a_process_that_died_is_finished_by_the_retry_once() {
    let w = World::new(FakeZoom::new(false), HOUR).await;
    // What a process that died at `wipe_stored` left in the store.
    let left = w.stored().await.deauthorized(7);
    w.store.inner.save(&left).await.expect("saved");
    assert!(left.owes_event());
    assert!(
        w.grant().deauthorize(8, None).await.expect("finished"),
        "the retry completes the wipe"
    );
    let stored = w.stored().await;
    assert!(!stored.owes_event());
    assert_eq!(stored.deauthorized_at(), Some(7), "the wipe's own time");
    assert!(!w.grant().deauthorize(9, None).await.expect("answered"));
}

#[test]
fn a_wiped_record_stored_before_event_owed_existed_owes_nothing() {
    let raised = GrantState::Deauthorized {
        at_ms: 7,
        event_owed: false,
    };
    let json = serde_json::json!({"Deauthorized": {"at_ms": 7}});
    assert_eq!(serde_json::to_value(&raised).expect("encodes"), json);
    let old: GrantState = serde_json::from_value(json).expect("decodes");
    assert_eq!(
        old, raised,
        "an upgrade raises no event for an old uninstall"
    );
}
