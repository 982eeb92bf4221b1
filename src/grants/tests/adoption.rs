//! Legacy refresh tokens and codes adopted: once Zoom has answered, its tokens
//! are kept, whether or not the user can be identified yet.

use std::sync::atomic::Ordering;

use super::support::{user_key, FakeZoom, World, CLIENT};
use crate::grants::{hash, AdoptError, GrantKey, Presented, Subject};
use crate::secret::Secret;
use crate::store::GrantStore as _;

#[tokio::test]
async fn a_legacy_token_whose_user_cannot_be_identified_yet_is_kept_and_adopted_later() {
    let w = World::empty(FakeZoom::new(false)).await;
    w.zoom.knows_user.store(false, Ordering::SeqCst);
    let legacy = || Presented::Legacy(Secret::new("legacy-rt"));
    let error = w
        .registry
        .adopt_presented(CLIENT, legacy())
        .await
        .expect_err("user unknown");
    assert!(matches!(error, AdoptError::IdentityUnknown), "{error:?}");
    // Zoom's answer is stored under the legacy token's hash, and readiness says so.
    let pending = GrantKey::new(CLIENT, Subject::Pending(hash("legacy-rt")));
    let held = w
        .store
        .inner
        .load(&pending)
        .await
        .expect("load")
        .expect("stored");
    assert_eq!(held.access_token.expose(), "at-1");
    assert!(w
        .registry
        .get(&pending)
        .expect("in memory")
        .awaits_adoption());

    // Presented again once Zoom says who it is: the same tokens, no second call.
    w.zoom.knows_user.store(true, Ordering::SeqCst);
    let (grant, binding) = w
        .registry
        .adopt_presented(CLIENT, legacy())
        .await
        .expect("adopted");
    assert_eq!(grant.key(), &user_key());
    assert_eq!(grant.record().await.access_token.expose(), "at-1");
    assert_eq!(w.zoom.count(), 1);
    assert!(
        w.registry.get(&pending).is_none(),
        "nothing pending any more"
    );
    let moved = w
        .store
        .inner
        .load(&pending)
        .await
        .expect("load")
        .expect("stored");
    assert_eq!(moved.adopted_into(), Some(&user_key()));
    assert!(
        moved.access_token.is_empty(),
        "the tokens live in the user's grant only"
    );

    // And again: the same binding, answered from the grant.
    let (again, same) = w
        .registry
        .find_adopted(&hash("legacy-rt"))
        .expect("indexed");
    assert_eq!(
        (again.key(), same.as_str()),
        (&user_key(), binding.as_str())
    );
}

#[tokio::test]
async fn the_background_lookup_finishes_an_adoption_nobody_presents_again() {
    let w = World::empty(FakeZoom::new(false)).await;
    w.zoom.knows_user.store(false, Ordering::SeqCst);
    let legacy = Presented::Legacy(Secret::new("legacy-rt"));
    w.registry
        .adopt_presented(CLIENT, legacy)
        .await
        .expect_err("user unknown");
    w.zoom.knows_user.store(true, Ordering::SeqCst);
    let pending = w
        .registry
        .get(&GrantKey::new(CLIENT, Subject::Pending(hash("legacy-rt"))))
        .expect("pending");
    // The lookup is retried after a backoff on the grant clock: move it on
    // until the adoption finished (the retry may start sleeping after any advance).
    while pending.awaits_adoption() {
        w.clock.advance(std::time::Duration::from_secs(3 * 3600));
        tokio::task::yield_now().await;
    }
    assert_eq!(w.stored().await.access_token.expose(), "at-1");
    assert!(w.registry.find_adopted(&hash("legacy-rt")).is_some());
}

#[tokio::test]
async fn a_code_exchange_whose_caller_hung_up_still_installs_the_grant() {
    let w = World::empty(FakeZoom::new(true)).await;
    let code = Presented::Code {
        code: Secret::new("code-1"),
        form: "grant_type=authorization_code&code=code-1".into(),
    };
    let registry = w.registry.clone();
    let caller = tokio::spawn(async move { registry.adopt_presented(CLIENT, code).await });
    w.zoom
        .calls
        .subscribe()
        .wait_for(|n| *n >= 1)
        .await
        .expect("called");
    caller.abort();
    assert!(caller.await.expect_err("aborted").is_cancelled());
    w.zoom.release();
    w.registry.ctx().tasks.idle().await;
    assert_eq!(w.stored().await.access_token.expose(), "at-1");
    // Zoom spends a code once; so does grantmux.
    let again = Presented::Code {
        code: Secret::new("code-1"),
        form: String::new(),
    };
    let error = w
        .registry
        .adopt_presented(CLIENT, again)
        .await
        .expect_err("spent");
    assert!(matches!(error, AdoptError::Spent), "{error:?}");
    assert_eq!(w.zoom.count(), 1);
}

#[tokio::test]
async fn an_adoption_whose_lease_lapsed_does_not_call_zoom() {
    let w = World::empty(FakeZoom::new(false)).await;
    w.store.lapse.store(true, Ordering::SeqCst);
    let legacy = Presented::Legacy(Secret::new("legacy-rt"));
    let error = w
        .registry
        .adopt_presented(CLIENT, legacy)
        .await
        .expect_err("lapsed");
    assert!(matches!(error, AdoptError::Store(_)), "{error:?}");
    assert_eq!(
        w.zoom.count(),
        0,
        "the token is still the caller's to present again"
    );
    let pending = GrantKey::new(CLIENT, Subject::Pending(hash("legacy-rt")));
    assert!(
        w.registry.get(&pending).is_none(),
        "nothing held, nothing left behind"
    );
}

#[tokio::test]
async fn tokens_issued_in_the_millisecond_the_held_pair_was_installed_replace_it() {
    let w = World::new(FakeZoom::new(false), std::time::Duration::from_secs(3600)).await;
    let installed_at = w.stored().await.refreshed_at_ms;
    let issued = |n: u32| crate::grants::Issued {
        access_token: Secret::new(format!("at-new-{n}")),
        refresh_token: Some(Secret::new(format!("rt-new-{n}"))),
        expires_in_secs: 3600,
        scope: None,
        api_url: None,
    };
    // Sent before the held pair was installed: Zoom revoked it since.
    w.grant()
        .adopt(&issued(1), installed_at - 1, None, None)
        .await
        .expect("stored");
    assert_eq!(w.stored().await.access_token.expose(), "at-0");
    // The same millisecond: the ordinary case is a second authorization that
    // began after the first had finished, so Zoom revoked the held pair.
    w.grant()
        .adopt(&issued(2), installed_at, None, None)
        .await
        .expect("stored");
    let stored = w.stored().await;
    assert_eq!(stored.access_token.expose(), "at-new-2");
    assert_eq!(
        stored.refresh_token.as_ref().map(Secret::expose),
        Some("rt-new-2")
    );
}
