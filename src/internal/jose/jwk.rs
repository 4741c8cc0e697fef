//! Public keys from a JWK Set (RFC 7517 §5, RFC 7518 §6): RSA (`n`, `e`) and EC
//! P-256/P-384 (`x`, `y`). Keys for encryption (`use: enc`), of another type or
//! curve, or malformed are skipped, not fatal: a provider may publish keys we never
//! need, and one bad entry must not break sign-in with the good ones.

use super::jws::{b64url_decode, JwsAlgorithm};
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Deserialize;

/// More keys than this in one set is hostile or broken; the rest are ignored.
const MAX_KEYS: usize = 64;

/// One usable verification key.
pub(crate) struct Jwk {
    pub kid: Option<String>,
    /// The `alg` the set pins this key to, if any (RFC 7517 §4.4).
    alg: Option<String>,
    key: PublicKey,
}

enum PublicKey {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// The uncompressed point `04 || x || y`.
    P256(Vec<u8>),
    P384(Vec<u8>),
}

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

/// The verification keys in a JWK Set document; `None` if it is not one.
pub(crate) fn parse_set(body: &[u8]) -> Option<Vec<Jwk>> {
    let set: RawSet = serde_json::from_slice(body).ok()?;
    Some(
        set.keys
            .into_iter()
            .take(MAX_KEYS)
            .filter_map(|raw| serde_json::from_value::<RawJwk>(raw).ok())
            .filter_map(Jwk::from_raw)
            .collect(),
    )
}

impl Jwk {
    fn from_raw(raw: RawJwk) -> Option<Self> {
        if raw.use_.as_deref().is_some_and(|u| u != "sig") {
            return None;
        }
        let key = match (raw.kty.as_str(), raw.crv.as_deref()) {
            ("RSA", _) => {
                let n = strip_zeros(b64url_decode(raw.n.as_deref()?)?);
                let e = strip_zeros(b64url_decode(raw.e.as_deref()?)?);
                PublicKey::Rsa { n, e }
            }
            ("EC", Some(curve @ ("P-256" | "P-384"))) => {
                let size = if curve == "P-256" { 32 } else { 48 };
                let (x, y) = (b64url_decode(raw.x.as_deref()?)?, b64url_decode(raw.y.as_deref()?)?);
                if x.len() != size || y.len() != size {
                    return None;
                }
                let mut point = Vec::with_capacity(1 + 2 * size);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                if size == 32 {
                    PublicKey::P256(point)
                } else {
                    PublicKey::P384(point)
                }
            }
            _ => return None,
        };
        Some(Self {
            kid: raw.kid,
            alg: raw.alg,
            key,
        })
    }

    /// Whether this key may verify a signature made with `alg`.
    pub(crate) fn fits(&self, alg: JwsAlgorithm) -> bool {
        if self.alg.as_deref().is_some_and(|pinned| pinned != alg.name()) {
            return false;
        }
        use JwsAlgorithm::*;
        matches!(
            (&self.key, alg),
            (PublicKey::Rsa { .. }, RS256 | RS384 | RS512 | PS256 | PS384 | PS512)
                | (PublicKey::P256(_), ES256)
                | (PublicKey::P384(_), ES384)
        )
    }

    /// Verifies `signature` over `message`; false for a key that does not fit `alg`.
    pub(crate) fn verify(&self, alg: JwsAlgorithm, message: &[u8], sig: &[u8]) -> bool {
        if !self.fits(alg) {
            return false;
        }
        use JwsAlgorithm::*;
        match &self.key {
            PublicKey::Rsa { n, e } => {
                let params: &signature::RsaParameters = match alg {
                    RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    PS256 => &signature::RSA_PSS_2048_8192_SHA256,
                    PS384 => &signature::RSA_PSS_2048_8192_SHA384,
                    PS512 => &signature::RSA_PSS_2048_8192_SHA512,
                    _ => return false,
                };
                RsaPublicKeyComponents { n, e }.verify(params, message, sig).is_ok()
            }
            // JWS ECDSA signatures are the fixed-width `r || s` (RFC 7518 §3.4), not DER.
            PublicKey::P256(point) => UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(message, sig)
                .is_ok(),
            PublicKey::P384(point) => UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
                .verify(message, sig)
                .is_ok(),
        }
    }
}

/// ring wants big-endian integers without leading zeros; some providers pad `n`.
fn strip_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_entries_are_skipped_not_fatal() {
        let set = br#"{"keys":[
            {"kty":"oct","k":"c2VjcmV0"},
            {"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"},
            {"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB"},
            {"kty":"RSA","kid":"good","n":"AQAB","e":"AQAB"},
            "not an object"
        ]}"#;
        let keys = parse_set(set).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid.as_deref(), Some("good"));
        assert!(keys[0].fits(JwsAlgorithm::PS256));
        assert!(!keys[0].fits(JwsAlgorithm::ES256));
        assert!(parse_set(b"[]").is_none());
    }

    #[test]
    fn a_pinned_alg_limits_the_key() {
        let keys = parse_set(br#"{"keys":[{"kty":"RSA","alg":"RS256","n":"AQAB","e":"AQAB"}]}"#).unwrap();
        assert!(keys[0].fits(JwsAlgorithm::RS256));
        assert!(!keys[0].fits(JwsAlgorithm::PS256));
    }
}
