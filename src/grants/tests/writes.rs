//! The store side of a rotation: conflicts rebased, a failing store holding the
//! token in memory until it recovers, and the last write at shutdown.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::support::{FakeZoom, World};
use crate::secret::Secret;

#[tokio::test]
async fn three_conflicts_in_a_row_are_rebased_and_nothing_is_lost() {
    let w = World::new(FakeZoom::new(false), Duration::ZERO).await;
    w.store.rivals.store(3, Ordering::SeqCst);
    let cur = w.grant().token().await.expect("token");
    let stored = w.stored().await;
    assert_eq!(
        stored.access_token.expose(),
        "at-1",
        "our rotated token is stored"
    );
    assert_eq!(
        stored.refresh_token.as_ref().map(Secret::expose),
        Some("rt-1")
    );
    let rivals: Vec<_> = stored.bindings.iter().map(|b| b.id.as_str()).collect();
    assert_eq!(
        rivals,
        ["rival-3", "rival-2", "rival-1"],
        "the other writers' bindings survive"
    );
    assert_eq!(cur.version, stored.version);
    assert!(!w.grant().is_unpersisted());
}

#[tokio::test]
async fn a_store_that_fails_mid_run_holds_the_token_in_memory_until_it_recovers() {
    let w = World::new(FakeZoom::new(false), Duration::ZERO).await;
    w.store.inner.set_fail_writes(true);
    let grant = w.grant();
    let cur = grant
        .token()
        .await
        .expect("the new token is served from memory");
    assert!(grant.is_unpersisted());
    assert_eq!(
        w.stored().await.access_token.expose(),
        "at-0",
        "the store still has the old one"
    );
    assert!(grant.flush().await.is_err(), "the store still refuses");
    assert!(grant.is_unpersisted());

    w.store.inner.set_fail_writes(false);
    grant.flush().await.expect("written");
    assert!(!grant.is_unpersisted());
    let stored = w.stored().await;
    assert_eq!(stored.access_token.expose(), "at-1");
    assert_eq!(
        stored.refresh_token.as_ref().map(Secret::expose),
        Some("rt-1")
    );
    assert_eq!(grant.token().await.expect("token").version, cur.version);
    assert_eq!(w.zoom.count(), 1);
}

#[tokio::test]
async fn the_retry_owned_by_the_process_writes_the_token_once_the_store_is_back() {
    let w = World::new(FakeZoom::new(false), Duration::ZERO).await;
    w.store.inner.set_fail_writes(true);
    let grant = w.grant();
    grant.token().await.expect("token");
    w.store.inner.set_fail_writes(false);
    // The retry sleeps its backoff on the grant clock: move the clock past it
    // until the retry has written (it may start sleeping after any advance).
    while grant.is_unpersisted() {
        w.clock.advance(Duration::from_secs(3 * 3600));
        tokio::task::yield_now().await;
    }
    assert_eq!(w.stored().await.access_token.expose(), "at-1");
}

#[tokio::test]
async fn shutdown_names_every_grant_whose_rotated_token_the_store_still_refuses() {
    let w = World::new(FakeZoom::new(false), Duration::ZERO).await;
    w.store.inner.set_fail_writes(true);
    w.grant().token().await.expect("token");
    let unsaved = w.registry.flush().await;
    assert_eq!(unsaved, [w.grant().id()]);

    w.store.inner.set_fail_writes(false);
    assert!(w.registry.flush().await.is_empty(), "the last write landed");
    assert_eq!(w.stored().await.access_token.expose(), "at-1");
}
