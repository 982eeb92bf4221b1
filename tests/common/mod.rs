// Every test binary includes this module but uses only its own subset of it.
#![allow(dead_code)]
//! Support code shared by the integration test binaries. Each file or folder
//! under `tests/` is a binary of its own; it includes this module with
//! `mod common;` (from a folder: `#[path = "../common/mod.rs"] mod common;`).

pub(crate) mod client;
pub(crate) mod dns;
pub(crate) mod logs;
pub(crate) mod process;
pub(crate) mod receiver;
