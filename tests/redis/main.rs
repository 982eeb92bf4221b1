//! `store.backend = "redis"` with many replicas (DESIGN §3.6): real `grantmux
//! serve` processes sharing a `redis-server` of the test's own, in front of an
//! in-process simulator. Each test starts its own Redis on a free port, so it can
//! kill and restart it.
//!
//! The simulator and the replicas run on real time: the replicas are separate
//! processes, so a test cannot advance their clocks. Token lifetimes are seconds.

#[path = "../common/mod.rs"]
mod common;
mod fairness;
mod legacy;
mod outage;
mod outbox;
mod pickup;
mod ratelimit;
mod rotation;
mod stall;
mod support;
mod tls;
mod vtokens;
