//! The seam between a session and its [`TokenStore`]: the only place the session's
//! refresh token is loaded, saved or removed, and where its refresh lock is taken.
//!
//! What it guarantees the session:
//! - every store call runs on a blocking thread with a timeout
//!   (`AuthConfig::store_timeout`) and `catch_unwind`: a slow, hung or panicking
//!   store is an `AuthError::Storage`, never a stalled runtime or a crash;
//! - calls on one (store, key) are applied in the order the session made them, and a
//!   write overtaken by a later write is dropped: a save that timed out and lands
//!   after a logout's remove cannot bring the logged-out user back;
//! - the value is a versioned record (`storage::record`) under an unambiguous key
//!   (`storage::key`); a tokenkeeper 0.1 entry (bare token, old key) is moved on
//!   first load; a corrupt, foreign, oversized or expired entry is deleted and
//!   reported once as `ReauthenticationRequired`.

use crate::clock::Clock;
use crate::error::{AuthError, ErrorSource};
use crate::identity::{Identity, Subject};
use crate::internal::context::ClientContext;
use crate::storage::key;
use crate::storage::record::{Owner, Record, StoredAccess};
use crate::storage::seam::{Deleted, Lease, RecordStore, StoreFuture, Written};
use futures_util::FutureExt;
use secrecy::{ExposeSecret, SecretString};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

/// What a save records besides the refresh token.
pub(crate) struct SaveMeta<'a> {
    pub subject: &'a Subject,
    /// The scope the server granted (RFC 6749 §5.1), space-separated.
    pub scope: Option<&'a str>,
    /// When the refresh token expires, if the server said so.
    pub refresh_expires_at: Option<SystemTime>,
    /// The access token and its expiry, stored for offline start when
    /// `AuthConfig::offline_start` is on.
    pub access: Option<(&'a SecretString, SystemTime)>,
}

/// What a restore finds in the store.
pub(crate) struct Stored {
    pub refresh_token: SecretString,
    /// A stored access token (offline start); its expiry is the caller's to check.
    pub access: Option<StoredAccess>,
    /// The scope the server granted, space-separated, if the record names it.
    pub scope: Option<String>,
}

/// What one session keeps for the store itself; everything else (the store, the
/// endpoint, the client id, the lock directory, the timeout, the clock) is read from
/// the client context every session shares, so an idle session without a store
/// costs a few bytes here, not a copy of each.
#[derive(Default)]
pub(crate) struct PersistSlot {
    /// The store key, built on first use (`Session::store_key` or a store call).
    key: OnceLock<Box<str>>,
    /// Set once a save under the new key has removed any 0.1 entry under the old key.
    /// Until then such an entry may exist, and a stale old entry must never resurface.
    legacy_cleared: AtomicBool,
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
        let (ctx, identity) = (self.ctx, self.identity);
        self.slot
            .key
            .get_or_init(|| key::store_key(ctx.token_url.as_str(), &ctx.config.client_id, identity).into_boxed_str())
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

    /// The stored refresh token. `Ok(None)`: nothing stored (or no store). A corrupt,
    /// foreign, oversized or expired entry is deleted and reported once as
    /// `ReauthenticationRequired`. Store failures, panics, timeouts: `Storage`.
    pub(crate) async fn load(&self) -> Result<Option<SecretString>, AuthError> {
        Ok(self.load_stored().await?.map(|stored| stored.refresh_token))
    }

    /// [`load`](Self::load) with the stored access token, for a restore (offline
    /// start); the access token only when `AuthConfig::offline_start` is on.
    pub(crate) async fn load_stored(&self) -> Result<Option<Stored>, AuthError> {
        if !self.is_configured() {
            return Ok(None);
        }
        let record = match self.read(self.key()).await? {
            Some(raw) => self.accept(self.key(), &raw).await?,
            None => {
                return Ok(self.migrate().await?.map(|refresh_token| Stored {
                    refresh_token,
                    access: None,
                    scope: None,
                }))
            }
        };
        Ok(Some(Stored {
            refresh_token: record.refresh_token,
            access: record.access.filter(|_| self.ctx.config.offline_start),
            scope: (!record.scopes.is_empty()).then(|| record.scopes.join(" ")),
        }))
    }

    /// Decodes and checks a stored value; deletes it if it cannot be used.
    async fn accept(&self, key: &str, raw: &SecretString) -> Result<Record, AuthError> {
        let record = Record::decode(raw.expose_secret()).and_then(|record| {
            record.check_owner(self.owner())?;
            Ok(record)
        });
        let reason = match record {
            Ok(record) if !record.is_expired(self.clock().now()) => return Ok(record),
            Ok(_) => "the stored refresh token has expired".to_owned(),
            Err(error) => error.to_string(),
        };
        tracing::warn!(subject = ?self.subject(), %reason, "deleting an unusable stored session");
        if let Err(error) = self.write(key, None).await {
            tracing::warn!(%error, "could not delete the unusable stored session");
        }
        Err(AuthError::reauthenticate(format!(
            "{reason}; it has been deleted, sign in again"
        )))
    }

    /// A tokenkeeper 0.1 entry under the old key: read it, store it as a record under
    /// the new key, then delete the old one (only once the new one is saved, so a
    /// failed move loses nothing and is retried on the next load).
    async fn migrate(&self) -> Result<Option<SecretString>, AuthError> {
        let legacy_key = self.legacy_key();
        let Some(raw) = self.read(&legacy_key).await? else {
            return Ok(None);
        };
        let token = self.accept(&legacy_key, &raw).await?.refresh_token;
        let record = Record::new(&token, self.owner(), None, self.clock().now(), None);
        match self.write(self.key(), Some(record.encode())).await {
            Ok(()) => {
                if let Err(error) = self.write(&legacy_key, None).await {
                    tracing::warn!(%error, "moved the stored session but could not delete its old entry");
                }
                tracing::info!(subject = ?self.subject(), "moved a tokenkeeper 0.1 stored session to the new key");
            }
            Err(error) => tracing::warn!(%error, "could not move the stored session to the new key"),
        }
        Ok(Some(token))
    }

    /// Stores `refresh_token` with `meta` as the current-format record.
    pub(crate) async fn save(&self, refresh_token: &SecretString, meta: &SaveMeta<'_>) -> Result<(), AuthError> {
        if !self.is_configured() {
            return Ok(());
        }
        let owner = Owner {
            subject: meta.subject,
            ..self.owner()
        };
        let record = Record::new(
            refresh_token,
            owner,
            meta.scope,
            self.clock().now(),
            meta.refresh_expires_at,
        );
        let access = meta.access.filter(|_| self.ctx.config.offline_start);
        match access {
            Some((token, expires_at)) => {
                let with_access = record.with_access(Some(StoredAccess {
                    token: SecretString::from(token.expose_secret()),
                    expires_at,
                }));
                if let Err(error) = self.write(self.key(), Some(with_access.encode())).await {
                    // The access token is an optimisation: a store too small for it
                    // (Windows Credential Manager's 2,560 bytes) still gets the record.
                    tracing::info!(%error, "saving without the access token (offline start off for this save)");
                    self.write(self.key(), Some(with_access.with_access(None).encode()))
                        .await?;
                }
            }
            None => self.write(self.key(), Some(record.encode())).await?,
        }
        // The new entry supersedes any 0.1 entry; left behind, it could bring back a
        // session after a logout (logout removes only what holds the session's token).
        if !self.slot.legacy_cleared.load(Ordering::SeqCst) && self.write(&self.legacy_key(), None).await.is_ok() {
            self.slot.legacy_cleared.store(true, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Deletes the entry, under the new key and the 0.1 key alike (a user who logs out
    /// before the first load must not be brought back by the old entry).
    pub(crate) async fn remove(&self) -> Result<(), AuthError> {
        if !self.is_configured() {
            return Ok(());
        }
        let current = self.write(self.key(), None).await;
        let legacy = self.write(&self.legacy_key(), None).await;
        current.and(legacy)
    }

    /// Removes the stored entry only if it still holds `ours`: a session that logs out
    /// must not delete what a newer session of the same identity saved meanwhile. An
    /// unreadable entry is removed too (it can serve nobody), and so is any 0.1 entry
    /// under the old key (the new SDK never writes one, so it is stale by definition).
    pub(crate) async fn remove_if_holds(&self, ours: Option<&SecretString>) -> Result<(), AuthError> {
        if !self.is_configured() {
            return Ok(());
        }
        let legacy = self.write(&self.legacy_key(), None).await;
        let Some(ours) = ours else {
            return legacy;
        };
        let holds_ours = match self.read(self.key()).await? {
            None => false,
            Some(raw) => Record::decode(raw.expose_secret()).map_or(true, |record| {
                record.refresh_token.expose_secret() == ours.expose_secret()
            }),
        };
        if holds_ours {
            // A save by another holder between this read and the remove is not
            // possible within the process: writes to a key are ordered, and the
            // session calls this under its persist lock.
            self.write(self.key(), None).await?;
        }
        legacy
    }

    /// Where a logout that could not reach the server keeps what it must still revoke
    /// (`internal::offline_logout`): beside the session's key, never read as a session.
    fn revocation_key(&self) -> String {
        format!("{}#revoke", self.key())
    }

    /// Keeps `refresh` (and the access token) for a later revocation, in the same
    /// record format as a session, under [`revocation_key`](Self::revocation_key).
    pub(crate) async fn queue_revocation(
        &self,
        refresh: &SecretString,
        access: Option<StoredAccess>,
    ) -> Result<(), AuthError> {
        let record = Record::new(refresh, self.owner(), None, self.clock().now(), None).with_access(access);
        self.write(&self.revocation_key(), Some(record.encode())).await
    }

    /// The queued revocation: the refresh token and the access token, if one is kept.
    /// An unreadable or foreign entry is deleted (it can revoke nothing of ours).
    pub(crate) async fn queued_revocation(&self) -> Result<Option<(SecretString, Option<SecretString>)>, AuthError> {
        let key = self.revocation_key();
        let Some(raw) = self.read(&key).await? else {
            return Ok(None);
        };
        match Record::decode(raw.expose_secret()).and_then(|record| {
            record.check_owner(self.owner())?;
            Ok(record)
        }) {
            Ok(record) => Ok(Some((record.refresh_token, record.access.map(|a| a.token)))),
            Err(error) => {
                tracing::warn!(%error, "deleting an unusable queued revocation");
                self.write(&key, None).await?;
                Ok(None)
            }
        }
    }

    /// Forgets the queued revocation (sent, or refused by the server for good).
    pub(crate) async fn clear_revocation(&self) -> Result<(), AuthError> {
        self.write(&self.revocation_key(), None).await
    }

    /// Serialises refreshes of this key: across every `AuthClient` of the process, and
    /// across processes when `AuthConfig::store_lock_directory` is set.
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

    async fn read(&self, key: &str) -> Result<Option<SecretString>, AuthError> {
        let Some(store) = self.store() else {
            return Ok(None);
        };
        Ok(self.bounded("load", store.read(key)).await?.map(|found| found.value))
    }

    /// `Some(value)` saves, `None` removes: whatever the key holds, through
    /// compare-and-set on the revision just read (a writer that raced in between
    /// makes it read again).
    async fn write(&self, key: &str, value: Option<SecretString>) -> Result<(), AuthError> {
        let Some(store) = self.store() else {
            return Ok(());
        };
        let what = if value.is_some() { "save" } else { "remove" };
        let mut current = self.bounded("load", store.read(key)).await?;
        for _ in 0..WRITE_ATTEMPTS {
            let expected = current.as_ref().map(|found| found.revision);
            match (&value, expected) {
                (None, None) => return Ok(()),
                (None, Some(revision)) => match self.bounded(what, store.compare_and_delete(key, revision)).await? {
                    Deleted::Deleted | Deleted::Absent => return Ok(()),
                    Deleted::Conflict { current: now } => current = Some(now),
                },
                (Some(value), expected) => {
                    match self
                        .bounded(what, store.compare_and_set(key, expected, value, None))
                        .await?
                    {
                        Written::Written { .. } => return Ok(()),
                        Written::Conflict { current: now } => current = now,
                    }
                }
            }
        }
        Err(AuthError::Storage {
            reason: format!("could not {what}: other writers kept changing the entry"),
            source: None,
        })
    }

    /// One seam call, bounded by `AuthConfig::store_timeout`, a panic caught.
    async fn bounded<T>(&self, what: &'static str, call: StoreFuture<'_, T>) -> Result<T, AuthError> {
        bounded(self.timeout(), what, call).await
    }
}

/// The user names with a stored session for this client (`AuthClient::accounts`):
/// `None` if the store cannot enumerate its keys. Queued revocations and unreadable
/// or foreign entries are not accounts.
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
    for key in keys.iter().filter(|key| !key.contains('#')) {
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
async fn bounded<T>(timeout: Duration, what: &'static str, call: StoreFuture<'_, T>) -> Result<T, AuthError> {
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
