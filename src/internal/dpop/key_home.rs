//! Where a session's DPoP key lives, and the one place that decides when a key in
//! the app's [`DpopKeyStore`] is made, owned and deleted. RFC 9449 binds tokens to a
//! key, so the key must live exactly as long as its session: made when a sign-in (or
//! the session's first proof) needs it, kept across restarts, deleted at logout.
//!
//! A [`SoftwareDpopKey`] needs none of this: its PKCS#8 is a secret in the session
//! record and goes with it. A platform key stays in the platform; the record holds
//! its alias and thumbprint, and this module deletes it when nothing can use it.

use super::proof::Binding;
use crate::dpop::{DpopKeyStore, SoftwareDpopKey};
use crate::error::{AuthError, ErrorSource};
use crate::internal::context::ClientContext;
use crate::internal::jose::{b64url_decode, b64url_encode};
use ring::rand::SecureRandom as _;
use secrecy::{ExposeSecret, SecretString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What every alias starts with, so an app can tell tokenkeeper's keys from its own.
pub(crate) const ALIAS_PREFIX: &str = "tokenkeeper.dpop.";

/// Where a binding's key lives, as the session record stores it.
pub(crate) enum KeyHome {
    /// A software key: its PKCS#8, base64url, stored as a secret in the record.
    Software(SecretString),
    /// A key in the app's [`DpopKeyStore`]: the record stores its alias.
    Platform(PlatformKey),
    /// Stored nowhere: proofs built in unit tests.
    #[cfg(test)]
    Unstored,
}

/// A key in the app's key store, and whether something owns it yet.
pub(crate) struct PlatformKey {
    pub alias: String,
    keys: Arc<dyn DpopKeyStore>,
    /// Set once a stored record (a session's, a queued revocation's) or a saved
    /// sign-in names the key: then it outlives the process, for the next start, until
    /// [`Binding::retire`]. A key nothing names is deleted with its binding: a sign-in
    /// dropped before it ends in a session (the user closed the browser), a session
    /// that is never stored (no store, or client credentials with no refresh token).
    owned: AtomicBool,
}

impl PlatformKey {
    fn delete(&self) {
        self.owned.store(true, Ordering::Relaxed);
        match self.keys.delete(&self.alias) {
            Ok(()) => tracing::debug!(alias = %self.alias, "deleted a DPoP key"),
            Err(error) => tracing::warn!(%error, alias = %self.alias, "could not delete a DPoP key"),
        }
    }
}

impl Drop for PlatformKey {
    fn drop(&mut self) {
        if !*self.owned.get_mut() {
            self.delete();
        }
    }
}

/// Why a recorded key cannot sign for its tokens.
pub(crate) enum KeyProblem {
    /// Never again: the tokens need the user (the reason says why, for the
    /// `ReauthenticationRequired` it becomes).
    Unusable(&'static str),
    /// The key store failed (locked, busy): the record stays, the caller may retry.
    Failed(AuthError),
}

fn store_error(error: crate::dpop::DpopKeyError) -> AuthError {
    AuthError::Storage {
        reason: error.to_string(),
        source: Some(ErrorSource::new(error)),
    }
}

impl Binding {
    /// A binding to a new key, for a session or a sign-in that starts one: in the
    /// client's key store when it has one, else a software key (ring P-256). Owned by
    /// nobody yet: see [`adopt`](Self::adopt).
    pub(crate) fn generate(ctx: &ClientContext, store_key: &str) -> Result<Arc<Self>, AuthError> {
        if let Some(keys) = &ctx.config.dpop_keys {
            let alias = new_alias(store_key)?;
            let key = keys.create(&alias).map_err(store_error)?;
            let home = KeyHome::Platform(PlatformKey {
                alias,
                keys: Arc::clone(keys),
                owned: AtomicBool::new(false),
            });
            return Ok(Arc::new(Self::new(key, home)));
        }
        let key = SoftwareDpopKey::generate().map_err(store_error)?;
        let stored = SecretString::from(b64url_encode(key.pkcs8().expose_secret()));
        Ok(Arc::new(Self::new(Arc::new(key), KeyHome::Software(stored))))
    }

    /// The key a session record (or a saved sign-in) names, checked against the
    /// thumbprint its tokens are bound to, before any request: a software key from
    /// `software`, a platform key from the client's key store under `alias`.
    pub(crate) fn from_record(
        ctx: &ClientContext,
        jkt: &str,
        software: Option<&SecretString>,
        alias: Option<&str>,
    ) -> Result<Arc<Self>, KeyProblem> {
        let binding = match (software, alias) {
            (Some(stored), _) => {
                let pkcs8 = b64url_decode(stored.expose_secret())
                    .map(zeroize::Zeroizing::new)
                    .ok_or(KeyProblem::Unusable("the stored DPoP key is not base64url"))?;
                let key = SoftwareDpopKey::from_pkcs8(&pkcs8)
                    .map_err(|_| KeyProblem::Unusable("the stored DPoP key is not a P-256 key"))?;
                let home = KeyHome::Software(SecretString::from(stored.expose_secret()));
                Self::new(Arc::new(key), home)
            }
            (None, Some(alias)) => {
                let keys = ctx.config.dpop_keys.as_ref().ok_or(KeyProblem::Unusable(
                    "the stored session's DPoP key is in a platform key store this client was not given",
                ))?;
                let key = keys
                    .load(alias)
                    .map_err(|error| KeyProblem::Failed(store_error(error)))?
                    .ok_or(KeyProblem::Unusable(
                        "the DPoP key the stored session is bound to is gone from the platform key store \
                         (deleted, or not restored with the app's data)",
                    ))?;
                let home = KeyHome::Platform(PlatformKey {
                    alias: alias.to_owned(),
                    keys: Arc::clone(keys),
                    owned: AtomicBool::new(true),
                });
                Self::new(key, home)
            }
            (None, None) => {
                return Err(KeyProblem::Unusable(
                    "the DPoP key the stored session is bound to is missing",
                ))
            }
        };
        if binding.jkt != jkt {
            // Our alias holds another key: whoever made it, it cannot sign for these
            // tokens. It is left where it is; the record that named it goes.
            if let KeyHome::Platform(platform) = &binding.home {
                platform.owned.store(true, Ordering::Relaxed);
            }
            return Err(KeyProblem::Unusable(
                "the stored DPoP key is not the key its tokens are bound to (thumbprint mismatch: recreated?)",
            ));
        }
        Ok(Arc::new(binding))
    }

    /// A stored record or a saved sign-in names the key now: it outlives this process,
    /// and only [`retire`](Self::retire) deletes it.
    pub(crate) fn adopt(&self) {
        if let KeyHome::Platform(platform) = &self.home {
            platform.owned.store(true, Ordering::Relaxed);
        }
    }

    /// No stored record names the key any more (its refresh token was refused and
    /// its record removed), but the session may still sign with it (a password
    /// login): deleted with the binding unless a record names it again first.
    pub(crate) fn disown(&self) {
        if let KeyHome::Platform(platform) = &self.home {
            platform.owned.store(false, Ordering::Relaxed);
        }
    }

    /// Nothing will sign with this key again (a logout after its revocations, a
    /// sign-in that replaced it): a platform key is deleted. A software key goes with
    /// its record.
    pub(crate) fn retire(&self) {
        if let KeyHome::Platform(platform) = &self.home {
            platform.delete();
        }
    }

    /// The software key's PKCS#8 (base64url), for the record.
    pub(crate) fn stored_software(&self) -> Option<&SecretString> {
        match &self.home {
            KeyHome::Software(stored) => Some(stored),
            _ => None,
        }
    }

    /// The platform key's alias, for the record.
    pub(crate) fn alias(&self) -> Option<&str> {
        match &self.home {
            KeyHome::Platform(platform) => Some(&platform.alias),
            _ => None,
        }
    }
}

/// `tokenkeeper.dpop.`, 64 bits of the store key's SHA-256 (so an app can tell which
/// identity a key belongs to without the store key, which names the user, in its
/// keystore), and 128 bits from the CSPRNG: a new alias per key, so a new sign-in never
/// replaces the key a live session (or a sign-in still open on another screen) is
/// bound to. 51 characters, base64url and dots: valid in every keystore.
fn new_alias(store_key: &str) -> Result<String, AuthError> {
    let mut bits = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bits)
        .map_err(|_| AuthError::config("the operating system's random number generator is unavailable"))?;
    let identity = ring::digest::digest(&ring::digest::SHA256, store_key.as_bytes());
    let identity = identity.as_ref().get(..8).unwrap_or_default();
    Ok(format!(
        "{ALIAS_PREFIX}{}.{}",
        b64url_encode(identity),
        b64url_encode(&bits)
    ))
}
