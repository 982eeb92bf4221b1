//! The Zoom account a grant's calls draw rate-limit budgets from: learned from
//! Zoom when a code is exchanged through grantmux, stored, kept across
//! rotations, and the subject itself for a Server-to-Server grant.

use std::sync::Arc;

use grantmux::config::KeySource;
use grantmux::grants::{GrantKey, Subject};
use grantmux::harness::Harness;
use grantmux::sim::{Faults, SimConfig};
use grantmux::store::{FileStore, GrantStore};

use crate::support::{authorize, gmx, token, tokens, CLIENT, USER};

/// Not the simulator's default, so the grant can only have learned it from the simulator.
const ACCOUNT: &str = "acct-rate-77";

async fn start(store: Option<Arc<dyn GrantStore>>) -> Harness {
    let sim = SimConfig {
        account_id: ACCOUNT.to_owned(),
        ..SimConfig::default()
    };
    Harness::start_with_store(sim, store, |_| {})
        .await
        .expect("harness starts")
}

fn user_key(user: &str) -> GrantKey {
    GrantKey::new(CLIENT, Subject::User(user.to_owned()))
}

#[tokio::test]
async fn a_code_exchange_through_grantmux_teaches_the_grant_its_zoom_account() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let store = Arc::new(FileStore::open(dir.path(), &KeySource::Generated).expect("store opens"));
    let shared: Arc<dyn GrantStore> = store.clone();
    let h = start(Some(shared)).await;
    authorize(&h, &gmx(&h), USER).await;

    let grant = h
        .gmx
        .registry
        .get(&user_key(USER))
        .expect("the user's grant");
    assert_eq!(grant.rate_account().as_deref(), Some(ACCOUNT));
    assert_eq!(grant.record().await.account_id.as_deref(), Some(ACCOUNT));
    // Encrypted and decoded again by the file store.
    let stored = store.load(&user_key(USER)).await.expect("load");
    assert_eq!(stored.expect("stored").account_id.as_deref(), Some(ACCOUNT));

    // A rotation keeps it, in the record and in the published token.
    let before = grant.current();
    let after = grant.force_refresh().await.expect("refreshed");
    assert!(!after.same_token(&before), "the token rotated");
    assert_eq!(after.rate_account.as_deref(), Some(ACCOUNT));
    let stored = store.load(&user_key(USER)).await.expect("load");
    assert_eq!(stored.expect("stored").account_id.as_deref(), Some(ACCOUNT));

    // Another user of the account draws on the same budget.
    authorize(&h, &gmx(&h), "second-user").await;
    let second = h
        .gmx
        .registry
        .get(&user_key("second-user"))
        .expect("the second user's grant");
    assert_eq!(second.rate_account(), grant.rate_account());
    h.shutdown().await;
}

#[tokio::test]
async fn without_users_me_the_account_comes_from_the_claims_of_zoom_s_token() {
    let h = start(None).await;
    // Every API call fails, /v2/users/me included: uid and aid of the JWT say it.
    h.sim.set_api_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    authorize(&h, &gmx(&h), USER).await;
    let grant = h
        .gmx
        .registry
        .get(&user_key(USER))
        .expect("the user's grant");
    assert_eq!(grant.rate_account().as_deref(), Some(ACCOUNT));
    h.shutdown().await;
}

#[tokio::test]
async fn a_server_to_server_grant_draws_on_the_account_it_is_for() {
    let h = start(None).await;
    let answer = token(
        &h,
        &gmx(&h),
        &[
            ("grant_type", "account_credentials"),
            ("account_id", ACCOUNT),
        ],
    )
    .await;
    tokens(&answer);
    let key = GrantKey::new(CLIENT, Subject::Account(ACCOUNT.to_owned()));
    let grant = h.gmx.registry.get(&key).expect("the account's grant");
    assert_eq!(grant.rate_account().as_deref(), Some(ACCOUNT));
    h.shutdown().await;
}
