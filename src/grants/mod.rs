//! Grants: the real Zoom credential per `(client_id, subject)`, its refresher and callers' bindings.

mod access;
mod current;
mod handle;
mod model;
mod registry;
mod subject;
pub mod vtoken;

pub use self::access::AccessToken;
pub use self::current::{Current, Freshness};
pub use self::handle::{GrantHandle, RefreshCtx, TokenError};
pub use self::model::{Binding, Grant, GrantState};
pub use self::registry::Registry;
pub use self::subject::{BadSubject, GrantKey, Subject};
