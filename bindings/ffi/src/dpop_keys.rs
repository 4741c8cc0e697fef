//! DPoP keys that live in the platform (RFC 9449): the Android Keystore (StrongBox
//! when the device has one) and the Secure Enclave. The app, or the Kotlin and Swift
//! packages, implement [`PlatformDpopKeys`]; the core names each key, builds every
//! proof and asks the key only for its public half and a signature, so the private key
//! never leaves the hardware. [`ForeignDpopKeys`] is the core's `DpopKeyStore` view of
//! it.

use std::fmt;
use std::sync::Arc;

/// What a [`PlatformDpopKeys`] throws: `DpopKeyException.Failed` in Kotlin,
/// `DpopKeyError.Failed` in Swift. The reason is shown in `AuthException.Storage`;
/// keep key material out of it.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum DpopKeyError {
    /// The keystore failed (locked, busy, a hardware error, a refused user presence).
    #[error("{reason}")]
    Failed {
        /// What failed.
        reason: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for DpopKeyError {
    fn from(error: uniffi::UnexpectedUniFFICallbackError) -> Self {
        Self::Failed {
            reason: format!("the app's PlatformDpopKeys threw: {}", error.reason),
        }
    }
}

/// Where the client's DPoP private keys live on the platform: one non-exportable P-256
/// key per session, under an alias the core chooses (`tokenkeeper.dpop.`, 11 base64url
/// characters of the store key's SHA-256, a dot, 22 random ones) and records in the
/// session record with the key's thumbprint. The core creates a key at sign-in, looks
/// it up after a restart (a key that is gone or another key needs the user, before any
/// request), and deletes it at logout and when a sign-in that made it is replaced or
/// abandoned.
///
/// Called from tokenkeeper's own threads, never the main thread; `sign` once per
/// request. Throw `DpopKeyException.Failed` / `DpopKeyError.Failed` on failure.
#[uniffi::export(with_foreign)]
pub trait PlatformDpopKeys: Send + Sync {
    /// Creates a new P-256 key under `alias` (replacing any key there) and returns its
    /// public key, SEC 1 uncompressed: 65 bytes, `0x04 || x || y`.
    fn create(&self, alias: String) -> Result<Vec<u8>, DpopKeyError>;
    /// The public key under `alias` in the same encoding, or `null`/`nil` when there is
    /// no key there (deleted, or not restored with the app's data).
    fn public_key(&self, alias: String) -> Result<Option<Vec<u8>>, DpopKeyError>;
    /// ECDSA P-256 with SHA-256 over `message` with the key under `alias`: DER (what
    /// Java's `SHA256withECDSA` and CryptoKit's `derRepresentation` give) or the raw
    /// 64-byte `r || s`.
    fn sign(&self, alias: String, message: Vec<u8>) -> Result<Vec<u8>, DpopKeyError>;
    /// Deletes the key under `alias`; no error when there is none.
    fn delete(&self, alias: String) -> Result<(), DpopKeyError>;
}

/// The core's view of an app's key store.
pub(crate) struct ForeignDpopKeys(pub(crate) Arc<dyn PlatformDpopKeys>);

impl fmt::Debug for ForeignDpopKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ForeignDpopKeys")
    }
}

/// One key of the app's store: its alias and the public half it reported.
struct ForeignKey {
    keys: Arc<dyn PlatformDpopKeys>,
    alias: String,
    jwk: sdk::PublicJwk,
}

impl fmt::Debug for ForeignKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForeignKey")
            .field("alias", &self.alias)
            .finish_non_exhaustive()
    }
}

fn core_error(error: DpopKeyError) -> sdk::DpopKeyError {
    sdk::DpopKeyError::new(error.to_string())
}

impl ForeignDpopKeys {
    fn key(&self, alias: &str, point: &[u8]) -> Result<Arc<dyn sdk::DpopKey>, sdk::DpopKeyError> {
        let jwk = sdk::PublicJwk::from_uncompressed_p256(point).ok_or_else(|| {
            sdk::DpopKeyError::new("the platform key's public key is not a 65-byte uncompressed P-256 point")
        })?;
        Ok(Arc::new(ForeignKey {
            keys: Arc::clone(&self.0),
            alias: alias.to_owned(),
            jwk,
        }))
    }
}

impl sdk::DpopKeyStore for ForeignDpopKeys {
    fn create(&self, alias: &str) -> Result<Arc<dyn sdk::DpopKey>, sdk::DpopKeyError> {
        let point = self.0.create(alias.to_owned()).map_err(core_error)?;
        self.key(alias, &point)
    }

    fn load(&self, alias: &str) -> Result<Option<Arc<dyn sdk::DpopKey>>, sdk::DpopKeyError> {
        match self.0.public_key(alias.to_owned()).map_err(core_error)? {
            Some(point) => self.key(alias, &point).map(Some),
            None => Ok(None),
        }
    }

    fn delete(&self, alias: &str) -> Result<(), sdk::DpopKeyError> {
        self.0.delete(alias.to_owned()).map_err(core_error)
    }
}

impl sdk::DpopKey for ForeignKey {
    fn public_jwk(&self) -> sdk::PublicJwk {
        self.jwk.clone()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, sdk::DpopKeyError> {
        // The message is a proof's header and claims: public key, method, URL, time,
        // nonce and the access token's hash (`ath`), never the token itself.
        self.keys.sign(self.alias.clone(), message.to_vec()).map_err(core_error)
    }
}
