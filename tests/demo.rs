//! `grantmux demo`'s scenario, shortened: without grantmux system L breaks;
//! with grantmux neither system sees a single failure.

use std::time::Duration;

use grantmux::demo::{self, DemoOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_grantmux_l_breaks_with_grantmux_nobody_does() {
    let options = DemoOptions {
        duration: Duration::from_secs(4),
        user_token_ttl: Duration::from_secs(2),
        workers: 2,
    };
    let report = demo::run(&options).await.expect("the demo runs");
    let (without, with) = (&report.without, &report.with);
    assert!(without.l.failed > 0, "{report:?}");
    assert_eq!(without.n.failed, 0, "{report:?}");
    assert_eq!(with.l.failed, 0, "{report:?}");
    assert_eq!(with.n.failed, 0, "{report:?}");
    assert!(with.l.ok > 0 && with.n.ok > 0, "{report:?}");
    assert!(with.rotations >= 1, "{report:?}");
    let table = demo::render(&report);
    assert!(table.contains("system L  requests failed"), "{table}");
}
