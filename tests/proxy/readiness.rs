//! `/readyz` means "this process can serve callers now", and the store's
//! health is `/readyz/store`'s (issue 17): a grant in use whose token expired
//! while its refresh fails makes the process unready; an idle one does not.

use std::time::Duration;

use grantmux::sim::{Faults, SimConfig};
use http::Method;

use super::support::{get, start, S2S_KEY};

async fn status(h: &grantmux::harness::Harness, path: &str) -> (u16, serde_json::Value) {
    let answer = h
        .call(Method::GET, &h.admin_url(path), &[], "")
        .await
        .expect("admin answers");
    (answer.status.as_u16(), answer.json())
}

#[tokio::test]
async fn an_expired_grant_in_use_whose_refresh_fails_makes_the_process_unready() {
    let h = start(
        SimConfig {
            s2s_token_ttl: Duration::from_secs(60),
            ..SimConfig::default()
        },
        |_| {},
    )
    .await;
    assert_eq!(get(&h, "/v2/users/me", S2S_KEY).await.status, 200);
    assert_eq!(status(&h, "/readyz").await.0, 200);
    assert_eq!(status(&h, "/readyz/store").await.0, 200);

    // Zoom's token endpoint fails, and the token expires: the next caller
    // gets 503, and the process says it cannot serve.
    h.sim.set_token_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    h.clock.advance(Duration::from_secs(61));
    assert_eq!(get(&h, "/v2/users/me", S2S_KEY).await.status, 503);
    let (code, body) = status(&h, "/readyz").await;
    assert_eq!(code, 503, "{body}");
    assert!(
        body["problems"][0]
            .as_str()
            .is_some_and(|p| p.contains("sim-client/account:sim-account")),
        "{body}"
    );
    // The store itself is fine.
    assert_eq!(status(&h, "/readyz/store").await.0, 200);

    // Zoom is back: the next call mints, and the process is ready again.
    h.sim.set_token_faults(Faults::default());
    h.clock.advance(Duration::from_secs(120));
    assert_eq!(get(&h, "/v2/users/me", S2S_KEY).await.status, 200);
    assert_eq!(status(&h, "/readyz").await.0, 200);

    // Idle: expired, refresh failing, but no caller for over an hour.
    h.sim.set_token_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    h.clock.advance(Duration::from_secs(61));
    assert_eq!(get(&h, "/v2/users/me", S2S_KEY).await.status, 503);
    h.clock.advance(Duration::from_secs(2 * 3600));
    let (code, body) = status(&h, "/readyz").await;
    assert_eq!(
        code, 200,
        "an idle grant is refreshed on its next use: {body}"
    );
}
