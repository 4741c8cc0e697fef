//! [`KeyringStore`]: a [`TokenStore`] on the operating system's own secret store,
//! through `keyring-core` and one platform store crate per target, each behind a
//! cargo feature that is on by default (a feature whose target is not the one being
//! built compiles nothing):
//!
//! | target | store | feature |
//! |---|---|---|
//! | macOS | login keychain | `apple-keychain` |
//! | iOS | data-protection keychain (after first unlock, this device only) | `apple-keychain` |
//! | Windows | Credential Manager (local, not roaming) | `windows-credential-manager` |
//! | Linux, FreeBSD | Secret Service over D-Bus (zbus, pure-Rust crypto, no libdbus) | `secret-service` |
//! | Android, others | none: [`KeyringStore::new`] fails; the app supplies a store | |
//!
//! Every call blocks (D-Bus round trips, keychain prompts). The session never calls
//! a store on the async runtime's threads (see `internal::persistence`).

use super::{StoreError, TokenStore};
use keyring_core::{CredentialStore, Entry, Error};
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// A [`TokenStore`] on the operating system's secret store: the Keychain on macOS and
/// iOS, the Credential Manager on Windows, the Secret Service (GNOME Keyring, KWallet)
/// on Linux. Each value is one credential with `service` = the name the app gave and
/// `user` = the session's store key.
///
/// ```no_run
/// use std::sync::Arc;
/// use tokenkeeper::{AuthClient, AuthConfig, KeyringStore};
/// # fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = KeyringStore::new("com.example.myapp")?;
/// let client = AuthClient::builder(AuthConfig::new("https://as.example.com/token", "my-app"))
///     .store(Arc::new(store))
///     .build()?;
/// # let _ = client; Ok(()) }
/// ```
#[derive(Clone)]
pub struct KeyringStore {
    store: Arc<CredentialStore>,
    service: String,
}

impl fmt::Debug for KeyringStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyringStore")
            .field("vendor", &self.store.vendor())
            .field("service", &self.service)
            .finish()
    }
}

impl KeyringStore {
    /// The platform's secret store, with credentials filed under `service` (use the
    /// app's bundle id or name). Fails when this target has no such store compiled in
    /// (Android, or the platform's feature turned off) or when it cannot be reached
    /// (on Linux: no D-Bus session bus or no Secret Service running). May block
    /// briefly: call it while setting up, not on an async runtime's hot path.
    pub fn new(service: impl Into<String>) -> Result<Self, StoreError> {
        let store = platform_store()?;
        Ok(Self::with_store(store, service))
    }

    /// Any `keyring-core` credential store (another platform crate, its mock store
    /// in tests), with credentials filed under `service`.
    pub fn with_store(store: Arc<CredentialStore>, service: impl Into<String>) -> Self {
        Self {
            store,
            service: service.into(),
        }
    }

    fn entry(&self, key: &str) -> Result<Entry, StoreError> {
        self.store
            .build(&self.service, key, modifiers().as_ref())
            .map_err(|e| store_error("open", &e))
    }
}

/// Windows: "Local" keeps the credential on this machine; the crate's default,
/// "Enterprise", roams it to every machine of a domain user, and a refresh token
/// must not follow the user around.
#[cfg(all(windows, feature = "windows-credential-manager"))]
fn modifiers() -> Option<HashMap<&'static str, &'static str>> {
    Some(HashMap::from([("persistence", "Local")]))
}

/// iOS: readable after the first unlock since boot, so a background refresh works
/// while the phone is locked; "this device only", so a backup never carries the
/// refresh token to another phone. (The crate's default, "when unlocked", would fail
/// every background refresh of a locked phone.)
#[cfg(all(target_os = "ios", feature = "apple-keychain"))]
fn modifiers() -> Option<HashMap<&'static str, &'static str>> {
    Some(HashMap::from([("access-policy", "AfterFirstUnlockThisDeviceOnly")]))
}

#[cfg(not(any(
    all(windows, feature = "windows-credential-manager"),
    all(target_os = "ios", feature = "apple-keychain")
)))]
fn modifiers() -> Option<HashMap<&'static str, &'static str>> {
    None
}

#[cfg(all(target_os = "macos", feature = "apple-keychain"))]
fn platform_store() -> Result<Arc<CredentialStore>, StoreError> {
    let store: Arc<CredentialStore> =
        apple_native_keyring_store::keychain::Store::new().map_err(|e| store_error("open the keychain", &e))?;
    Ok(store)
}

#[cfg(all(target_os = "ios", feature = "apple-keychain"))]
fn platform_store() -> Result<Arc<CredentialStore>, StoreError> {
    let store: Arc<CredentialStore> =
        apple_native_keyring_store::protected::Store::new().map_err(|e| store_error("open the keychain", &e))?;
    Ok(store)
}

#[cfg(all(windows, feature = "windows-credential-manager"))]
fn platform_store() -> Result<Arc<CredentialStore>, StoreError> {
    let store: Arc<CredentialStore> =
        windows_native_keyring_store::Store::new().map_err(|e| store_error("open the Credential Manager", &e))?;
    Ok(store)
}

#[cfg(all(any(target_os = "linux", target_os = "freebsd"), feature = "secret-service"))]
fn platform_store() -> Result<Arc<CredentialStore>, StoreError> {
    let store: Arc<CredentialStore> = zbus_secret_service_keyring_store::Store::new()
        .map_err(|e| store_error("connect to the Secret Service", &e))?;
    Ok(store)
}

#[cfg(not(any(
    all(any(target_os = "macos", target_os = "ios"), feature = "apple-keychain"),
    all(windows, feature = "windows-credential-manager"),
    all(any(target_os = "linux", target_os = "freebsd"), feature = "secret-service"),
)))]
fn platform_store() -> Result<Arc<CredentialStore>, StoreError> {
    Err(StoreError(
        "no operating-system secret store is compiled in for this target; supply a TokenStore".into(),
    ))
}

/// keyring-core's `Display` can print the stored bytes (`BadDataFormat`) or other
/// entries (`Ambiguous`); only the kind of failure is kept.
fn store_error(action: &str, error: &Error) -> StoreError {
    let what = match error {
        Error::PlatformFailure(e) => format!("platform failure: {e}"),
        Error::NoStorageAccess(e) => format!("no access (locked or denied): {e}"),
        Error::NoEntry => "no such entry".into(),
        Error::BadEncoding(_) | Error::BadDataFormat(..) => "the stored data is malformed".into(),
        Error::BadStoreFormat(reason) => format!("the store is malformed: {reason}"),
        Error::TooLong(name, limit) => format!("{name} is longer than the platform's limit of {limit}"),
        Error::Invalid(name, reason) => format!("{name} is invalid: {reason}"),
        Error::Ambiguous(entries) => format!("{} credentials match this key", entries.len()),
        Error::NoDefaultStore => "no default store".into(),
        Error::NotSupportedByStore(reason) => format!("not supported: {reason}"),
        _ => "unknown failure".into(),
    };
    StoreError(format!("keychain: could not {action}: {what}"))
}

impl TokenStore for KeyringStore {
    fn load(&self, key: &str) -> Result<Option<SecretString>, StoreError> {
        match self.entry(key)?.get_secret() {
            // Bytes that are not UTF-8 are not ours: handed on as they are (lossily),
            // so the caller sees a corrupt record and deletes it.
            Ok(bytes) => Ok(Some(SecretString::from(String::from_utf8_lossy(&bytes).into_owned()))),
            Err(Error::NoEntry) => Ok(None),
            Err(e) => Err(store_error("read", &e)),
        }
    }

    fn save(&self, key: &str, refresh_token: &SecretString) -> Result<(), StoreError> {
        // Bytes, not a "password": Windows stores passwords as UTF-16, halving the
        // 2,560-byte limit of a credential.
        self.entry(key)?
            .set_secret(refresh_token.expose_secret().as_bytes())
            .map_err(|e| store_error("write", &e))
    }

    fn remove(&self, key: &str) -> Result<(), StoreError> {
        match self.entry(key)?.delete_credential() {
            Ok(()) | Err(Error::NoEntry) => Ok(()),
            Err(e) => Err(store_error("delete", &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// keyring-core's mock store: the adapter's own logic (entry naming, NoEntry as
    /// None, delete of a missing entry) without a platform. The real platform store
    /// is exercised in tests/keyring_store.rs.
    fn mock() -> KeyringStore {
        let store: Arc<CredentialStore> = keyring_core::mock::Store::new().unwrap();
        KeyringStore::with_store(store, "tokenkeeper-test")
    }

    #[test]
    fn a_missing_entry_loads_as_none_and_deletes_cleanly() {
        let store = mock();
        // The mock store keeps no state across entries it builds, so each call is
        // checked for its own contract: a missing entry is None, deleting it is Ok.
        assert!(store.load("k").unwrap().is_none());
        store.remove("k").unwrap();
        assert!(format!("{store:?}").contains("tokenkeeper-test"));
    }

    #[test]
    fn errors_never_carry_stored_bytes() {
        let error = store_error("read", &Error::BadDataFormat(b"secret-rt".to_vec(), "bad".into()));
        assert!(!error.to_string().contains("secret-rt"));
    }
}
