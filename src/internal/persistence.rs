//! The session's only way to the [`TokenStore`]: load, save and remove one session's
//! refresh token, and serialise refreshes of one store key.
//!
//! Every store call runs off the async threads (`spawn_blocking`) under a timeout, and
//! a panicking or hanging store becomes [`AuthError::Storage`]: a keychain hiccup can
//! slow a save, never stall token delivery or crash the app.

use crate::error::{AuthError, ErrorSource};
use crate::identity::{Identity, Subject};
use crate::internal::context::ClientContext;
use crate::store::TokenStore;
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, SystemTime};

/// Longest a single store call may take before the session stops waiting for it.
const STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// What is saved next to the refresh token (never a password, secret or access token).
pub(crate) struct SaveMeta<'a> {
    #[allow(dead_code)]
    pub subject: &'a Subject,
    #[allow(dead_code)]
    pub scope: Option<&'a str>,
    #[allow(dead_code)]
    pub refresh_expires_at: Option<SystemTime>,
}

/// One session's view of the store.
pub(crate) struct Persistence {
    store: Option<Arc<dyn TokenStore>>,
    key: String,
}

/// Held for the duration of one refresh (see [`Persistence::refresh_guard`]).
pub(crate) struct RefreshGuard {
    _in_process: tokio::sync::OwnedMutexGuard<()>,
}

impl Persistence {
    pub(crate) fn new(ctx: &ClientContext, identity: &Identity) -> Self {
        Self {
            store: ctx.store.clone(),
            key: identity.store_key(&ctx.config.client_id),
        }
    }

    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    pub(crate) fn is_configured(&self) -> bool {
        self.store.is_some()
    }

    /// The stored refresh token, if any.
    pub(crate) async fn load(&self) -> Result<Option<SecretString>, AuthError> {
        self.call("load", |store, key| store.load(key))
            .await
            .map(Option::flatten)
    }

    pub(crate) async fn save(&self, refresh_token: &SecretString, _meta: &SaveMeta<'_>) -> Result<(), AuthError> {
        let _writing = key_lock("write", &self.key).lock_owned().await;
        let value = SecretString::from(refresh_token.expose_secret());
        self.call("save", move |store, key| store.save(key, &value))
            .await
            .map(drop)
    }

    pub(crate) async fn remove(&self) -> Result<(), AuthError> {
        let _writing = key_lock("write", &self.key).lock_owned().await;
        self.call("remove", |store, key| store.remove(key)).await.map(drop)
    }

    /// Removes the stored entry only if it still holds `ours`: a session that logs out
    /// must not delete what a newer session of the same identity saved meanwhile.
    pub(crate) async fn remove_if_holds(&self, ours: Option<&SecretString>) -> Result<(), AuthError> {
        let Some(ours) = ours else {
            return Ok(());
        };
        let _writing = key_lock("write", &self.key).lock_owned().await;
        let expected = SecretString::from(ours.expose_secret());
        self.call("remove", move |store, key| match store.load(key)? {
            Some(stored) if stored.expose_secret() == expected.expose_secret() => store.remove(key),
            _ => Ok(()),
        })
        .await
        .map(drop)
    }

    /// Serialises refreshes of this store key across every `AuthClient` of the
    /// process, so two clients sharing a store never spend one rotating refresh token
    /// twice. The caller re-reads the store once it holds the guard.
    pub(crate) async fn refresh_guard(&self) -> Result<RefreshGuard, AuthError> {
        let lock = key_lock("refresh", &self.key);
        Ok(RefreshGuard {
            _in_process: lock.lock_owned().await,
        })
    }

    /// Runs one store call on the blocking pool. `Ok(None)`: no store configured.
    async fn call<T, F>(&self, what: &'static str, op: F) -> Result<Option<T>, AuthError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn TokenStore, &str) -> Result<T, crate::store::StoreError> + Send + 'static,
    {
        let Some(store) = self.store.clone() else {
            return Ok(None);
        };
        let key = self.key.clone();
        let task = tokio::task::spawn_blocking(move || op(store.as_ref(), &key));
        match tokio::time::timeout(STORE_TIMEOUT, task).await {
            Ok(Ok(Ok(value))) => Ok(Some(value)),
            // `AuthError::Storage` reads "the token store failed: {reason}".
            Ok(Ok(Err(error))) => Err(AuthError::Storage {
                reason: format!("could not {what}: {error}"),
                source: Some(ErrorSource::new(error)),
            }),
            Ok(Err(_panicked_or_cancelled)) => Err(AuthError::Storage {
                reason: format!("it panicked during {what}"),
                source: None,
            }),
            Err(elapsed) => Err(AuthError::Storage {
                reason: format!("it did not {what} within {} s", STORE_TIMEOUT.as_secs()),
                source: Some(ErrorSource::new(elapsed)),
            }),
        }
    }
}

/// One async mutex per purpose and store key, shared by every client in the process;
/// entries die with their last holder.
fn key_lock(purpose: &str, key: &str) -> Arc<tokio::sync::Mutex<()>> {
    let key = format!("{purpose}\n{key}");
    let key = key.as_str();
    static LOCKS: OnceLock<Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>> = OnceLock::new();
    let mut locks = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(lock) = locks.get(key).and_then(Weak::upgrade) {
        return lock;
    }
    locks.retain(|_, lock| lock.strong_count() > 0);
    let lock = Arc::new(tokio::sync::Mutex::new(()));
    locks.insert(key.to_owned(), Arc::downgrade(&lock));
    lock
}
