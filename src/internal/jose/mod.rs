//! JOSE for OpenID Connect, on `ring` alone: compact JWS parsing and signature
//! verification (RFC 7515, algorithms from RFC 7518 §3), public keys from a JWK Set
//! (RFC 7517), and a JWKS fetcher/cache ([`JwksVerifier`]) that honours the HTTP
//! caching headers and refetches once, rate limited, when a token names an unknown
//! key (the provider rotated its keys).
//!
//! `ring` is already linked for TLS, PKCE and random numbers, so verification adds a
//! few KiB instead of a JOSE crate and its second big-number or crypto stack. What
//! lives here is generic JWT plumbing, reused by the ID token checks
//! (`internal::id_token`), by OIDC back-channel logout tokens and by DPoP proofs;
//! what an ID token must contain is not here.

mod jwk;
mod jwks;
mod jws;

pub use jwks::JwksVerifier;
pub(crate) use jws::{b64url_decode, b64url_encode};
pub use jws::{JwsAlgorithm, VerifiedJwt};

use crate::error::{JwtCheck, JwtError};

/// A [`JwtError`] naming `check`.
pub(crate) fn reject(check: JwtCheck, reason: impl Into<String>) -> JwtError {
    JwtError {
        check,
        reason: reason.into(),
    }
}
