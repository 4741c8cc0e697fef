//! [`TokenStore`] as a foreign trait: an app keeps refresh tokens in the platform's
//! secure storage (Android Keystore-backed storage, the iOS Keychain) by implementing
//! it in Kotlin or Swift; the core calls it through [`ForeignTokenStore`].

use super::error::StoreError;
use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::sync::Arc;

/// Where refresh tokens survive an app restart. Only refresh tokens are stored,
/// never passwords, client secrets or access tokens. The key is opaque and stable; it
/// names the token endpoint, the client and the identity, never a secret. The value
/// is opaque too (a small JSON record holding the refresh token, a few KiB at most):
/// keep it as it is, encrypted (Android: `KeystoreTokenStore`; iOS: the Keychain).
///
/// Methods are called from tokenkeeper's own threads, never the main thread; they
/// may block briefly (disk, Keychain). Throw `StoreException.Failed` on failure: the
/// operation then fails with `AuthException.Storage`.
#[uniffi::export(with_foreign)]
pub trait TokenStore: Send + Sync {
    /// The value stored for `key`, or `null`/`nil` if none.
    fn load(&self, key: String) -> Result<Option<String>, StoreError>;
    /// Stores (or replaces) the value for `key`; durably, before returning.
    fn save(&self, key: String, refresh_token: String) -> Result<(), StoreError>;
    /// Forgets the value for `key`; no error if there was none.
    fn remove(&self, key: String) -> Result<(), StoreError>;
}

/// The core's view of an app's store.
pub(crate) struct ForeignTokenStore(pub(crate) Arc<dyn TokenStore>);

impl fmt::Debug for ForeignTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ForeignTokenStore")
    }
}

fn core_error(error: StoreError) -> sdk::StoreError {
    sdk::StoreError(error.to_string())
}

impl sdk::TokenStore for ForeignTokenStore {
    fn load(&self, key: &str) -> Result<Option<SecretString>, sdk::StoreError> {
        self.0
            .load(key.to_owned())
            .map(|token| token.map(SecretString::from))
            .map_err(core_error)
    }

    fn save(&self, key: &str, refresh_token: &SecretString) -> Result<(), sdk::StoreError> {
        self.0
            .save(key.to_owned(), refresh_token.expose_secret().to_owned())
            .map_err(core_error)
    }

    fn remove(&self, key: &str) -> Result<(), sdk::StoreError> {
        self.0.remove(key.to_owned()).map_err(core_error)
    }
}
