//! The refresh core's own tests: every outcome of an attempt, against a fake
//! Zoom behind [`crate::grants::TokenSource`] and a store that fails on cue.

mod account;
mod adoption;
mod deauth;
mod outcomes;
mod support;
mod writes;
