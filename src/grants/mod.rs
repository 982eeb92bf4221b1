//! Grants: the real Zoom credential per `(client_id, subject)`, its refresher and callers' bindings.

mod subject;

pub use self::subject::{BadSubject, GrantKey, Subject};
