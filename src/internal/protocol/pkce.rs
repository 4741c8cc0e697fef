//! Proof Key for Code Exchange (RFC 7636) and the other unguessable values of a
//! sign-in: `state` (RFC 6749 §10.12) and `nonce`. All come from the operating
//! system's CSPRNG (through `ring`), never from the jitter generator.

use crate::error::AuthError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretString};

/// A verifier (kept in memory until the code exchange) and its S256 challenge.
pub(crate) struct Pkce {
    pub verifier: SecretString,
    pub challenge: String,
}

impl Pkce {
    /// 32 random octets, base64url: a 43-character verifier (RFC 7636 §4.1).
    pub(crate) fn generate() -> Result<Self, AuthError> {
        let verifier = SecretString::from(random_string()?);
        let challenge = challenge_for(verifier.expose_secret());
        Ok(Self { verifier, challenge })
    }
}

/// `BASE64URL(SHA256(ASCII(verifier)))` (RFC 7636 §4.2).
pub(crate) fn challenge_for(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()))
}

/// 256 random bits, base64url without padding (43 characters).
pub(crate) fn random_string() -> Result<String, AuthError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| AuthError::config("the operating system's random number generator is unavailable"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_matches_rfc7636_appendix_b() {
        assert_eq!(
            challenge_for("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn verifiers_are_well_formed_and_distinct() {
        let a = Pkce::generate().unwrap();
        let b = Pkce::generate().unwrap();
        let v = a.verifier.expose_secret();
        assert_eq!(v.len(), 43);
        assert!(v.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_ne!(v, b.verifier.expose_secret());
        assert_eq!(a.challenge, challenge_for(v));
    }
}
