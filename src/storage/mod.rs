//! Storage: where a session's refresh token survives an app restart.
//!
//! - [`TokenStore`], the trait an app implements (or picks: [`MemoryStore`],
//!   [`KeyringStore`]): an opaque secret value per opaque key;
//! - `record`: what the value holds, a versioned JSON record (refresh token and who
//!   it belongs to; never passwords, client secrets or access tokens);
//! - `key`: the store key, unambiguous per token endpoint, client and identity;
//! - `keyring`: [`KeyringStore`] on the operating system's secret store;
//! - `file`: [`FileStore`], files in a private directory, for headless machines;
//! - `seam`: [`RecordStore`] (records with revisions, compare-and-set) and
//!   [`RefreshLock`], what the session actually talks to, so a fleet store (Redis)
//!   can implement them natively;
//! - `shared`: [`SharedTokens`], access tokens shared by a server fleet's instances;
//! - `adapter`: [`TokenStoreRecords`], a plain [`TokenStore`] seen as a [`RecordStore`];
//! - `lock`: [`LocalRefreshLock`], the per-key refresh lock, in-process and across
//!   processes.
//!
//! How the session calls all this (off the async threads, with a timeout) lives in
//! `internal::persistence`.

mod adapter;
mod file;
pub(crate) mod key;
mod keyring;
pub(crate) mod lock;
pub(crate) mod record;
pub(crate) mod seam;
mod shared;

pub use adapter::TokenStoreRecords;
pub use file::FileStore;
pub use keyring::KeyringStore;
pub use lock::LocalRefreshLock;
pub use seam::{Deleted, Lease, LockError, RecordStore, RefreshLock, StoreFuture, Versioned, Written};
pub use shared::{SharedToken, SharedTokens};

use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::sync::Mutex;

/// Why a [`TokenStore`] operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// Persistence of refresh tokens, keyed by session.
///
/// The key is an opaque, stable string naming the token endpoint, client and identity
/// (it contains the client id and user name, never a secret). The value is opaque
/// too: a small JSON record holding the refresh token (a few KiB at most); store it
/// as it is, in the platform's secure storage ([`KeyringStore`], Android
/// Keystore-backed preferences, …).
///
/// The methods may block (a keychain, a disk): the session calls them on a blocking
/// thread with a timeout, never on the async runtime's threads, and a panic in them
/// becomes a storage error.
///
/// ```
/// use tokenkeeper::{MemoryStore, TokenStore};
/// use secrecy::{ExposeSecret, SecretString};
/// let store = MemoryStore::new();
/// store.save("key", &SecretString::from("refresh-token")).unwrap();
/// assert_eq!(store.load("key").unwrap().unwrap().expose_secret(), "refresh-token");
/// ```
pub trait TokenStore: Send + Sync {
    /// The value stored for `key`, if any.
    fn load(&self, key: &str) -> Result<Option<SecretString>, StoreError>;
    /// Stores (or replaces) the value for `key`.
    fn save(&self, key: &str, refresh_token: &SecretString) -> Result<(), StoreError>;
    /// Forgets the value for `key` (no error if there was none).
    fn remove(&self, key: &str) -> Result<(), StoreError>;

    /// Every key that has a value, if this store can enumerate them (the default:
    /// `Ok(None)`, it cannot). [`AuthClient::accounts`](crate::AuthClient::accounts)
    /// lists the signed-in users from it.
    fn keys(&self) -> Result<Option<Vec<String>>, StoreError> {
        Ok(None)
    }
}

/// A [`TokenStore`] in process memory: survives a session, not a restart.
#[derive(Debug, Default)]
pub struct MemoryStore {
    tokens: Mutex<HashMap<String, SecretString>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn tokens(&self) -> std::sync::MutexGuard<'_, HashMap<String, SecretString>> {
        self.tokens.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl TokenStore for MemoryStore {
    fn load(&self, key: &str) -> Result<Option<SecretString>, StoreError> {
        Ok(self.tokens().get(key).map(|t| SecretString::from(t.expose_secret())))
    }

    fn save(&self, key: &str, refresh_token: &SecretString) -> Result<(), StoreError> {
        self.tokens()
            .insert(key.to_owned(), SecretString::from(refresh_token.expose_secret()));
        Ok(())
    }

    fn remove(&self, key: &str) -> Result<(), StoreError> {
        self.tokens().remove(key);
        Ok(())
    }

    fn keys(&self) -> Result<Option<Vec<String>>, StoreError> {
        Ok(Some(self.tokens().keys().cloned().collect()))
    }
}
