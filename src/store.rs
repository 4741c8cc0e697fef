//! [`TokenStore`]: where refresh tokens survive an app restart. Only refresh tokens
//! are stored, never passwords, client secrets or access tokens.

use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::sync::Mutex;

/// Why a [`TokenStore`] operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// Persistence of refresh tokens, keyed by session.
///
/// The key is an opaque, stable string naming the client and identity (it contains
/// the client id and user name, never a secret). Implement this for the platform's
/// secure storage (Keychain, Android Keystore-backed preferences, …).
///
/// ```
/// use tokenkeeper::{MemoryStore, TokenStore};
/// use secrecy::{ExposeSecret, SecretString};
/// let store = MemoryStore::new();
/// store.save("key", &SecretString::from("refresh-token")).unwrap();
/// assert_eq!(store.load("key").unwrap().unwrap().expose_secret(), "refresh-token");
/// ```
pub trait TokenStore: Send + Sync {
    /// The stored refresh token for `key`, if any.
    fn load(&self, key: &str) -> Result<Option<SecretString>, StoreError>;
    /// Stores (or replaces) the refresh token for `key`.
    fn save(&self, key: &str, refresh_token: &SecretString) -> Result<(), StoreError>;
    /// Forgets the refresh token for `key` (no error if there was none).
    fn remove(&self, key: &str) -> Result<(), StoreError>;
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
}
