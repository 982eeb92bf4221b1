//! Adoption: tokens a caller's own credential earns at Zoom (an authorization
//! code, or a legacy system's real refresh token) become the grant of the user
//! they belong to.
//!
//! Zoom acts on such a call the moment it arrives: a code is spent, a refresh
//! token rotated, and the user's earlier grant revoked. So the call runs in a
//! task the registry owns, under the lock of a *pending* grant keyed by the
//! credential's hash (`Subject::Pending`), and its answer is stored under that
//! key before anything else can fail: the identity lookup, the user's lock, a
//! caller hanging up. Only once the user's grant holds the tokens durably does
//! the pending record let go of them; it then says where they went, which is
//! how another replica, presented the same legacy token, finds the same grant
//! without a second call to Zoom.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::attempt::Attempt;
use super::ctx::Tasks;
use super::handle::GrantHandle;
use super::identity::{self, hash};
use super::model::{Binding, Issued};
use super::refresher::backoff;
use super::registry::Registry;
use super::vtoken::random_id;
use super::{GrantKey, Subject};
use crate::clock::UnixMillis;
use crate::failpoint;
use crate::oauth::ZoomTokenError;
use crate::secret::Secret;
use crate::store::StoreError;

/// What the caller presented to Zoom through us.
#[derive(Debug)]
pub enum Presented {
    /// An authorization-code exchange: the caller's form, forwarded as is.
    Code { code: Secret, form: String },
    /// A legacy system's real Zoom refresh token.
    Legacy(Secret),
}

/// Why an adoption gave no grant. No variant loses a token: tokens Zoom issued
/// are stored (or held) under the pending key whatever happens next.
#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    /// Zoom refused or could not be reached: it issued nothing.
    #[error(transparent)]
    Zoom(#[from] ZoomTokenError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A code already exchanged (Zoom spends a code once).
    #[error("this authorization code was already exchanged")]
    Spent,
    #[error(
        "cannot tell which Zoom user these tokens belong to yet; they are kept, \
         and the adoption finishes when the lookup succeeds"
    )]
    IdentityUnknown,
    #[error("the adoption task ended abnormally")]
    Task,
}

/// The user's grant and the caller's new binding on it.
pub type Adopted = (Arc<GrantHandle>, String);

// === impl Registry ===

impl Registry {
    /// Exchanges or adopts `presented` at Zoom, in a task the registry owns:
    /// a caller that goes away cancels only its own wait.
    pub async fn adopt_presented(
        self: &Arc<Self>,
        client_id: &str,
        presented: Presented,
    ) -> Result<Adopted, AdoptError> {
        let this = self.clone();
        let client_id = client_id.to_owned();
        Tasks::spawn(self.ctx(), async move {
            this.adopt_owned(&client_id, presented).await
        })
        .await
        .unwrap_or(Err(AdoptError::Task))
    }

    async fn adopt_owned(
        self: &Arc<Self>,
        client_id: &str,
        presented: Presented,
    ) -> Result<Adopted, AdoptError> {
        let (hash, legacy) = match &presented {
            Presented::Code { code, .. } => (hash(code.expose()), false),
            Presented::Legacy(token) => (hash(token.expose()), true),
        };
        let pending = self.ensure(&GrantKey::new(client_id, Subject::Pending(hash.clone())));
        let binding = self.new_binding(legacy.then(|| hash.clone()));
        let adopting = self.ctx().adopting.begin();
        let result = self
            .adopt_pending(&pending, Some((&presented, binding)))
            .await;
        drop(adopting);
        match &result {
            Err(AdoptError::Spent) if legacy => {
                let into = pending.record().await.adopted_into().cloned();
                match into {
                    Some(into) => self.legacy_binding(&into, &hash).await,
                    None => result,
                }
            }
            // Zoom's tokens are kept under the pending key: finish without the caller.
            Err(_) if pending.awaits_adoption() => {
                self.finish_later(pending);
                result
            }
            _ => result,
        }
    }

    /// Under the pending grant's lock: calls Zoom if `call` is given and the
    /// pending grant holds no tokens yet, learns whose they are, and moves them
    /// (with the binding they were obtained for) into that user's grant.
    async fn adopt_pending(
        self: &Arc<Self>,
        pending: &Arc<GrantHandle>,
        call: Option<(&Presented, Binding)>,
    ) -> Result<Adopted, AdoptError> {
        let mut flight = pending.flight.lock().await;
        let attempt = Attempt::take(pending).await?;
        pending.reread(&mut flight).await;
        if flight.record.adopted_into().is_some() {
            attempt.end().await;
            drop(flight);
            self.forget_empty(pending);
            return Err(AdoptError::Spent);
        }
        if flight.record.issued().is_none() {
            let Some((presented, binding)) = call else {
                attempt.end().await;
                return Err(AdoptError::Spent);
            };
            let client_id = &pending.key().client_id;
            let sent_ms = self.ctx().clock.now_ms();
            // A process that froze past its lease may find another replica
            // adopted the token meanwhile: then Zoom would only refuse it.
            let result = match attempt.lease_held() {
                true => self.call_zoom(client_id, presented).await,
                false => Err(AdoptError::Store(StoreError::Unavailable(
                    "the adoption lock lapsed before the call to Zoom".into(),
                ))),
            };
            let issued = match result {
                Ok(issued) => issued,
                Err(error) => {
                    attempt.end().await;
                    // Refused, or never sent: did another replica adopt it first?
                    pending.reread(&mut flight).await;
                    let spent = flight.record.adopted_into().is_some();
                    drop(flight);
                    self.forget_empty(pending);
                    return Err(if spent { AdoptError::Spent } else { error });
                }
            };
            // Stored under the pending key, with the binding it was obtained
            // for, before anything else can fail; held in memory (and retried)
            // if the store refuses it.
            let mut record = flight.record.rotated(&issued, sent_ms);
            record.bindings.push(binding);
            let persist = pending.persist(record).await;
            pending.install(&mut flight, persist.into_record());
            failpoint::hit("adoption_stored");
        }
        let Some((issued, issued_at)) = flight.record.issued() else {
            attempt.end().await;
            return Err(AdoptError::Spent);
        };
        let binding = flight.record.bindings.first().cloned();
        let legacy = binding.as_ref().and_then(|b| b.adopted_from.clone());
        // A legacy token whose user's grant already holds its binding (an
        // earlier try stored it there, then failed to say so here) needs no lookup.
        // Its account is then the one that grant already knows.
        let known = legacy
            .as_deref()
            .and_then(|hash| self.ctx().legacy.find(hash));
        let user = match known {
            Some((key, _)) => Some((key, None)),
            None => identity::identify(self.ctx().source.as_ref(), &issued)
                .await
                .map(|who| {
                    let subject = Subject::User(who.user_id);
                    let key = GrantKey::new(pending.key().client_id.clone(), subject);
                    (key, who.account_id)
                }),
        };
        let Some((user, account)) = user else {
            tracing::warn!(grant = %pending.key(), "adopted tokens kept under the pending key: the Zoom user is not known yet");
            attempt.end().await;
            return Err(AdoptError::IdentityUnknown);
        };
        let legacy = legacy.is_some();
        let grant = self.ensure(&user);
        // Lock order is always pending, then user: no cycle.
        let (binding, durable) = grant.adopt(&issued, issued_at, binding, account).await?;
        if durable {
            // Only now may the pending record let go of the tokens.
            let moved = flight.record.moved_into(grant.key().clone());
            let persist = pending.persist(moved).await;
            pending.install(&mut flight, persist.into_record());
        }
        attempt.end().await;
        pending.announce().await;
        drop(flight);
        if durable {
            self.forget_empty(pending);
        } else {
            // The user's grant holds them in memory (and retries its write);
            // the pending record lets go once that write has landed.
            self.finish_later(pending.clone());
        }
        tracing::info!(grant = %grant.id(), legacy, "tokens adopted; new binding");
        Ok((grant, binding.unwrap_or_default()))
    }

    /// Finishes, in the background, every adoption loaded from the store with
    /// its user still unknown.
    pub fn resume_adoptions(self: &Arc<Self>) {
        for pending in self.all().into_iter().filter(|g| g.awaits_adoption()) {
            self.finish_later(pending);
        }
    }

    /// Retries the identity lookup of a pending grant with backoff until the
    /// adoption finishes or shutdown; the tokens stay stored meanwhile.
    pub(super) fn finish_later(self: &Arc<Self>, pending: Arc<GrantHandle>) {
        if pending.background.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let mut shutdown = this.ctx().shutdown.clone();
            let mut failures = 0;
            while pending.awaits_adoption() {
                failures += 1;
                tokio::select! {
                    _ = this.ctx().clock.sleep(backoff(&this.ctx().refresh.load(), failures)) => {}
                    _ = shutdown.wait_for(|stop| *stop) => break,
                }
                match this.adopt_pending(&pending, None).await {
                    // Done once the pending record has let go of the tokens (the loop's test).
                    Ok(_) => {}
                    Err(AdoptError::Spent) => break,
                    Err(error) => {
                        tracing::debug!(grant = %pending.key(), %error, "adoption not finished yet")
                    }
                }
            }
            pending.background.store(false, Ordering::Release);
        });
    }

    async fn call_zoom(
        &self,
        client_id: &str,
        presented: &Presented,
    ) -> Result<Issued, AdoptError> {
        let source = &self.ctx().source;
        let (kind, result) = match presented {
            Presented::Code { form, .. } => {
                ("exchange", source.exchange(client_id, form.clone()).await)
            }
            Presented::Legacy(token) => ("adopt", source.refresh(client_id, token).await),
        };
        let label = result.as_ref().map_or_else(ZoomTokenError::label, |_| "ok");
        self.ctx().metrics.token_call(kind, label);
        Ok(result?)
    }

    /// The binding that adopted legacy token `hash` into `into`, as stored
    /// (another replica may have adopted it).
    async fn legacy_binding(&self, into: &GrantKey, hash: &str) -> Result<Adopted, AdoptError> {
        self.reload(into).await;
        let grant = self.get(into).ok_or(AdoptError::Spent)?;
        let binding = grant
            .record()
            .await
            .live_bindings()
            .find(|b| b.adopted_from.as_deref() == Some(hash))
            .map(|b| b.id.clone())
            .ok_or(AdoptError::Spent)?;
        Ok((grant, binding))
    }

    fn new_binding(&self, adopted_from: Option<String>) -> Binding {
        let label = match adopted_from {
            Some(_) => "legacy refresh token",
            None => "authorization_code",
        };
        Binding {
            id: random_id(),
            label: label.to_owned(),
            created_at_ms: self.ctx().clock.now_ms(),
            revoked: false,
            adopted_from,
        }
    }
}

// === impl GrantHandle ===

impl GrantHandle {
    /// Installs tokens Zoom issued for this grant's subject at `issued_at_ms`,
    /// with `binding` if any, in one write under the grant's locks. Tokens
    /// older than the ones held are not installed: Zoom revoked them when it
    /// issued the newer ones. `account`, the subject's Zoom account if the
    /// identity lookup named one, is recorded either way (`None` keeps the one
    /// known). Returns the binding's id (one already adopted from the same
    /// legacy token is reused) and whether the record is durable.
    pub(super) async fn adopt(
        self: &Arc<Self>,
        issued: &Issued,
        issued_at_ms: UnixMillis,
        binding: Option<Binding>,
        account: Option<String>,
    ) -> Result<(Option<String>, bool), StoreError> {
        let mut flight = self.flight.lock().await;
        // Other replicas must not refresh the pair being replaced meanwhile.
        let attempt = Attempt::take(self).await?;
        self.reread(&mut flight).await;
        let record = &flight.record;
        // Strictly newer only: the clock counts milliseconds, and a record
        // installed in the millisecond this call was sent is, in the ordinary
        // case, the previous authorization, finished before this one began
        // (keeping it kept the pair Zoom had just revoked: the grant died at
        // its next refresh). Within one millisecond the order is unknowable.
        let mut next = if record.refreshed_at_ms > issued_at_ms && !record.is_dead() {
            record.bumped()
        } else {
            record.rotated(issued, issued_at_ms)
        };
        if account.is_some() {
            next.account_id = account;
        }
        identity::learn_account(&mut next, &issued.access_token);
        let id = binding.map(|binding| {
            let existing = binding.adopted_from.as_ref().and_then(|hash| {
                next.live_bindings()
                    .find(|b| b.adopted_from.as_ref() == Some(hash))
                    .map(|b| b.id.clone())
            });
            existing.unwrap_or_else(|| {
                let id = binding.id.clone();
                next.bindings.push(binding);
                id
            })
        });
        let persist = self.persist(next).await;
        let durable = !persist.is_held();
        let record = persist.into_record();
        self.raise_change(&flight.record.state, &record).await;
        self.install(&mut flight, record);
        attempt.end().await;
        self.announce().await;
        Ok((id, durable))
    }
}
