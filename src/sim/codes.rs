//! Authorization codes: single-use, short-lived, bound to client, redirect URI and PKCE.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::jwt;

/// A PKCE challenge as sent to `/oauth/authorize`.
#[derive(Clone, Debug)]
pub(crate) enum Challenge {
    Plain(String),
    S256(String),
}

/// What a code was issued for.
#[derive(Clone, Debug)]
pub(crate) struct CodeGrant {
    pub client_id: String,
    pub user: String,
    pub redirect_uri: String,
    pub challenge: Option<Challenge>,
    pub expires_ms: u64,
}

/// Why a code exchange failed, in the order the checks run.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RedeemError {
    /// Unknown, used, expired or issued to another client.
    InvalidCode,
    RedirectMismatch,
    BadVerifier,
}

/// A `code_challenge_method` other than `plain` or `S256`.
#[derive(Debug)]
pub(crate) struct UnknownMethod;

#[derive(Default)]
pub(crate) struct Codes {
    codes: HashMap<String, CodeGrant>,
}

// === impl Codes ===

impl Codes {
    pub(crate) fn issue(&mut self, grant: CodeGrant, now_ms: u64) -> String {
        // Codes are few and short-lived; dropping the expired ones here bounds the map.
        self.codes.retain(|_, g| now_ms < g.expires_ms);
        let code = jwt::random_id(24);
        self.codes.insert(code.clone(), grant);
        code
    }

    /// Consumes `code` whatever the outcome, so a failed attempt cannot be retried
    /// with other parameters (RFC 6749 §4.1.2 spirit; Zoom's exact rule is UNCONFIRMED).
    pub(crate) fn redeem(
        &mut self,
        code: &str,
        client_id: &str,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
        now_ms: u64,
    ) -> Result<CodeGrant, RedeemError> {
        let grant = self.codes.remove(code).ok_or(RedeemError::InvalidCode)?;
        if grant.client_id != client_id || now_ms >= grant.expires_ms {
            return Err(RedeemError::InvalidCode);
        }
        if redirect_uri != Some(grant.redirect_uri.as_str()) {
            return Err(RedeemError::RedirectMismatch);
        }
        if let Some(challenge) = &grant.challenge {
            if !challenge.accepts(verifier.unwrap_or_default()) {
                return Err(RedeemError::BadVerifier);
            }
        }
        Ok(grant)
    }
}

// === impl Challenge ===

impl Challenge {
    /// From the authorize parameters; `plain` is the default method (ZOOM.md §1.2).
    pub(crate) fn parse(
        challenge: Option<&str>,
        method: Option<&str>,
    ) -> Result<Option<Self>, UnknownMethod> {
        match (challenge, method) {
            (None, _) => Ok(None),
            (Some(c), None | Some("plain")) => Ok(Some(Self::Plain(c.to_owned()))),
            (Some(c), Some("S256")) => Ok(Some(Self::S256(c.to_owned()))),
            (Some(_), Some(_)) => Err(UnknownMethod),
        }
    }

    fn accepts(&self, verifier: &str) -> bool {
        let (expected, got) = match self {
            Self::Plain(c) => (c.as_bytes().to_vec(), verifier.as_bytes().to_vec()),
            Self::S256(c) => {
                let digest = Sha256::digest(verifier.as_bytes());
                (
                    c.as_bytes().to_vec(),
                    URL_SAFE_NO_PAD.encode(digest).into_bytes(),
                )
            }
        };
        !verifier.is_empty() && bool::from(expected.ct_eq(&got))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(challenge: Option<Challenge>) -> CodeGrant {
        CodeGrant {
            client_id: "c".into(),
            user: "u".into(),
            redirect_uri: "http://r".into(),
            challenge,
            expires_ms: 1000,
        }
    }

    #[test]
    fn codes_are_single_use_and_expire() {
        let mut codes = Codes::default();
        let code = codes.issue(grant(None), 0);
        assert!(codes
            .redeem(&code, "c", Some("http://r"), None, 999)
            .is_ok());
        let again = codes.redeem(&code, "c", Some("http://r"), None, 999);
        assert_eq!(again.err(), Some(RedeemError::InvalidCode));
        let code = codes.issue(grant(None), 0);
        let late = codes.redeem(&code, "c", Some("http://r"), None, 1000);
        assert_eq!(late.err(), Some(RedeemError::InvalidCode));
    }

    #[test]
    fn s256_compares_the_hashed_verifier() {
        let c = Challenge::S256("k3VQ3912XRgzo5wikx8W-GljnuftWEe94C80BhynPVY".into());
        assert!(c.accepts("dBjjSWa5H8Kjw0KF9k8J4i3HtpGbC4tyXdwV9LSMMOU"));
        assert!(!c.accepts("dBjjSWa5H8Kjw0KF9k8J4i3HtpGbC4tyXdwV9LSMMOV"));
    }
}
