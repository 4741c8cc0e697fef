//! DPoP (RFC 9449), the public part: the [`DpopKey`] seam a session signs its proofs
//! with, the desktop [`SoftwareDpopKey`] (ECDSA P-256 on `ring`), the key's public
//! [`PublicJwk`] and its RFC 7638 thumbprint, and the [`DpopMode`] an
//! [`AuthConfig`](crate::AuthConfig) chooses.
//!
//! The proofs themselves (the JWT, nonces, the clock) are built by the core in
//! `internal/dpop/`: a key only has to say what its public half is and sign bytes, so
//! a key that lives in the Android Keystore or the Secure Enclave signs where it lives
//! while the JWT is built once, in Rust.

use crate::internal::jose::b64url_encode;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use secrecy::{ExposeSecret, SecretBox};
use std::fmt;
use std::sync::Arc;

/// Whether a client sender-constrains its tokens with DPoP (RFC 9449).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DpopMode {
    /// Plain bearer tokens (RFC 6750). The default.
    #[default]
    Off,
    /// Send proofs unless the server's metadata (RFC 8414) lacks
    /// `dpop_signing_alg_values_supported`; a server that answers with a bearer token
    /// anyway (it ignored the proof, RFC 9449 §5) gets its token used as a bearer token.
    IfSupported,
    /// Send proofs, and refuse a bearer token: a token response with
    /// `token_type: Bearer` fails with [`AuthError::InvalidResponse`](crate::AuthError::InvalidResponse),
    /// never a silent downgrade.
    Required,
}

/// The public half of a P-256 key as a JSON Web Key (RFC 7517, RFC 7518 §6.2): what a
/// DPoP proof carries in its `jwk` header. Holds no private material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicJwk {
    x: String,
    y: String,
}

impl PublicJwk {
    /// A P-256 public key from its SEC 1 uncompressed encoding (`0x04 || x || y`, 65
    /// bytes): what `ring`, CryptoKit's `x963Representation` and the last 65 bytes of a
    /// Java `ECPublicKey`'s X.509 encoding hold. `None` for any other length or prefix.
    pub fn from_uncompressed_p256(point: &[u8]) -> Option<Self> {
        match point {
            [0x04, coordinates @ ..] if coordinates.len() == 64 => {
                let (x, y) = coordinates.split_at(32);
                Some(Self {
                    x: b64url_encode(x),
                    y: b64url_encode(y),
                })
            }
            _ => None,
        }
    }

    /// The key as a JSON object with its members in the RFC 7638 §3.2 order
    /// (`crv`, `kty`, `x`, `y`; no whitespace): the `jwk` header of a proof, and the
    /// input of its thumbprint.
    pub fn to_json(&self) -> String {
        format!(r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#, self.x, self.y)
    }

    /// The RFC 7638 JWK SHA-256 thumbprint, base64url: the `dpop_jkt` of an
    /// authorization request (RFC 9449 §10) and the `cnf.jkt` a server binds tokens to.
    pub fn thumbprint(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, self.to_json().as_bytes());
        b64url_encode(digest.as_ref())
    }
}

/// Why a [`DpopKey`] could not sign. Its message names the failure, never key material.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the DPoP key could not sign: {reason}")]
pub struct DpopKeyError {
    /// What failed (a keystore error, a key that was deleted, a user-presence refusal).
    pub reason: String,
}

impl DpopKeyError {
    /// An error with this reason.
    pub fn new(reason: impl Into<String>) -> Self {
        Self { reason: reason.into() }
    }
}

/// A key that signs DPoP proofs with ES256 (ECDSA on P-256 with SHA-256, RFC 7518
/// §3.4): the seam where platforms differ. The core builds each proof and asks the key
/// for two things only, so a key in the Android Keystore or the Secure Enclave never
/// leaves it.
///
/// Object-safe: sessions hold an `Arc<dyn DpopKey>`. Implementations must be cheap to
/// call from any thread; `sign` is called once per HTTP request.
pub trait DpopKey: Send + Sync + fmt::Debug {
    /// The public key, sent in every proof's `jwk` header.
    fn public_jwk(&self) -> PublicJwk;

    /// Signs `message` (the proof's `header.payload`) with ECDSA P-256 / SHA-256. The
    /// signature may be the 64-byte JWS form (`r || s`, RFC 7518 §3.4) or ASN.1 DER
    /// (what Java's `Signature` and CryptoKit's `derRepresentation` give); the core
    /// converts DER itself.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, DpopKeyError>;
}

/// Where a client's DPoP private keys live when they live outside the process: the
/// Android Keystore, the Secure Enclave, an HSM. Set with
/// [`AuthConfig::dpop_key_store`](crate::AuthConfig::dpop_key_store); without one,
/// each session gets a [`SoftwareDpopKey`] kept in its record.
///
/// The core names every key: one alias per sign-in (`tokenkeeper.dpop.`, 64 bits of
/// the store key's SHA-256, a dot and 128 random bits, base64url), recorded in the session record next to the key's
/// thumbprint, so a new sign-in never overwrites the key a live session's tokens are
/// bound to. The core deletes a key at logout (after the revocation its proof
/// signs), when a sign-in replaces it, and when a sign-in that made it ends without
/// a session. On restore, a key that is gone or is not the recorded one gives
/// [`AuthError::ReauthenticationRequired`](crate::AuthError::ReauthenticationRequired)
/// before any request.
///
/// Calls are synchronous and come from the client's own tasks; a hardware-backed
/// key (StrongBox) may take tens of milliseconds to sign.
pub trait DpopKeyStore: Send + Sync + fmt::Debug {
    /// A new P-256 key under `alias`, replacing any key there.
    fn create(&self, alias: &str) -> Result<Arc<dyn DpopKey>, DpopKeyError>;
    /// The key under `alias`, or `None` when there is none (deleted, or not restored
    /// with the app's data after a reinstall or a backup).
    fn load(&self, alias: &str) -> Result<Option<Arc<dyn DpopKey>>, DpopKeyError>;
    /// Deletes the key under `alias`; `Ok` when there was none.
    fn delete(&self, alias: &str) -> Result<(), DpopKeyError>;
}

/// A P-256 key in memory, on `ring`: the desktop and server key. Its PKCS#8 encoding
/// is a secret ([`pkcs8`](Self::pkcs8)), kept with the session record so the key lives
/// as long as the session; `Debug` shows only the thumbprint.
pub struct SoftwareDpopKey {
    pair: EcdsaKeyPair,
    pkcs8: SecretBox<[u8]>,
    jwk: PublicJwk,
}

impl SoftwareDpopKey {
    /// A new key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, DpopKeyError> {
        let rng = SystemRandom::new();
        let document = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| DpopKeyError::new("the system random number generator failed"))?;
        Self::from_pkcs8(document.as_ref())
    }

    /// The key whose PKCS#8 v1/v2 encoding (as [`pkcs8`](Self::pkcs8) returned it) is
    /// `pkcs8`; an error if it is not a P-256 key.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, DpopKeyError> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &SystemRandom::new())
            .map_err(|_| DpopKeyError::new("the stored key is not a valid P-256 PKCS#8 key"))?;
        let jwk = PublicJwk::from_uncompressed_p256(pair.public_key().as_ref())
            .ok_or_else(|| DpopKeyError::new("the key's public point is not uncompressed P-256"))?;
        Ok(Self {
            pair,
            pkcs8: SecretBox::new(pkcs8.into()),
            jwk,
        })
    }

    /// Security: the private key, PKCS#8 DER. Only for storing it with the session
    /// (a keychain record); never log or send it.
    pub fn pkcs8(&self) -> &SecretBox<[u8]> {
        &self.pkcs8
    }
}

impl DpopKey for SoftwareDpopKey {
    fn public_jwk(&self) -> PublicJwk {
        self.jwk.clone()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, DpopKeyError> {
        self.pair
            .sign(&SystemRandom::new(), message)
            .map(|signature| signature.as_ref().to_vec())
            .map_err(|_| DpopKeyError::new("ECDSA signing failed"))
    }
}

impl fmt::Debug for SoftwareDpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The private key is never formatted; its length is not secret.
        f.debug_struct("SoftwareDpopKey")
            .field("jkt", &self.jwk.thumbprint())
            .field(
                "pkcs8",
                &format_args!("[redacted; {} bytes]", self.pkcs8.expose_secret().len()),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7638_thumbprint_of_its_example_is_its_value() {
        // RFC 7638 §3.1 uses an RSA key; RFC 9449 §6.1's example is P-256. Its x/y and
        // the jkt the RFC gives for it:
        let jwk = PublicJwk {
            x: "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs".into(),
            y: "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA".into(),
        };
        assert_eq!(jwk.thumbprint(), "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I");
    }

    #[test]
    fn a_software_key_round_trips_through_pkcs8_and_keeps_its_thumbprint() {
        let key = SoftwareDpopKey::generate().unwrap();
        let again = SoftwareDpopKey::from_pkcs8(key.pkcs8().expose_secret()).unwrap();
        assert_eq!(key.public_jwk(), again.public_jwk());
        assert_eq!(key.sign(b"m").unwrap().len(), 64);
        assert!(SoftwareDpopKey::from_pkcs8(b"not a key").is_err());
    }

    #[test]
    fn debug_shows_the_thumbprint_and_never_the_private_key() {
        let key = SoftwareDpopKey::generate().unwrap();
        let shown = format!("{key:?}");
        let der = key.pkcs8().expose_secret();
        assert!(shown.contains(&key.public_jwk().thumbprint()), "{shown}");
        assert!(!shown.contains(&b64url_encode(der)), "{shown}");
        assert!(!shown.contains(&format!("{der:?}")), "{shown}");
    }
}
