//! Redis Sentinel failover (issue 19, DESIGN §3.6): a Redis primary, one
//! replica and three Sentinels of the test's own, real `grantmux serve`
//! replicas finding the primary through Sentinel, and an in-process simulator.
//! The Redis faults are real: `kill -9` of the primary, a replica frozen with
//! SIGSTOP and cut off.
//!
//! The tests take turns ([`one_at_a_time`]): each runs eight or more
//! processes, and the failover times they print are of one scenario alone on
//! the machine.

#[path = "../common/mod.rs"]
mod common;
mod fleet;
mod kill;
mod loss;
mod partition;
#[allow(dead_code)]
#[path = "../redis/support.rs"]
mod redis_support;
mod smoke;
mod support;

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Held for a whole test: the next one starts when it ends.
pub(crate) async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().await
}
