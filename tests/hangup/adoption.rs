//! A caller hangs up while grantmux waits on Zoom for a call that hands the grant
//! new tokens: a legacy refresh token's adoption, a second system's code exchange.

use crate::support::{code_form, refresh_form, tokens, Raw, World, CLIENT, REDIRECT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_caller_hanging_up_during_its_adoption_loses_nothing() {
    const USER: &str = "legacy-user";
    let w = World::start().await;
    let (_, legacy_refresh) = w.authorize_at_zoom(USER).await;
    let refreshes = w.sim.stats().token_requests.refresh_token;

    w.delay_answers();
    w.hang_up_once(Raw::token(&refresh_form(&legacy_refresh)), |s| {
        s.token_requests.refresh_token > refreshes
    })
    .await;
    w.answer_at_once();

    let took_in = w.took_in(USER, None, 1).await;
    // The legacy caller never heard back, so it presents the same token again.
    let (status, body) = w.token(&refresh_form(&legacy_refresh)).await;
    assert_eq!(
        status, 200,
        "the legacy refresh token presented again, after its caller hung up during \
         the adoption (grantmux took in Zoom's late answer: {took_in}): {body}"
    );
    let (access, _) = tokens(&body);
    w.assert_grant_works(USER, &access).await;
    let (status, body) = w.token(&refresh_form(&legacy_refresh)).await;
    assert_eq!(status, 200, "the legacy refresh token, once more: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_system_hanging_up_during_its_code_exchange_breaks_nobody() {
    const USER: &str = "shared-user";
    let w = World::start().await;
    let (first_access, first_refresh) = w.authorize(USER).await;
    let (status, body) = w.me(&first_access).await;
    assert_eq!(status, 200, "the first system, before: {body}");
    let before = w.grant(USER).await.expect("grant")["refreshed_at_ms"].as_u64();
    let exchanges = w.sim.stats().token_requests.authorization_code;

    // Zoom revokes the grant's tokens the moment it redeems the second code.
    w.delay_answers();
    let code = w.sim.issue_code(CLIENT, USER, REDIRECT);
    w.hang_up_once(Raw::token(&code_form(&code)), |s| {
        s.token_requests.authorization_code > exchanges
    })
    .await;
    w.answer_at_once();

    let took_in = w.took_in(USER, before, 1).await;
    let (status, body) = w.me(&first_access).await;
    assert_eq!(
        status, 200,
        "the first system's next API call, after a second system hung up during \
         its code exchange (grantmux took in Zoom's late answer: {took_in}): {body}"
    );
    let (status, body) = w.token(&refresh_form(&first_refresh)).await;
    assert_eq!(status, 200, "the first system's virtual refresh: {body}");
    let (access, _) = tokens(&body);
    w.assert_grant_works(USER, &access).await;
}
