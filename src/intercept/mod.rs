//! Interception: answering as Zoom's own hosts for clients whose URLs are
//! fixed in code.
//!
//! ```text
//! ca.rs        grantmux's CA for Zoom's names only (X.509 name constraints)
//! leaf.rs      leaves by SNI, renewed before expiry; the TLS server config
//! setup.rs     the CA, bundle and TLS config built at start; the upstream-loop check
//! forward.rs   listen.forward_proxy: CONNECT to Zoom's hosts terminated with
//!              grantmux's leaf and served as the plain listener serves; tunnel
//!              rules passed through; everything else 403
//! ```
//!
//! `listen.tls` needs no module of its own: it is the plain proxy service on
//! a listener whose TLS picks the leaf by SNI.

/// Marks a request that reached grantmux as one of Zoom's own hosts (through
/// the forward proxy or the TLS listener): its token answers name Zoom's API.
#[derive(Clone, Copy, Debug)]
pub struct Intercepted;

mod ca;
mod forward;
mod leaf;
mod setup;

pub use self::ca::{Authority, CaError, MAX_LEAF_LIFETIME, MIN_LEAF_LIFETIME};
pub use self::forward::ForwardProxy;
pub use self::leaf::{server_config, LeafResolver};
pub use self::setup::{check_upstream, Interception, UpstreamLoop};
