//! Whose Zoom credential a grant is: a user (authorization code) or an account (Server-to-Server).

use std::fmt;
use std::str::FromStr;

/// The subject of a grant, written `user:<zoom user id>` or `account:<zoom account id>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    User(String),
    Account(String),
    /// Tokens Zoom issued for a code or legacy refresh token whose user is not
    /// known yet, written `pending:<hex SHA-256 of that code or token>`. They are
    /// stored under this key before the identity lookup, so that a failed
    /// lookup (or a crash) loses nothing; once adopted, the record says where.
    Pending(String),
    /// The app's own token (`grant_type=client_credentials`), written `app`:
    /// one per app, no user, no refresh token.
    App,
}

/// A grant's identity: one real Zoom credential per `(client_id, subject)`.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct GrantKey {
    pub client_id: String,
    pub subject: Subject,
}

#[derive(Debug, thiserror::Error)]
#[error("subject must be `user:<id>`, `account:<id>`, `pending:<hash>` or `app`")]
pub struct BadSubject;

// === impl Subject ===

impl Subject {
    /// Zoom mints this grant's tokens afresh (no refresh token, no user):
    /// Server-to-Server and app grants.
    pub fn is_minted(&self) -> bool {
        matches!(self, Subject::Account(_) | Subject::App)
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::User(id) => write!(f, "user:{id}"),
            Subject::Account(id) => write!(f, "account:{id}"),
            Subject::Pending(hash) => write!(f, "pending:{hash}"),
            Subject::App => f.write_str("app"),
        }
    }
}

impl FromStr for Subject {
    type Err = BadSubject;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "app" {
            return Ok(Subject::App);
        }
        match s.split_once(':') {
            Some(("user", id)) if !id.is_empty() => Ok(Subject::User(id.to_owned())),
            Some(("account", id)) if !id.is_empty() => Ok(Subject::Account(id.to_owned())),
            Some(("pending", hash)) if !hash.is_empty() => Ok(Subject::Pending(hash.to_owned())),
            _ => Err(BadSubject),
        }
    }
}

impl serde::Serialize for Subject {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Subject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

// === impl GrantKey ===

impl GrantKey {
    pub fn new(client_id: impl Into<String>, subject: Subject) -> Self {
        Self {
            client_id: client_id.into(),
            subject,
        }
    }

    /// A stable printable id, used in `/grants`, metrics labels and store keys.
    pub fn id(&self) -> String {
        format!("{}/{}", self.client_id, self.subject)
    }
}

impl fmt::Display for GrantKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.client_id, self.subject)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for s in ["user:abc", "account:xyz"] {
            assert_eq!(s.parse::<Subject>().expect("parses").to_string(), s);
        }
        assert!("group:x".parse::<Subject>().is_err());
        assert!("user:".parse::<Subject>().is_err());
    }
}
