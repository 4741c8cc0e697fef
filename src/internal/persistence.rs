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
use crate::storage::record::{Owner, Record};
use crate::storage::{key, lock, StoreError, TokenStore};
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, SystemTime};

pub(crate) use crate::storage::lock::RefreshGuard;

/// What a save records besides the refresh token.
pub(crate) struct SaveMeta<'a> {
    pub subject: &'a Subject,
    /// The scope the server granted (RFC 6749 §5.1), space-separated.
    pub scope: Option<&'a str>,
    /// When the refresh token expires, if the server said so.
    pub refresh_expires_at: Option<SystemTime>,
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

/// Orders the calls on one (store, key) across every session of the process.
#[derive(Default)]
struct KeyOrder {
    next: AtomicU64,
    /// The sequence number of the last write applied; held while a call runs.
    applied: Mutex<u64>,
}

type OrderMap = HashMap<(usize, String), Weak<KeyOrder>>;
static ORDERS: Mutex<Option<OrderMap>> = Mutex::new(None);

fn key_order(store: &Arc<dyn TokenStore>, key: &str) -> Arc<KeyOrder> {
    // The store's address tells stores apart; the entry is weak, so an address
    // reused by a later store never inherits an old order.
    let id = (Arc::as_ptr(store).cast::<()>() as usize, key.to_owned());
    let mut orders = ORDERS.lock().unwrap_or_else(|p| p.into_inner());
    let orders = orders.get_or_insert_with(HashMap::new);
    if let Some(order) = orders.get(&id).and_then(Weak::upgrade) {
        return order;
    }
    orders.retain(|_, weak| weak.strong_count() > 0);
    let order = Arc::new(KeyOrder::default());
    orders.insert(id, Arc::downgrade(&order));
    order
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Call {
    Read,
    Write,
}

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

    fn store(&self) -> Option<&'a Arc<dyn TokenStore>> {
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
        if !self.is_configured() {
            return Ok(None);
        }
        match self.read(self.key()).await? {
            Some(raw) => self.accept(self.key(), &raw).await.map(Some),
            None => self.migrate().await,
        }
    }

    /// Decodes and checks a stored value; deletes it if it cannot be used.
    async fn accept(&self, key: &str, raw: &SecretString) -> Result<SecretString, AuthError> {
        let record = Record::decode(raw.expose_secret()).and_then(|record| {
            record.check_owner(self.owner())?;
            Ok(record)
        });
        let reason = match record {
            Ok(record) if !record.is_expired(self.clock().now()) => return Ok(record.refresh_token),
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
        let token = self.accept(&legacy_key, &raw).await?;
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
        self.write(self.key(), Some(record.encode())).await?;
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

    /// Serialises refreshes of this key: across every `AuthClient` of the process, and
    /// across processes when `AuthConfig::store_lock_directory` is set.
    pub(crate) async fn refresh_guard(&self) -> Result<RefreshGuard, AuthError> {
        lock::acquire(
            self.key(),
            self.ctx.config.store_lock_directory.as_deref(),
            self.timeout(),
        )
        .await
        .map_err(|error| AuthError::Storage {
            reason: format!("could not take the refresh lock: {error}"),
            source: Some(ErrorSource::new(error)),
        })
    }

    async fn read(&self, key: &str) -> Result<Option<SecretString>, AuthError> {
        self.call(key, Call::Read, "load", |store, key| store.load(key))
            .await
            .map(Option::flatten)
    }

    /// `Some(value)` saves, `None` removes.
    async fn write(&self, key: &str, value: Option<SecretString>) -> Result<(), AuthError> {
        let what = if value.is_some() { "save" } else { "remove" };
        self.call(key, Call::Write, what, move |store, key| match &value {
            Some(value) => store.save(key, value),
            None => store.remove(key),
        })
        .await
        .map(drop)
    }

    /// Runs one store call off the async threads, in order, with a timeout.
    /// `Ok(None)`: a write skipped because a later one was already applied.
    async fn call<T: Send + 'static>(
        &self,
        key: &str,
        kind: Call,
        what: &'static str,
        body: impl FnOnce(&dyn TokenStore, &str) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<Option<T>, AuthError> {
        let Some(store) = self.store().cloned() else {
            return Ok(None);
        };
        let order = key_order(&store, key);
        let sequence = order.next.fetch_add(1, Ordering::SeqCst).saturating_add(1);
        let key = key.to_owned();
        let task = tokio::task::spawn_blocking(move || {
            let mut applied = order.applied.lock().unwrap_or_else(|p| p.into_inner());
            if kind == Call::Write && *applied > sequence {
                return Ok(Ok(None));
            }
            let result = catch_unwind(AssertUnwindSafe(|| body(store.as_ref(), &key)));
            if kind == Call::Write && matches!(result, Ok(Ok(_))) {
                *applied = sequence;
            }
            result.map(|result| result.map(Some))
        });
        // `AuthError::Storage` reads "the token store failed: {reason}".
        match tokio::time::timeout(self.timeout(), task).await {
            Ok(Ok(Ok(Ok(value)))) => Ok(value),
            Ok(Ok(Ok(Err(error)))) => Err(AuthError::Storage {
                reason: format!("could not {what}: {error}"),
                source: Some(ErrorSource::new(error)),
            }),
            Ok(Ok(Err(_panic))) => Err(AuthError::Storage {
                reason: format!("it panicked during {what}"),
                source: None,
            }),
            Ok(Err(_cancelled)) => Err(AuthError::Storage {
                reason: format!("its {what} was cancelled"),
                source: None,
            }),
            Err(elapsed) => Err(AuthError::Storage {
                reason: format!("it did not {what} within {:?}", self.timeout()),
                source: Some(ErrorSource::new(elapsed)),
            }),
        }
    }
}
