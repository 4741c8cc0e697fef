//! The seam between a session and its store: the only place the session's refresh
//! token is loaded, saved or removed, and where its refresh lock is taken. Every
//! mutation of a key is decided here and goes through the [`RecordStore`]'s
//! compare-and-set or compare-and-delete, so it is serialized with every other
//! writer of the key (sessions, clients, processes) and never overwrites or deletes
//! a record it has not judged.
//!
//! What it guarantees the session:
//! - every store call is bounded by `AuthConfig::store_timeout` with its panics
//!   caught: a slow, hung or panicking store is an `AuthError::Storage`, never a
//!   stalled runtime or a crash;
//! - **newer is exact**: a stored record is news to a session only when it was
//!   written after the last record the session saw or wrote, and not by the session
//!   itself (a write of its own that timed out and landed late is never newer than
//!   what it holds). A stale record left by a failed save is therefore never adopted
//!   (the next save retries, on the revision the session last saw);
//! - **a logout deletes only its own sign-in**: the record of this session's grant
//!   (or, if the session never got to read the store, whatever it would have
//!   restored), never a newer sign-in another session saved meanwhile;
//! - the value is a versioned record (`storage::record`) under an unambiguous key
//!   (`storage::key`); a tokenkeeper 0.1 entry (bare token, old key) is moved on
//!   first load; a corrupt, foreign, oversized or expired entry is deleted and
//!   reported once as `ReauthenticationRequired`.

use crate::clock::Clock;
use crate::error::{AuthError, ErrorSource};
use crate::identity::{Identity, Subject};
use crate::internal::context::ClientContext;
use crate::internal::dpop::{Binding, KeyProblem};
use crate::internal::random;
use crate::storage::key;
use crate::storage::record::{Owner, Record, StoredAccess};
use crate::storage::seam::{Deleted, Lease, RecordStore, StoreFuture, Versioned, Written};
use futures_util::FutureExt;
use secrecy::{ExposeSecret, SecretString};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime};

/// What a save records besides the refresh token.
pub(crate) struct SaveMeta<'a> {
    /// The scope the server granted (RFC 6749 §5.1), space-separated.
    pub scope: Option<&'a str>,
    /// When the refresh token expires, if the server said so.
    pub refresh_expires_at: Option<SystemTime>,
    /// The token comes from a new sign-in (login, code, device, import), not a
    /// refresh: it starts a new grant, and wins over any record stored meanwhile.
    pub new_grant: bool,
    /// The DPoP key the tokens are bound to (RFC 9449), stored with them.
    pub dpop: Option<&'a crate::internal::dpop::Binding>,
    /// The access token and its expiry, stored for offline start when
    /// `AuthConfig::offline_start` is on.
    pub access: Option<(&'a SecretString, SystemTime)>,
    /// The claims of the session's last validated ID token, so a restart has them
    /// without a request.
    pub claims: Option<&'a crate::oidc::IdTokenClaims>,
}

/// What one session keeps for the store itself; everything else (the store, the
/// endpoint, the client id, the lock directory, the timeout, the clock) is read from
/// the client context every session shares, so an idle session without a store
/// costs a few bytes here, not a copy of each.
/// All of it is built on first use (`Session::store_key` or a store call), behind one
/// pointer.
#[derive(Default)]
pub(crate) struct PersistSlot(OnceLock<Box<SlotInner>>);

struct SlotInner {
    /// The store key.
    key: Box<str>,
    /// Set once a save under the new key has removed any 0.1 entry under the old key.
    /// Until then such an entry may exist, and a stale old entry must never resurface.
    legacy_cleared: AtomicBool,
    /// What the session knows of its stored record.
    view: Mutex<View>,
}

/// The record this session last saw or wrote, and who it is as a writer.
#[derive(Default)]
struct View {
    seen: Seen,
    /// The grant (sign-in lineage) of the refresh token the session holds.
    grant: Option<u64>,
    /// This session instance's writer id, made on its first write (or attempt): a
    /// session that has one holds a sign-in of its own, even if no write landed.
    writer: Option<u64>,
}

#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
enum Seen {
    /// The session has not read or written the store yet.
    #[default]
    Unknown,
    /// The key was empty when the session last looked (or it deleted the record).
    Absent,
    Record {
        revision: u64,
        writer: Option<u64>,
    },
}

/// A usable stored record, and what it means for the session that read it.
pub(crate) struct Stored {
    pub refresh_token: SecretString,
    /// Written after the last record this session saw or wrote, by someone else: newer
    /// than what the session holds.
    pub news: bool,
    /// From the same sign-in as the session's own refresh token (another holder
    /// rotated it), or the session holds no grant yet.
    pub same_grant: bool,
    /// A stored access token (offline start, when `AuthConfig::offline_start` is
    /// on); its expiry is the caller's to check.
    pub access: Option<StoredAccess>,
    /// The scope the server granted, space-separated, if the record names it.
    pub scope: Option<String>,
    seen: Seen,
    grant: Option<u64>,
    /// The DPoP key the stored tokens are bound to, checked against their thumbprint.
    pub dpop: Option<Arc<crate::internal::dpop::Binding>>,
    /// The claims of the last ID token validated for this record's tokens.
    pub claims: Option<crate::oidc::IdTokenClaims>,
}

/// One session's view of the store: its slot, its identity and the client context.
pub(crate) struct Persistence<'a> {
    ctx: &'a ClientContext,
    identity: &'a Identity,
    slot: &'a PersistSlot,
}

/// How often a write re-reads and retries when another writer changed the key.
const WRITE_ATTEMPTS: usize = 8;

impl<'a> Persistence<'a> {
    pub(crate) fn new(ctx: &'a ClientContext, identity: &'a Identity, slot: &'a PersistSlot) -> Self {
        Self { ctx, identity, slot }
    }

    /// The store key of this session (`Session::store_key`).
    pub(crate) fn key(&self) -> &'a str {
        &self.inner().key
    }

    fn inner(&self) -> &'a SlotInner {
        let (ctx, identity) = (self.ctx, self.identity);
        self.slot.0.get_or_init(|| {
            Box::new(SlotInner {
                key: key::store_key(ctx.token_url.as_str(), &ctx.config.client_id, identity).into_boxed_str(),
                legacy_cleared: AtomicBool::new(false),
                view: Mutex::default(),
            })
        })
    }

    /// The key tokenkeeper 0.1 used: built when needed, as only store calls use it.
    fn legacy_key(&self) -> String {
        key::legacy(&self.ctx.config.client_id, self.identity)
    }

    pub(crate) fn is_configured(&self) -> bool {
        self.ctx.store.is_some()
    }

    fn store(&self) -> Option<&'a Arc<dyn RecordStore>> {
        self.ctx.store.as_ref()
    }

    fn view(&self) -> MutexGuard<'a, View> {
        self.inner().view.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn subject(&self) -> &'a Subject {
        self.identity.subject()
    }

    fn clock(&self) -> &'a dyn Clock {
        self.ctx.clock()
    }

    fn timeout(&self) -> Duration {
        self.ctx.config.store_timeout
    }

    fn owner(&self) -> Owner<'a> {
        Owner {
            token_endpoint: self.ctx.token_url.as_str(),
            client_id: &self.ctx.config.client_id,
            subject: self.subject(),
        }
    }

    /// The stored record, judged against what the session knows. `Ok(None)`: nothing
    /// stored (or no store). A corrupt, foreign, oversized or expired entry is
    /// deleted and reported once as `ReauthenticationRequired`. Store failures,
    /// panics, timeouts: `Storage`. Reading changes nothing the session knows: call
    /// [`adopt`](Self::adopt) when the session takes the record's token.
    pub(crate) async fn load(&self) -> Result<Option<Stored>, AuthError> {
        if !self.is_configured() {
            return Ok(None);
        }
        match self.read(self.key()).await? {
            Some(found) => {
                let revision = found.revision;
                let (record, dpop) = self.accept(self.key(), found).await?;
                Ok(Some(self.judge(revision, record, dpop)))
            }
            None => self.migrate().await,
        }
    }

    fn judge(&self, revision: u64, record: Record, dpop: Option<Arc<Binding>>) -> Stored {
        let view = self.view();
        let seen = Seen::Record {
            revision,
            writer: record.writer,
        };
        let ours = view.writer.is_some() && record.writer == view.writer;
        Stored {
            news: !ours && view.seen != seen,
            same_grant: view.grant.is_none() || record.grant == view.grant,
            access: record.access.filter(|_| self.ctx.config.offline_start),
            scope: (!record.scopes.is_empty()).then(|| record.scopes.join(" ")),
            refresh_token: record.refresh_token,
            seen,
            grant: record.grant,
            dpop,
            claims: record.id_token_claims,
        }
    }

    /// The session took `stored`'s refresh token: it now holds that record's grant.
    pub(crate) fn adopt(&self, stored: &Stored) {
        let mut view = self.view();
        view.seen = stored.seen;
        view.grant = stored.grant;
    }

    /// Decodes and checks a stored value; deletes it if it cannot be used.
    async fn accept(&self, key: &str, found: Versioned) -> Result<(Record, Option<Arc<Binding>>), AuthError> {
        let record = Record::decode(found.value.expose_secret()).and_then(|record| {
            record.check_owner(self.owner())?;
            Ok(record)
        });
        let reason = match record {
            Ok(record) if !record.is_expired(self.clock().now()) => match self.dpop_key_of(&record) {
                Ok(dpop) => return Ok((record, dpop)),
                Err(KeyProblem::Unusable(reason)) => reason.to_owned(),
                // A locked or busy key store: the record is fine, the key may be too.
                Err(KeyProblem::Failed(error)) => return Err(error),
            },
            Ok(_) => "the stored refresh token has expired".to_owned(),
            Err(error) => error.to_string(),
        };
        tracing::warn!(subject = ?self.subject(), %reason, "deleting an unusable stored session");
        match self.delete(key, found.revision).await {
            Ok(_) if key == self.key() => self.view().seen = Seen::Absent,
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "could not delete the unusable stored session"),
        }
        Err(AuthError::reauthenticate(format!(
            "{reason}; it has been deleted, sign in again"
        )))
    }

    /// RFC 9449: tokens bound to a DPoP key are usable only with that key. A record
    /// whose key is missing, unreadable or not the one its thumbprint names (or one a
    /// client without DPoP reads) cannot be refreshed: checked here, before any request.
    fn dpop_key_of(&self, record: &Record) -> Result<Option<Arc<Binding>>, KeyProblem> {
        let Some(jkt) = &record.dpop_jkt else {
            return Ok(None);
        };
        if self.ctx.dpop.is_none() {
            return Err(KeyProblem::Unusable(
                "the stored session is bound to a DPoP key but this client sends no DPoP proofs",
            ));
        }
        Binding::from_record(
            self.ctx,
            jkt,
            record.dpop_key.as_ref(),
            record.dpop_key_alias.as_deref(),
        )
        .map(Some)
    }

    /// A tokenkeeper 0.1 entry under the old key: read it, store it as a record under
    /// the new key, then delete the old one (only once the new one is saved, so a
    /// failed move loses nothing and is retried on the next load). The caller holds
    /// the session's persist lock, so a logout deletes what this writes.
    async fn migrate(&self) -> Result<Option<Stored>, AuthError> {
        let legacy_key = self.legacy_key();
        let Some(found) = self.read(&legacy_key).await? else {
            return Ok(None);
        };
        let legacy_revision = found.revision;
        let token = self.accept(&legacy_key, found).await?.0.refresh_token;
        let mut record = Record::new(&token, self.owner(), None, self.clock().now(), None);
        record.grant = Some(random::id());
        record.writer = Some(self.writer());
        let Some(store) = self.store() else {
            return Ok(None);
        };
        let written = self
            .bounded("save", store.compare_and_set(self.key(), None, &record.encode(), None))
            .await;
        let stored = match written {
            Ok(Written::Written { revision }) => {
                if let Err(error) = self.delete(&legacy_key, legacy_revision).await {
                    tracing::warn!(%error, "moved the stored session but could not delete its old entry");
                }
                tracing::info!(subject = ?self.subject(), "moved a tokenkeeper 0.1 stored session to the new key");
                self.judge(revision, record, None)
            }
            // Another holder moved it (or signed in) first: theirs is the record.
            Ok(Written::Conflict { current: Some(found) }) => {
                let revision = found.revision;
                let (record, dpop) = self.accept(self.key(), found).await?;
                self.judge(revision, record, dpop)
            }
            Ok(Written::Conflict { current: None }) | Err(_) => {
                if let Err(error) = written {
                    tracing::warn!(%error, "could not move the stored session to the new key");
                }
                Stored {
                    refresh_token: token,
                    news: true,
                    same_grant: true,
                    access: None,
                    scope: None,
                    seen: Seen::Absent,
                    grant: None,
                    dpop: None,
                    claims: None,
                }
            }
        };
        Ok(Some(stored))
    }

    fn writer(&self) -> u64 {
        *self.view().writer.get_or_insert_with(random::id)
    }

    /// Stores `refresh_token` with `meta` as the current-format record, by
    /// compare-and-set on the revision the session last saw. A conflict is decided
    /// here: a late write of this session's own, a co-holder's rotation of the same
    /// grant, or an empty key are overwritten; a newer sign-in someone else saved is
    /// kept unless this save is itself a new sign-in (the latest sign-in wins).
    pub(crate) async fn save(&self, refresh_token: &SecretString, meta: &SaveMeta<'_>) -> Result<(), AuthError> {
        let with_access = meta.access.is_some() && self.ctx.config.offline_start;
        let with_claims = meta.claims.is_some();
        let mut outcome = self.save_once(refresh_token, meta, with_access, with_claims).await;
        // The access token and the claims are conveniences: a store too small for
        // them (Windows Credential Manager's 2,560 bytes) still gets the record,
        // first without the access token (no offline start), then without the claims
        // too (the account screen then waits for the next ID token or UserInfo).
        if let (Err(error), true) = (&outcome, with_access) {
            tracing::info!(%error, "saving without the access token (no offline start for this save)");
            outcome = self.save_once(refresh_token, meta, false, with_claims).await;
        }
        if let (Err(error), true) = (&outcome, with_claims) {
            tracing::info!(%error, "saving without the ID token claims");
            outcome = self.save_once(refresh_token, meta, false, false).await;
        }
        outcome
    }

    /// One [`save`](Self::save), with or without the access token and the claims.
    async fn save_once(
        &self,
        refresh_token: &SecretString,
        meta: &SaveMeta<'_>,
        with_access: bool,
        with_claims: bool,
    ) -> Result<(), AuthError> {
        let Some(store) = self.store() else {
            return Ok(());
        };
        let mut record = Record::new(
            refresh_token,
            self.owner(),
            meta.scope,
            self.clock().now(),
            meta.refresh_expires_at,
        );
        if let Some(binding) = meta.dpop {
            bind(&mut record, binding);
        }
        let writer = self.writer();
        let (grant, mut expected) = {
            let mut view = self.view();
            if meta.new_grant || view.grant.is_none() {
                view.grant = Some(random::id());
            }
            (view.grant, view.seen)
        };
        record.grant = grant;
        record.writer = Some(writer);
        let access = meta
            .access
            .filter(|_| with_access)
            .map(|(token, expires_at)| StoredAccess {
                token: SecretString::from(token.expose_secret()),
                expires_at,
            });
        let claims = meta.claims.filter(|_| with_claims).cloned();
        let value = record.with_access(access).with_claims(claims).encode();
        for _ in 0..WRITE_ATTEMPTS {
            let revision = match expected {
                Seen::Unknown => {
                    expected = match self.read(self.key()).await? {
                        None => Seen::Absent,
                        Some(found) => Seen::Record {
                            revision: found.revision,
                            writer: Record::decode(found.value.expose_secret()).ok().and_then(|r| r.writer),
                        },
                    };
                    continue;
                }
                Seen::Absent => None,
                Seen::Record { revision, .. } => Some(revision),
            };
            let written = store.compare_and_set(self.key(), revision, &value, meta.refresh_expires_at);
            let current = match self.bounded("save", written).await? {
                Written::Written { revision } => {
                    self.view().seen = Seen::Record {
                        revision,
                        writer: Some(writer),
                    };
                    self.clear_legacy().await;
                    return Ok(());
                }
                Written::Conflict { current: None } => {
                    expected = Seen::Absent;
                    continue;
                }
                Written::Conflict { current: Some(current) } => current,
            };
            let theirs = Record::decode(current.value.expose_secret()).ok();
            let overwrite = meta.new_grant
                || theirs
                    .as_ref()
                    .is_none_or(|r| r.writer == Some(writer) || r.grant.is_none() || r.grant == grant);
            if !overwrite {
                tracing::info!(
                    subject = ?self.subject(),
                    "another session saved a newer sign-in; keeping it in the store"
                );
                return Ok(());
            }
            expected = Seen::Record {
                revision: current.revision,
                writer: theirs.and_then(|r| r.writer),
            };
        }
        Err(AuthError::Storage {
            reason: "could not save: other writers kept changing the entry".into(),
            source: None,
        })
    }

    /// The new entry supersedes any 0.1 entry; left behind, it could bring back a
    /// session after a logout (logout removes only what holds the session's token).
    async fn clear_legacy(&self) {
        if !self.inner().legacy_cleared.load(Ordering::SeqCst) && self.remove_any(&self.legacy_key()).await.is_ok() {
            self.inner().legacy_cleared.store(true, Ordering::SeqCst);
        }
    }

    /// After a failed save: deletes the record the session last saw (it may hold a
    /// refresh token the server has spent), and any 0.1 entry.
    pub(crate) async fn remove_stale(&self) -> Result<(), AuthError> {
        if !self.is_configured() {
            return Ok(());
        }
        let seen = self.view().seen;
        let current = match seen {
            Seen::Record { revision, .. } => self.delete(self.key(), revision).await.map(|deleted| {
                if !matches!(deleted, Deleted::Conflict { .. }) {
                    self.view().seen = Seen::Absent;
                }
            }),
            Seen::Unknown | Seen::Absent => Ok(()),
        };
        let legacy = self.remove_any(&self.legacy_key()).await;
        current.and(legacy)
    }

    /// Logout: deletes the stored record if it is this session's (see the module
    /// docs), and any 0.1 entry. Returns the stored refresh token if it differs from
    /// `held`, so the caller revokes it too (it would otherwise stay live, unowned).
    pub(crate) async fn remove_ours(&self, held: Option<&SecretString>) -> Result<Option<SecretString>, AuthError> {
        if !self.is_configured() {
            return Ok(None);
        }
        let legacy = self.remove_any(&self.legacy_key()).await;
        let mut extra = None;
        for _ in 0..WRITE_ATTEMPTS {
            let Some(found) = self.read(self.key()).await? else {
                self.view().seen = Seen::Absent;
                return legacy.map(|()| extra);
            };
            let record = Record::decode(found.value.expose_secret()).ok();
            let ours = match &record {
                // Unreadable: it can serve nobody.
                None => true,
                Some(record) => {
                    let view = self.view();
                    let seen = Seen::Record {
                        revision: found.revision,
                        writer: record.writer,
                    };
                    // A session that never read nor wrote the store (a logout during its
                    // restore's read) takes what it would have restored; one that has
                    // a sign-in of its own (a writer id) only ever takes its own.
                    (view.seen == Seen::Unknown && view.writer.is_none())
                        || view.seen == seen
                        || (view.writer.is_some() && record.writer == view.writer)
                        || (record.grant.is_some() && record.grant == view.grant)
                        || held.is_some_and(|held| held.expose_secret() == record.refresh_token.expose_secret())
                }
            };
            if !ours {
                return legacy.map(|()| None);
            }
            extra = record
                .map(|record| record.refresh_token)
                .filter(|stored| held.is_none_or(|held| held.expose_secret() != stored.expose_secret()));
            match self.delete(self.key(), found.revision).await? {
                Deleted::Deleted | Deleted::Absent => {
                    self.view().seen = Seen::Absent;
                    return legacy.map(|()| extra);
                }
                Deleted::Conflict { .. } => continue,
            }
        }
        Err(AuthError::Storage {
            reason: "could not remove: other writers kept changing the entry".into(),
            source: None,
        })
    }

    /// Removes the stored entry only if it still holds `rejected` (a refresh token the
    /// server refused): a newer record someone saved meanwhile stays.
    ///
    /// True when no record of this key is left (so none names the session's DPoP key);
    /// false when the store holds another holder's record, kept.
    pub(crate) async fn remove_if_holds(&self, rejected: &SecretString) -> Result<bool, AuthError> {
        if !self.is_configured() {
            return Ok(true);
        }
        let legacy = self.remove_any(&self.legacy_key()).await;
        let Some(found) = self.read(self.key()).await? else {
            return legacy.map(|()| true);
        };
        let holds = Record::decode(found.value.expose_secret())
            .is_ok_and(|record| record.refresh_token.expose_secret() == rejected.expose_secret());
        let removed = holds && !matches!(self.delete(self.key(), found.revision).await?, Deleted::Conflict { .. });
        if removed {
            self.view().seen = Seen::Absent;
        }
        legacy.map(|()| removed)
    }

    /// Serialises refreshes of this key: across every `AuthClient` of the process, and
    /// across processes when `AuthConfig::store_lock_directory` is set (or as the
    /// configured [`RefreshLock`](crate::RefreshLock) says).
    pub(crate) async fn refresh_guard(&self) -> Result<Box<dyn Lease>, AuthError> {
        self.ctx
            .refresh_lock
            .acquire(self.key(), self.timeout())
            .await
            .map_err(|error| AuthError::Storage {
                reason: format!("could not take the refresh lock: {error}"),
                source: Some(ErrorSource::new(error)),
            })
    }

    async fn delete(&self, key: &str, revision: u64) -> Result<Deleted, AuthError> {
        let Some(store) = self.store() else {
            return Ok(Deleted::Absent);
        };
        self.bounded("remove", store.compare_and_delete(key, revision)).await
    }

    async fn read(&self, key: &str) -> Result<Option<Versioned>, AuthError> {
        let Some(store) = self.store() else {
            return Ok(None);
        };
        self.bounded("load", store.read(key)).await
    }

    /// Deletes whatever `key` holds (re-reading if a writer raced in). Only for the
    /// 0.1 key, which no current SDK writes, so nothing newer can be lost.
    async fn remove_any(&self, key: &str) -> Result<(), AuthError> {
        for _ in 0..WRITE_ATTEMPTS {
            let Some(found) = self.read(key).await? else {
                return Ok(());
            };
            if !matches!(self.delete(key, found.revision).await?, Deleted::Conflict { .. }) {
                return Ok(());
            }
        }
        Err(AuthError::Storage {
            reason: "could not remove: other writers kept changing the entry".into(),
            source: None,
        })
    }

    /// Where a logout that could not reach the server keeps what it must still revoke
    /// (`internal::offline_logout`): beside the session's key, never read as a session.
    fn revocation_key(&self) -> String {
        format!("{}{REVOCATION_SUFFIX}", self.key())
    }

    /// Keeps `refresh` (and the access token) for a later revocation, in the same
    /// record format as a session, under [`revocation_key`](Self::revocation_key).
    /// A DPoP session's key goes with them (RFC 9449: the revocation of a bound token
    /// carries a proof), so the key outlives the session until they are revoked.
    pub(crate) async fn queue_revocation(
        &self,
        refresh: &SecretString,
        access: Option<StoredAccess>,
        dpop: Option<&Binding>,
    ) -> Result<(), AuthError> {
        let Some(store) = self.store() else {
            return Ok(());
        };
        let key = self.revocation_key();
        let mut record = Record::new(refresh, self.owner(), None, self.clock().now(), None).with_access(access);
        if let Some(binding) = dpop {
            bind(&mut record, binding);
        }
        let value = record.encode();
        let mut expected = self.read(&key).await?.map(|found| found.revision);
        for _ in 0..WRITE_ATTEMPTS {
            match self
                .bounded("save", store.compare_and_set(&key, expected, &value, None))
                .await?
            {
                Written::Written { .. } => return Ok(()),
                Written::Conflict { current } => expected = current.map(|found| found.revision),
            }
        }
        Err(AuthError::Storage {
            reason: "could not queue the revocation: other writers kept changing the entry".into(),
            source: None,
        })
    }

    /// The queued revocation: the refresh token, the access token if one is kept, and
    /// the DPoP key to sign its proofs with. A key that is missing or does not match
    /// the recorded thumbprint leaves the revocation without a proof (the best left
    /// to do). An unreadable or foreign entry is deleted (it can revoke nothing of ours).
    pub(crate) async fn queued_revocation(&self) -> Result<Option<QueuedRevocation>, AuthError> {
        let key = self.revocation_key();
        let Some(found) = self.read(&key).await? else {
            return Ok(None);
        };
        match Record::decode(found.value.expose_secret()).and_then(|record| {
            record.check_owner(self.owner())?;
            Ok(record)
        }) {
            Ok(record) => {
                let dpop = record.dpop_jkt.as_deref().and_then(|jkt| {
                    Binding::from_record(
                        self.ctx,
                        jkt,
                        record.dpop_key.as_ref(),
                        record.dpop_key_alias.as_deref(),
                    )
                    .inspect_err(|problem| match problem {
                        KeyProblem::Unusable(reason) => tracing::warn!(%reason, "revoking without a DPoP proof"),
                        KeyProblem::Failed(error) => tracing::warn!(%error, "revoking without a DPoP proof"),
                    })
                    .ok()
                });
                Ok(Some(QueuedRevocation {
                    refresh: record.refresh_token,
                    access: record.access.map(|a| a.token),
                    dpop,
                }))
            }
            Err(error) => {
                tracing::warn!(%error, "deleting an unusable queued revocation");
                self.remove_any(&key).await?;
                Ok(None)
            }
        }
    }

    /// Forgets the queued revocation (sent, or refused by the server for good).
    pub(crate) async fn clear_revocation(&self) -> Result<(), AuthError> {
        self.remove_any(&self.revocation_key()).await
    }

    /// One seam call, bounded by `AuthConfig::store_timeout`, a panic caught.
    async fn bounded<T>(&self, what: &'static str, call: StoreFuture<'_, T>) -> Result<T, AuthError> {
        bounded(self.timeout(), what, call).await
    }
}

/// Records the DPoP key `record`'s tokens are bound to: its thumbprint, and a
/// software key itself (a platform key stays where it lives).
fn bind(record: &mut Record, binding: &Binding) {
    record.dpop_jkt = Some(binding.jkt.clone());
    record.dpop_key = binding.stored_software().map(|k| SecretString::from(k.expose_secret()));
    record.dpop_key_alias = binding.alias().map(str::to_owned);
    // A record names the key now: it outlives the process, for the next start.
    binding.adopt();
}

/// What an offline logout left to revoke (`Persistence::queued_revocation`).
pub(crate) struct QueuedRevocation {
    pub refresh: SecretString,
    pub access: Option<SecretString>,
    /// The key the tokens are bound to, for the revocations' proofs.
    pub dpop: Option<Arc<Binding>>,
}

/// The user names with a stored session for this client (`AuthClient::accounts`):
/// `None` if the store cannot enumerate its keys. Queued revocations and unreadable
/// or foreign entries are not accounts.
/// What a queued revocation's key adds to its session's store key.
const REVOCATION_SUFFIX: &str = "#revoke";

pub(crate) async fn accounts(ctx: &ClientContext) -> Result<Option<Vec<String>>, AuthError> {
    let Some(store) = ctx.store.as_ref() else {
        return Ok(Some(Vec::new()));
    };
    let timeout = ctx.config.store_timeout;
    let prefix = key::client_prefix(ctx.token_url.as_str(), &ctx.config.client_id);
    let Some(keys) = bounded(timeout, "list", store.list(&prefix)).await? else {
        return Ok(None);
    };
    let mut names = Vec::new();
    // A queued revocation is a record of a user who logged out; a user name may hold a
    // `#` itself (the store key does not escape it), so only the suffix tells.
    for key in keys.iter().filter(|key| !key.ends_with(REVOCATION_SUFFIX)) {
        let Some(found) = bounded(timeout, "load", store.read(key)).await? else {
            continue;
        };
        let Ok(record) = Record::decode(found.value.expose_secret()) else {
            continue;
        };
        let user = record.subject.as_deref().and_then(|s| s.strip_prefix("user:"));
        if let Some(name) = user.filter(|_| !record.is_expired(ctx.clock().now())) {
            names.push(name.to_owned());
        }
    }
    names.sort();
    names.dedup();
    Ok(Some(names))
}

/// One seam call, bounded by `timeout`, a panic caught.
pub(crate) async fn bounded<T>(
    timeout: Duration,
    what: &'static str,
    call: StoreFuture<'_, T>,
) -> Result<T, AuthError> {
    // `AuthError::Storage` reads "the token store failed: {reason}".
    match tokio::time::timeout(timeout, AssertUnwindSafe(call).catch_unwind()).await {
        Ok(Ok(Ok(value))) => Ok(value),
        Ok(Ok(Err(error))) => Err(AuthError::Storage {
            reason: format!("could not {what}: {error}"),
            source: Some(ErrorSource::new(error)),
        }),
        Ok(Err(_panic)) => Err(AuthError::Storage {
            reason: format!("it panicked during {what}"),
            source: None,
        }),
        Err(elapsed) => Err(AuthError::Storage {
            reason: format!("it did not {what} within {timeout:?}"),
            source: Some(ErrorSource::new(elapsed)),
        }),
    }
}
