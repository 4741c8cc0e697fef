//! Compact JWS (RFC 7515 §7.1): the three parts, the protected header, and the
//! signature check against one public key. Refused outright: `alg: none` and the
//! symmetric `HS*` algorithms (a public client has no shared secret, and a server's
//! public key must never be usable as an HMAC key), and any `crit` header (RFC 7515
//! §4.1.11: we understand no extension, so we must reject it).

use super::jwk::Jwk;
use super::reject;
use crate::error::{JwtCheck, JwtError};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::fmt;

/// Longest compact JWS accepted; an ID token with many claims is a few KiB.
const MAX_JWS_LEN: usize = 16 * 1024;

/// base64url without padding (RFC 7515 §2), the only form JOSE uses.
pub(crate) fn b64url_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url without padding; `None` for padding or any other character.
pub(crate) fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).ok()
}

/// A JWS signature algorithm tokenkeeper verifies (RFC 7518 §3.1). `none` and the
/// `HS*` family are deliberately absent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JwsAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (the OpenID Connect default).
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
}

impl JwsAlgorithm {
    /// Every algorithm tokenkeeper verifies.
    pub const ALL: [JwsAlgorithm; 8] = [
        Self::RS256,
        Self::RS384,
        Self::RS512,
        Self::PS256,
        Self::PS384,
        Self::PS512,
        Self::ES256,
        Self::ES384,
    ];

    /// The `alg` header value, e.g. `"RS256"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
        }
    }

    /// The algorithm named `name` (case-sensitive, RFC 7515 §4.1.1), if supported.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.name() == name)
    }

    /// The hash for `at_hash` (OIDC Core §3.1.3.6): the one the algorithm signs with.
    pub(crate) fn digest(self) -> &'static ring::digest::Algorithm {
        match self {
            Self::RS256 | Self::PS256 | Self::ES256 => &ring::digest::SHA256,
            Self::RS384 | Self::PS384 | Self::ES384 => &ring::digest::SHA384,
            Self::RS512 | Self::PS512 => &ring::digest::SHA512,
        }
    }
}

impl fmt::Display for JwsAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A JWT whose signature has been verified against the issuer's key set. The claims
/// are not checked yet: that is the caller's job (`iss`, `aud`, `exp`, …).
#[derive(Clone, Debug)]
pub struct VerifiedJwt {
    /// The algorithm it was signed with.
    pub algorithm: JwsAlgorithm,
    /// The `kid` of the key that verified it, if the header named one.
    pub key_id: Option<String>,
    /// The `typ` header (`"logout+jwt"` for a back-channel logout token), if any.
    pub typ: Option<String>,
    /// The claims set (RFC 7519 §4).
    pub claims: Map<String, Value>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
    crit: Option<Value>,
}

/// A parsed but unverified compact JWS.
pub(crate) struct Compact<'a> {
    pub algorithm: JwsAlgorithm,
    pub kid: Option<String>,
    typ: Option<String>,
    signing_input: &'a str,
    signature: Vec<u8>,
    claims: Map<String, Value>,
}

impl<'a> Compact<'a> {
    /// Splits and decodes `token`; the header's `alg` must be one of `allowed`.
    pub(crate) fn parse(token: &'a str, allowed: &[JwsAlgorithm]) -> Result<Self, JwtError> {
        let malformed = |reason: &str| reject(JwtCheck::Malformed, reason);
        if token.len() > MAX_JWS_LEN {
            return Err(malformed("the token is longer than 16 KiB"));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("the token is not a compact JWS (three dot-separated parts)"));
        };
        let header_bytes = b64url_decode(header).ok_or_else(|| malformed("the header is not base64url"))?;
        let header: Header =
            serde_json::from_slice(&header_bytes).map_err(|_| malformed("the header is not a JSON object with alg"))?;
        let algorithm = match JwsAlgorithm::from_name(&header.alg) {
            Some(alg) if allowed.contains(&alg) => alg,
            _ => {
                let shown: String = header.alg.chars().filter(|c| c.is_ascii_graphic()).take(20).collect();
                return Err(reject(
                    JwtCheck::Algorithm,
                    format!("alg {shown:?} is not one the issuer announced and tokenkeeper verifies (none and HS* never are)"),
                ));
            }
        };
        if header.crit.is_some() {
            return Err(malformed("the header has crit extensions, which are not understood"));
        }
        let payload = b64url_decode(payload).ok_or_else(|| malformed("the payload is not base64url"))?;
        let claims: Map<String, Value> =
            serde_json::from_slice(&payload).map_err(|_| malformed("the payload is not a JSON object"))?;
        let signature = b64url_decode(signature).ok_or_else(|| malformed("the signature is not base64url"))?;
        // Exactly three parts, so the last dot ends `header.payload`.
        let signing_input = token.rsplit_once('.').map_or(token, |(input, _)| input);
        Ok(Self {
            algorithm,
            kid: header.kid,
            typ: header.typ,
            signing_input,
            signature,
            claims,
        })
    }

    /// Whether `key` verifies the signature.
    pub(crate) fn verified_by(&self, key: &Jwk) -> bool {
        key.verify(self.algorithm, self.signing_input.as_bytes(), &self.signature)
    }

    pub(crate) fn into_verified(self) -> VerifiedJwt {
        VerifiedJwt {
            algorithm: self.algorithm,
            key_id: self.kid,
            typ: self.typ,
            claims: self.claims,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(header: &str, payload: &str) -> String {
        format!(
            "{}.{}.{}",
            b64url_encode(header.as_bytes()),
            b64url_encode(payload.as_bytes()),
            b64url_encode(b"sig")
        )
    }

    #[test]
    fn none_and_symmetric_algorithms_are_refused_before_anything_else() {
        for alg in ["none", "HS256", "rs256", "EdDSA"] {
            let t = token(&format!(r#"{{"alg":"{alg}"}}"#), "{}");
            let err = Compact::parse(&t, &JwsAlgorithm::ALL).err().unwrap();
            assert_eq!(err.check, JwtCheck::Algorithm, "{alg}");
        }
        let t = token(r#"{"alg":"RS256"}"#, "{}");
        assert_eq!(
            Compact::parse(&t, &[JwsAlgorithm::ES256]).err().unwrap().check,
            JwtCheck::Algorithm
        );
    }

    #[test]
    fn the_signing_input_is_header_dot_payload() {
        let t = token(r#"{"alg":"ES256","kid":"k"}"#, r#"{"sub":"a"}"#);
        let parsed = Compact::parse(&t, &JwsAlgorithm::ALL).unwrap();
        assert_eq!(parsed.signing_input, &t[..t.rfind('.').unwrap()]);
        assert_eq!(parsed.kid.as_deref(), Some("k"));
    }

    #[test]
    fn malformed_tokens_are_typed() {
        for bad in [
            "a.b",
            "a.b.c.d",
            "!!.e30.c2ln",
            &token(r#"{"alg":"RS256","crit":["x"]}"#, "{}"),
            &token(r#"{"alg":"RS256"}"#, "[1]"),
        ] {
            assert_eq!(
                Compact::parse(bad, &JwsAlgorithm::ALL).err().unwrap().check,
                JwtCheck::Malformed,
                "{bad}"
            );
        }
    }
}
