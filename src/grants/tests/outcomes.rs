//! Fresh, stale, expired, transient, `invalid_grant`, lease lapsed, and a
//! caller that hangs up while Zoom is answering.

use std::time::Duration;

use super::support::{user_key, Answer, FakeZoom, World};
use crate::grants::{Issued, TokenError};
use crate::secret::Secret;
use crate::store::GrantStore as _;

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn a_fresh_token_is_served_without_calling_zoom() {
    let w = World::new(FakeZoom::new(false), HOUR).await;
    let cur = w.grant().token().await.expect("token");
    assert_eq!(cur.version, 1);
    assert_eq!(w.zoom.count(), 0);
}

#[tokio::test]
async fn a_stale_token_is_served_while_one_background_refresh_replaces_it() {
    let w = World::new(FakeZoom::new(false), Duration::from_secs(60)).await;
    let grant = w.grant();
    for _ in 0..5 {
        let cur = grant.token().await.expect("stale token still served");
        assert_eq!(cur.version, 1);
    }
    // The record lock is held by the refresh until it has installed its result.
    w.zoom
        .calls
        .subscribe()
        .wait_for(|n| *n >= 1)
        .await
        .expect("called");
    let record = grant.record().await;
    assert_eq!(record.access_token.expose(), "at-1");
    assert_eq!(w.zoom.count(), 1);
    assert_eq!(w.stored().await.access_token.expose(), "at-1");
}

#[tokio::test]
async fn many_callers_of_an_expired_grant_cause_one_call_to_zoom() {
    let w = World::new(FakeZoom::new(false), Duration::ZERO).await;
    let waiters: Vec<_> = (0..50)
        .map(|_| {
            let grant = w.grant();
            tokio::spawn(async move { grant.token().await })
        })
        .collect();
    for waiter in waiters {
        let cur = waiter.await.expect("joined").expect("token");
        assert_eq!(cur.version, 2);
    }
    assert_eq!(w.zoom.count(), 1);
}

#[tokio::test]
async fn a_transient_failure_backs_off_then_the_background_retry_recovers() {
    let w = World::new(FakeZoom::new(false), Duration::ZERO).await;
    w.zoom.then(Answer::Transient);
    let grant = w.grant();
    let error = grant.token().await.expect_err("no token yet");
    assert!(matches!(error, TokenError::Unavailable(_)), "{error:?}");
    // Within the backoff, callers get the same answer without another call.
    let again = grant.token().await.expect_err("still backing off");
    assert_eq!(again, error);
    assert_eq!(w.zoom.count(), 1);
    // Past the backoff, the background retry refreshes with no caller waiting.
    while w.zoom.count() < 2 {
        w.clock.advance(Duration::from_secs(3 * 3600));
        tokio::task::yield_now().await;
    }
    assert_eq!(grant.record().await.access_token.expose(), "at-1");
    assert!(grant.token().await.is_ok());
}

#[tokio::test]
async fn invalid_grant_with_nothing_newer_stored_kills_the_grant() {
    let w = World::new(FakeZoom::new(false), Duration::ZERO).await;
    w.zoom.then(Answer::InvalidGrant);
    assert_eq!(w.grant().token().await.expect_err("dead"), TokenError::Dead);
    assert!(w.stored().await.is_dead(), "death is persisted");
    assert_eq!(w.grant().token().await.expect_err("dead"), TokenError::Dead);
    assert_eq!(w.zoom.count(), 1);
}

#[tokio::test]
async fn invalid_grant_after_another_replica_stored_a_newer_grant_takes_that_one() {
    let w = World::new(FakeZoom::new(false), Duration::ZERO).await;
    w.zoom.then(Answer::InvalidGrant);
    // Another replica refreshes first: Zoom then refuses our (rotated-out) token.
    let store = w.store.clone();
    let now = w.clock.now_ms();
    w.zoom.on_next_call(move || {
        let mut theirs = crate::grants::Grant::empty(user_key()).rotated(
            &Issued {
                access_token: Secret::new("theirs"),
                refresh_token: Some(Secret::new("their-rt")),
                expires_in_secs: 3600,
                scope: None,
                api_url: None,
            },
            now,
        );
        theirs.version = 5;
        let saved = futures_util::FutureExt::now_or_never(store.inner.save(&theirs));
        assert!(matches!(saved, Some(Ok(()))));
    });
    let cur = w.grant().token().await.expect("their token");
    assert_eq!(cur.version, 5);
    assert_eq!(w.grant().record().await.access_token.expose(), "theirs");
    assert!(!w.stored().await.is_dead());
}

#[tokio::test]
async fn a_lapsed_lease_means_no_call_to_zoom() {
    let w = World::new(FakeZoom::new(false), Duration::ZERO).await;
    w.store
        .lapse
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let error = w.grant().token().await.expect_err("no token");
    assert!(
        matches!(error, TokenError::Unavailable(ref r) if r.contains("lapsed")),
        "{error:?}"
    );
    assert_eq!(w.zoom.count(), 0);
}

#[tokio::test]
async fn a_refusal_other_than_invalid_grant_is_reported_and_does_not_kill() {
    let w = World::new(FakeZoom::new(false), Duration::ZERO).await;
    w.zoom.then(Answer::Refused);
    let error = w.grant().token().await.expect_err("refused");
    assert!(
        matches!(error, TokenError::Refused { status: 400, .. }),
        "{error:?}"
    );
    assert!(!w.stored().await.is_dead());
}

#[tokio::test]
async fn a_caller_that_hangs_up_while_zoom_answers_loses_nothing() {
    let w = World::new(FakeZoom::new(true), Duration::ZERO).await;
    let grant = w.grant();
    let caller = tokio::spawn({
        let grant = grant.clone();
        async move { grant.token().await }
    });
    // Zoom has acted on the refresh; its answer is on its way. The caller goes.
    w.zoom
        .calls
        .subscribe()
        .wait_for(|n| *n >= 1)
        .await
        .expect("called");
    caller.abort();
    assert!(caller.await.expect_err("aborted").is_cancelled());
    w.zoom.release();
    // The grant's own task takes the answer in: stored and published.
    assert_eq!(grant.record().await.access_token.expose(), "at-1");
    assert_eq!(
        w.stored().await.refresh_token.as_ref().map(Secret::expose),
        Some("rt-1")
    );
    let next = grant.token().await.expect("token");
    assert_eq!(next.version, 2);
    assert_eq!(w.zoom.count(), 1);
}

#[tokio::test]
async fn invalid_grant_while_an_authorization_is_being_adopted_is_not_death() {
    let w = World::new(FakeZoom::new(false), Duration::ZERO).await;
    w.zoom.then(Answer::InvalidGrant);
    let adopting = w.registry.ctx().adopting.begin();
    let error = w.grant().token().await.expect_err("no token yet");
    assert!(matches!(error, TokenError::Unavailable(_)), "{error:?}");
    assert!(
        !w.stored().await.is_dead(),
        "the adoption may revive it any moment"
    );
    drop(adopting);
}
