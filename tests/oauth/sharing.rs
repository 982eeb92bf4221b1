//! Many callers, one real grant: what Zoom sees when bindings refresh, when a
//! legacy refresh token is adopted, and when S2S callers ask at once.

use std::sync::Arc;
use std::time::Duration;

use grantmux::harness::Harness;
use http::Method;
use tokio::task::JoinSet;

use crate::support::{
    self, account_credentials, authorize, claims, create_and_read, gmx, me, refresh, tokens,
    Tokens, USER,
};

/// Past the expiry of every token issued with the default TTLs (3599 s).
const PAST_EXPIRY: Duration = Duration::from_secs(3600);

/// Runs `f(i)` for every `i` in `0..n` at once; the results in order.
async fn at_once<T, F>(h: &Arc<Harness>, n: usize, f: impl Fn(Arc<Harness>, usize) -> F) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut set = JoinSet::new();
    for i in 0..n {
        let fut = f(h.clone(), i);
        set.spawn(async move { (i, fut.await) });
    }
    let mut out: Vec<(usize, T)> = Vec::with_capacity(n);
    while let Some(done) = set.join_next().await {
        out.push(done.expect("no panic"));
    }
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, t)| t).collect()
}

async fn shutdown(h: Arc<Harness>) {
    Arc::try_unwrap(h)
        .expect("no task holds the harness")
        .shutdown()
        .await;
}

#[tokio::test]
async fn twenty_accounts_of_one_login_refresh_freely_and_zoom_sees_one_refresh_per_rotation() {
    const ACCOUNTS: usize = 20;
    const REFRESHES_EACH: usize = 3;
    let h = Arc::new(support::start().await);
    let base = gmx(&h);
    let mut accounts: Vec<Tokens> = Vec::new();
    for _ in 0..ACCOUNTS {
        accounts.push(authorize(&h, &base, USER).await);
    }
    assert_eq!(h.sim.stats().token_requests.refresh_token, 0);
    for rotation in 1..=3u64 {
        h.clock.advance(PAST_EXPIRY);
        // Every account refreshes, several times, all at the same moment.
        let held = Arc::new(accounts.clone());
        let answers = at_once(&h, ACCOUNTS * REFRESHES_EACH, |h, i| {
            let (held, base) = (held.clone(), base.clone());
            async move {
                let r = held[i % ACCOUNTS].refresh.clone().expect("refresh token");
                tokens(&refresh(&h, &base, &r).await)
            }
        })
        .await;
        accounts = answers[..ACCOUNTS].to_vec();
        let stats = h.sim.stats();
        assert_eq!(stats.token_requests.refresh_token, rotation);
        let held = Arc::new(accounts.clone());
        let worked = at_once(&h, ACCOUNTS, |h, i| {
            let (held, base) = (held.clone(), base.clone());
            async move { create_and_read(&h, &base, &held[i].access).await.is_ok() }
        })
        .await;
        assert!(
            worked.iter().all(|ok| *ok),
            "rotation {rotation}: {worked:?}"
        );
        assert_eq!(h.sim.stats().token_requests.refresh_token, rotation);
    }
    assert_eq!(support::grant_versions(&h).await.len(), 1);
    shutdown(h).await;
}

#[tokio::test]
async fn a_legacy_refresh_token_is_adopted_once_and_finds_its_grant_again() {
    let h = support::start().await;
    let base = gmx(&h);
    // Before grantmux: the legacy system holds real tokens from Zoom itself.
    let real = authorize(&h, &h.sim.base_url(), USER).await;
    let real_refresh = real.refresh.expect("refresh token");
    let before = h.sim.stats().token_requests;

    let first = tokens(&refresh(&h, &base, &real_refresh).await);
    assert_eq!(
        h.sim.stats().token_requests.refresh_token,
        before.refresh_token + 1
    );
    let me_answer = me(&h, &base, &first.access).await;
    assert_eq!(me_answer.status, 200);
    assert_eq!(me_answer.json()["id"], USER);

    // The same old token again: the same grant and binding, and no call to Zoom.
    let again = tokens(&refresh(&h, &base, &real_refresh).await);
    let stats = h.sim.stats().token_requests;
    assert_eq!(
        stats.refresh_token,
        before.refresh_token + 1,
        "Zoom saw one refresh"
    );
    assert_eq!(stats.authorization_code, before.authorization_code);
    let (c1, c2) = (claims(&first.access), claims(&again.access));
    assert_eq!(c1["gid"], c2["gid"], "same grant");
    assert_eq!(c1["bid"], c2["bid"], "same binding");
    assert!(create_and_read(&h, &base, &again.access).await.is_ok());

    // Zoom itself no longer takes the old token: grantmux really rotated it.
    let at_zoom = refresh(&h, &h.sim.base_url(), &real_refresh).await;
    support::assert_oauth_error(&at_zoom, 400, "Invalid Token!", "invalid_grant");
    h.shutdown().await;
}

#[tokio::test]
async fn ten_s2s_callers_at_once_cause_one_mint_and_all_their_tokens_work() {
    const CALLERS: usize = 10;
    let h = Arc::new(support::start().await);
    let base = gmx(&h);
    let answers = at_once(&h, CALLERS, |h, _| {
        let base = base.clone();
        async move { tokens(&account_credentials(&h, &base).await) }
    })
    .await;
    assert_eq!(h.sim.stats().token_requests.account_credentials, 1);
    for t in &answers {
        assert!(t.refresh.is_none(), "S2S answers carry no refresh token");
        assert!(create_and_read(&h, &base, &t.access).await.is_ok());
    }
    assert_eq!(h.sim.stats().token_requests.account_credentials, 1);
    shutdown(h).await;
}

#[tokio::test]
async fn a_virtual_refresh_while_the_real_token_is_fresh_makes_no_call_to_zoom() {
    let h = support::start().await;
    let base = gmx(&h);
    let t = authorize(&h, &base, USER).await;
    let before = h.sim.stats();
    h.clock.advance(Duration::from_secs(600));
    let mut last = t.clone();
    for _ in 0..3 {
        let a = refresh(&h, &base, t.refresh.as_deref().expect("refresh")).await;
        assert_eq!(
            a.json()["api_url"],
            base,
            "callers that follow api_url stay on grantmux"
        );
        assert_eq!(a.json()["token_type"], "bearer");
        last = tokens(&a);
        assert_ne!(last.access, t.access);
    }
    assert_eq!(h.sim.stats(), before, "no request of any kind reached Zoom");
    assert!(create_and_read(&h, &base, &last.access).await.is_ok());
    h.shutdown().await;
}

/// Opaque Zoom tokens (no `uid` to read) and `/v2/users/me` failing: Zoom has
/// rotated the legacy token, so its answer is kept under the token's hash and
/// `/readyz/store` says an adoption waits; presented again once Zoom answers, the same
/// tokens become the user's grant, with no second call to Zoom.
#[tokio::test]
async fn a_legacy_adoption_whose_identity_lookup_fails_keeps_zoom_s_tokens() {
    let h = support::start().await;
    let base = gmx(&h);
    h.sim.set_opaque_tokens(true);
    let real = authorize(&h, &h.sim.base_url(), USER).await;
    let real_refresh = real.refresh.expect("refresh token");
    let before = h.sim.stats();
    h.sim.set_api_faults(grantmux::sim::Faults {
        error_rate: 1.0,
        ..Default::default()
    });

    let refused = refresh(&h, &base, &real_refresh).await;
    assert_eq!(refused.status, 503, "{}", support::text(&refused));
    let ready = h
        .call(Method::GET, &h.admin_url("/readyz/store"), &[], "")
        .await
        .expect("readyz");
    assert_eq!(
        ready.status,
        503,
        "{}",
        String::from_utf8_lossy(&ready.body)
    );
    assert!(String::from_utf8_lossy(&ready.body).contains("until the Zoom user is known"));

    h.sim.set_api_faults(grantmux::sim::Faults::default());
    let adopted = tokens(&refresh(&h, &base, &real_refresh).await);
    assert_eq!(me(&h, &base, &adopted.access).await.json()["id"], USER);
    let again = tokens(&refresh(&h, &base, &real_refresh).await);
    assert_eq!(claims(&again.access)["bid"], claims(&adopted.access)["bid"]);
    let after = h.sim.stats();
    assert_eq!(
        after.token_requests.refresh_token,
        before.token_requests.refresh_token + 1,
        "Zoom saw one refresh of the legacy token"
    );
    assert_eq!(after.invalid_grant, 0);
    let ready = h
        .call(Method::GET, &h.admin_url("/readyz/store"), &[], "")
        .await
        .expect("readyz");
    assert_eq!(
        ready.status,
        200,
        "{}",
        String::from_utf8_lossy(&ready.body)
    );
    h.shutdown().await;
}
