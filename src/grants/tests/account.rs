//! The Zoom account a grant's rate-limit budgets are kept under: learned when
//! tokens are adopted, kept across rotations, read from the published snapshot,
//! and absent (not an error) in records stored before grants kept it.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;

use super::support::{user_key, FakeZoom, World, ACCOUNT, CLIENT, USER};
use crate::grants::identity::{identify, learn_account};
use crate::grants::{Grant, GrantKey, Identity, Issued, Presented, Subject};
use crate::secret::Secret;
use crate::store::{GrantStore as _, StoreKey};

const HOUR: Duration = Duration::from_secs(3600);

fn code(n: u32) -> Presented {
    Presented::Code {
        code: Secret::new(format!("code-{n}")),
        form: format!("grant_type=authorization_code&code=code-{n}"),
    }
}

/// A JWT-shaped token with these claims, as Zoom's are (unsigned: never verified).
fn jwt(claims: &str) -> Secret {
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims);
    Secret::new(format!("eyJhbGciOiJIUzUxMiJ9.{payload}.sig"))
}

fn issued(access_token: Secret) -> Issued {
    Issued {
        access_token,
        refresh_token: Some(Secret::new("rt")),
        expires_in_secs: 3600,
        scope: None,
        api_url: None,
    }
}

#[tokio::test]
async fn a_code_exchange_records_the_users_account_and_publishes_it() {
    let w = World::empty(FakeZoom::new(false)).await;
    let (grant, _) = w
        .registry
        .adopt_presented(CLIENT, code(1))
        .await
        .expect("adopted");
    assert_eq!(grant.key(), &user_key());
    assert_eq!(grant.rate_account().as_deref(), Some(ACCOUNT));
    assert_eq!(grant.current().rate_account.as_deref(), Some(ACCOUNT));
    assert_eq!(w.stored().await.account_id.as_deref(), Some(ACCOUNT));
}

#[tokio::test]
async fn the_account_survives_refreshes_and_a_later_lookup_that_names_none() {
    let w = World::empty(FakeZoom::new(false)).await;
    let (grant, _) = w
        .registry
        .adopt_presented(CLIENT, code(1))
        .await
        .expect("adopted");
    // The fake's tokens are opaque: the refresh learns nothing, and keeps what was known.
    grant.force_refresh().await.expect("refreshed");
    assert_eq!(grant.record().await.access_token.expose(), "at-2");
    assert_eq!(grant.rate_account().as_deref(), Some(ACCOUNT));

    // The user authorizes again, and this time Zoom's answer names no account.
    w.clock.advance(Duration::from_secs(1));
    w.zoom.knows_account.store(false, Ordering::SeqCst);
    w.registry
        .adopt_presented(CLIENT, code(2))
        .await
        .expect("adopted again");
    assert_eq!(grant.record().await.access_token.expose(), "at-3");
    assert_eq!(grant.rate_account().as_deref(), Some(ACCOUNT));
    assert_eq!(w.stored().await.account_id.as_deref(), Some(ACCOUNT));
}

#[tokio::test]
async fn a_grant_stored_before_accounts_were_kept_has_none_until_a_token_names_it() {
    // World::new seeds a user grant the way an older grantmux stored it.
    let w = World::new(FakeZoom::new(false), HOUR).await;
    assert_eq!(
        w.grant().rate_account(),
        None,
        "per-user budget until known"
    );

    // A refresh to a token whose JWT carries `aid` teaches it, with no lookup.
    let tokens = issued(jwt(&format!(r#"{{"uid":"{USER}","aid":"acct-jwt"}}"#)));
    let mut next = w.stored().await.rotated(&tokens, w.clock.now_ms());
    learn_account(&mut next, &tokens.access_token);
    assert_eq!(next.account_id.as_deref(), Some("acct-jwt"));
    // One already known is not overwritten by a token's claim.
    let tokens = issued(jwt(r#"{"aid":"other"}"#));
    let mut known = next.rotated(&tokens, w.clock.now_ms());
    learn_account(&mut known, &tokens.access_token);
    assert_eq!(known.account_id.as_deref(), Some("acct-jwt"));
    // Nor does a claim name the account of a grant that is not a user's.
    let mut app = Grant::empty(GrantKey::new(CLIENT, Subject::App)).rotated(&tokens, 1);
    learn_account(&mut app, &tokens.access_token);
    assert_eq!(app.account_id, None);
}

#[tokio::test]
async fn without_users_me_the_identity_comes_from_the_jwt_claims() {
    let zoom = FakeZoom::new(false);
    zoom.knows_user.store(false, Ordering::SeqCst);
    let token = jwt(r#"{"uid":"u-9","aid":"acct-9"}"#);
    assert_eq!(
        identify(zoom.as_ref(), &issued(token)).await,
        Some(Identity {
            user_id: "u-9".into(),
            account_id: Some("acct-9".into()),
        })
    );
    // /v2/users/me names the user but not the account: the claim fills it in.
    zoom.knows_user.store(true, Ordering::SeqCst);
    zoom.knows_account.store(false, Ordering::SeqCst);
    let token = jwt(r#"{"uid":"ignored","aid":"acct-9"}"#);
    let who = identify(zoom.as_ref(), &issued(token))
        .await
        .expect("known");
    assert_eq!(
        (who.user_id.as_str(), who.account_id.as_deref()),
        (USER, Some("acct-9"))
    );
    // An opaque token and no lookup: nobody.
    zoom.knows_user.store(false, Ordering::SeqCst);
    assert_eq!(
        identify(zoom.as_ref(), &issued(Secret::new("opaque"))).await,
        None
    );
}

#[tokio::test]
async fn an_account_grant_budgets_on_its_subject_and_the_app_grant_on_nothing() {
    let w = World::empty(FakeZoom::new(false)).await;
    let s2s = GrantKey::new(CLIENT, Subject::Account("acct-s2s".into()));
    let grant = w
        .registry
        .install(&s2s, &issued(Secret::new("s2s-at")))
        .await
        .expect("installed");
    assert_eq!(grant.rate_account().as_deref(), Some("acct-s2s"));
    // Kept out of the record: the subject already says it.
    assert_eq!(grant.record().await.account_id, None);

    let app = GrantKey::new(CLIENT, Subject::App);
    let grant = w
        .registry
        .install(&app, &issued(Secret::new("app-at")))
        .await
        .expect("installed");
    assert_eq!(grant.rate_account(), None);
    let pending = Grant::empty(GrantKey::new(CLIENT, Subject::Pending("h".into())));
    assert_eq!(pending.rate_account(), None);
}

#[test]
fn every_next_version_of_a_grant_keeps_its_account() {
    let grant = Grant {
        account_id: Some(ACCOUNT.into()),
        ..Grant::empty(user_key())
    };
    let next = [
        grant.rotated(&issued(Secret::new("at")), 1),
        grant.killed("gone"),
        grant.bumped(),
        grant.with_binding(super::support::binding("b")),
        grant.with_revoked("b"),
        grant.moved_into(user_key()),
    ];
    for next in next {
        assert_eq!(next.account_id.as_deref(), Some(ACCOUNT), "{next:?}");
    }
}

#[test]
fn a_record_stored_before_account_id_existed_opens_with_none() {
    // Every persistent backend stores serde_json(Grant), sealed under the grant's id.
    let cipher = StoreKey::generate().cipher();
    let grant = Grant {
        account_id: Some(ACCOUNT.into()),
        ..Grant::empty(user_key())
            .rotated(&issued(Secret::new("at")), 1)
            .with_binding(super::support::binding("b"))
    };
    let id = grant.key.id();
    let mut old = serde_json::to_value(&grant).expect("encodes");
    let removed = old
        .as_object_mut()
        .and_then(|fields| fields.remove("account_id"));
    assert_eq!(removed, Some(serde_json::json!(ACCOUNT)));
    let sealed = cipher.seal(id.as_bytes(), old.to_string().as_bytes());
    let opened = cipher.open_grant("test", &id, &sealed).expect("opens");
    assert_eq!(
        opened,
        Grant {
            account_id: None,
            ..grant.clone()
        }
    );

    // And a record that has it keeps it.
    let sealed = cipher.seal_grant(&grant).expect("seals");
    assert_eq!(
        cipher.open_grant("test", &id, &sealed).expect("opens"),
        grant
    );
}

#[tokio::test]
async fn an_account_learned_by_another_replica_is_picked_up_from_the_store() {
    let w = World::new(FakeZoom::new(false), HOUR).await;
    let grant = w.grant();
    assert_eq!(grant.rate_account(), None);
    let theirs = Grant {
        account_id: Some(ACCOUNT.into()),
        ..w.stored().await.bumped()
    };
    w.store.inner.save(&theirs).await.expect("saved");
    grant.sync_from_store().await;
    let seen: Option<Arc<str>> = grant.rate_account();
    assert_eq!(seen.as_deref(), Some(ACCOUNT));
}
