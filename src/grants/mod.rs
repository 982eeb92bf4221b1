//! Grants: the real Zoom credential per `(client_id, subject)`, its refresher and callers' bindings.
//!
//! ```text
//! model.rs      the record: Grant, Binding, GrantState, Issued (a leaf: no Zoom wire types, no config)
//! current.rs    the published token readers load in one atomic step
//! handle.rs     one grant: entry points (token, after_rejection, force_refresh), owned tasks
//! refresher.rs  the single-flight attempt and the one place its Outcome is settled
//! attempt.rs    the guard that holds a grant's lease and refresh marker, ended on Drop
//! persist.rs    write-through, conflict rebase, Persisted | HeldInMemory, the retry and the last flush
//! adoption.rs   codes and legacy tokens adopted under a pending grant's lock
//! identity.rs   whose tokens these are; how a presented credential is remembered
//! deauth.rs     app_deauthorized: tokens wiped, every binding revoked
//! lifecycle.rs  events raised where a grant dies, is deauthorized, comes back, goes unpersisted
//! bindings.rs   live bindings and the legacy-token index; binding writes
//! registry.rs   every grant by key; reload, announcements, keep-alive, shutdown flush
//! source.rs     trait TokenSource: the calls to Zoom that change a grant
//! ctx.rs        what grants share, and the count of tasks that own a Zoom call
//! ```

mod access;
mod adoption;
mod attempt;
mod bindings;
mod ctx;
mod current;
mod deauth;
mod handle;
mod identity;
mod lifecycle;
mod model;
mod persist;
mod refresher;
mod registry;
mod source;
mod subject;
pub mod vtoken;

pub use self::access::AccessToken;
pub use self::adoption::{AdoptError, Adopted, Presented};
pub use self::bindings::LegacyIndex;
pub use self::ctx::{Adopting, RefreshCtx, Tasks};
pub use self::current::{Current, Freshness};
pub use self::handle::{GrantHandle, TokenError, DEAUTHORIZED};
pub use self::identity::{hash, Identity};
pub use self::lifecycle::{GrantEvent, GrantEventKind, Lifecycle, Silent};
pub use self::model::{Binding, Grant, GrantState, Issued};
pub use self::registry::Registry;
pub use self::source::{Mint, SourceFuture, TokenSource};
pub use self::subject::{BadSubject, GrantKey, Subject};

#[cfg(test)]
mod tests;
