//! A caller hangs up while grantmux refreshes an expired grant inline: for an API
//! call, and for the caller's own virtual refresh.

use std::time::Duration;

use grantmux::sim::DEFAULT_USER_TOKEN_TTL;

use crate::support::{refresh_form, tokens, Raw, World};

/// The first real token lives this long, so the test can wait for it to expire.
const SHORT_TTL: Duration = Duration::from_secs(2);

/// A grant for `user` through grantmux whose real token has expired, and the
/// caller's virtual tokens. Tokens Zoom issues from then on live an hour.
async fn expired_grant(w: &World, user: &str) -> (String, String) {
    w.sim.set_user_token_ttl(SHORT_TTL);
    let virtual_tokens = w.authorize(user).await;
    w.sim.set_user_token_ttl(DEFAULT_USER_TOKEN_TTL);
    w.until_expired(user).await;
    virtual_tokens
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_hanging_up_during_an_inline_refresh_loses_nothing() {
    const USER: &str = "inline-refresh-user";
    let w = World::start().await;
    let (access, _) = expired_grant(&w, USER).await;
    let before = w.grant(USER).await.expect("grant")["refreshed_at_ms"].as_u64();
    let refreshes = w.sim.stats().token_requests.refresh_token;

    w.delay_answers();
    w.hang_up_once(Raw::me(&access), |s| {
        s.token_requests.refresh_token > refreshes
    })
    .await;
    w.answer_at_once();

    let took_in = w.took_in(USER, before, 1).await;
    let (status, body) = w.me(&access).await;
    assert_eq!(
        status, 200,
        "the next API call after a caller hung up during the inline refresh \
         (grantmux took in Zoom's late answer: {took_in}): {body}"
    );
    w.assert_grant_works(USER, &access).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_hanging_up_during_its_virtual_refresh_loses_nothing() {
    const USER: &str = "virtual-refresh-user";
    let w = World::start().await;
    let (_, refresh) = expired_grant(&w, USER).await;
    let before = w.grant(USER).await.expect("grant")["refreshed_at_ms"].as_u64();
    let refreshes = w.sim.stats().token_requests.refresh_token;

    w.delay_answers();
    w.hang_up_once(Raw::token(&refresh_form(&refresh)), |s| {
        s.token_requests.refresh_token > refreshes
    })
    .await;
    w.answer_at_once();

    let took_in = w.took_in(USER, before, 1).await;
    // The caller never heard back, so it tries again with the same virtual token.
    let (status, body) = w.token(&refresh_form(&refresh)).await;
    assert_eq!(
        status, 200,
        "the caller's virtual refresh again, after it hung up during the first \
         (grantmux took in Zoom's late answer: {took_in}): {body}"
    );
    let (access, _) = tokens(&body);
    w.assert_grant_works(USER, &access).await;
}
