//! One DPoP proof JWT (RFC 9449 §4.2): the header with the key's public `jwk`, the
//! claims (`jti`, `htm`, `htu`, `iat`, and `ath`, `nonce` when they apply), and the
//! ES256 signature made by the key wherever it lives. A DER signature from a platform
//! key is converted to the JWS form (RFC 7518 §3.4) here, once for every platform.

use super::key_home::KeyHome;
use crate::dpop::DpopKey;
use crate::error::{AuthError, ErrorSource};
use crate::internal::jose::b64url_encode;
use ring::rand::SecureRandom as _;
use secrecy::SecretString;
use std::sync::Arc;
use url::Url;

/// Bytes of CSPRNG output in a `jti`: 128 bits, the floor RFC 9449 §11.1 implies for
/// an identifier nobody can guess or collide with.
const JTI_BYTES: usize = 16;

/// A session's key with what every proof repeats: its thumbprint and the encoded
/// protected header, built once per key rather than once per request. Where the key
/// lives, and when a platform key is deleted, is `key_home.rs`.
pub(crate) struct Binding {
    pub key: Arc<dyn DpopKey>,
    /// RFC 7638 thumbprint: the `jkt` the server binds tokens to.
    pub jkt: String,
    /// base64url of `{"typ":"dpop+jwt","alg":"ES256","jwk":…}`.
    header: String,
    /// What the session record stores so the key lives as long as the session.
    pub home: KeyHome,
}

impl Binding {
    pub(crate) fn new(key: Arc<dyn DpopKey>, home: KeyHome) -> Self {
        let jwk = key.public_jwk();
        let header = format!(r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{}}}"#, jwk.to_json());
        Self {
            jkt: jwk.thumbprint(),
            header: b64url_encode(header.as_bytes()),
            key,
            home,
        }
    }

    /// A fresh proof for one request: `htm` is the method, `htu` the URL without query
    /// and fragment (§4.2), `iat` whole seconds on the server's clock, `ath` the
    /// base64url SHA-256 of `access_token` (§4.2, resource requests), `nonce` the
    /// server's last `DPoP-Nonce` for this origin (§8, §9).
    pub(crate) fn proof(
        &self,
        method: &str,
        url: &Url,
        iat: u64,
        nonce: Option<&str>,
        access_token: Option<&str>,
    ) -> Result<SecretString, AuthError> {
        let mut jti = [0u8; JTI_BYTES];
        ring::rand::SystemRandom::new()
            .fill(&mut jti)
            .map_err(|_| key_error("the system random number generator failed"))?;
        let mut claims = serde_json::json!({
            "jti": b64url_encode(&jti),
            "htm": method,
            "htu": htu(url),
            "iat": iat,
        });
        if let Some(token) = access_token {
            let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
            claims["ath"] = b64url_encode(digest.as_ref()).into();
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = nonce.into();
        }
        let signing_input = format!("{}.{}", self.header, b64url_encode(claims.to_string().as_bytes()));
        let signature = self
            .key
            .sign(signing_input.as_bytes())
            .map_err(|error| AuthError::Storage {
                reason: error.to_string(),
                source: Some(ErrorSource::new(error)),
            })?;
        let signature = jws_signature(&signature)
            .ok_or_else(|| key_error("the DPoP key returned a signature that is neither 64-byte r||s nor DER ECDSA"))?;
        Ok(SecretString::from(format!(
            "{signing_input}.{}",
            b64url_encode(&signature)
        )))
    }
}

/// A key failure, reported as a failure of the store the key lives in.
fn key_error(reason: &str) -> AuthError {
    AuthError::Storage {
        reason: reason.into(),
        source: None,
    }
}

/// RFC 9449 §4.2 `htu`: the target URI without query and fragment.
pub(crate) fn htu(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.into()
}

/// An ECDSA P-256 signature as JWS wants it: `r || s`, each 32 bytes big-endian.
/// Accepts that form as it is, or ASN.1 DER `SEQUENCE { INTEGER r, INTEGER s }`.
pub(crate) fn jws_signature(signature: &[u8]) -> Option<[u8; 64]> {
    if let Ok(raw) = <[u8; 64]>::try_from(signature) {
        return Some(raw);
    }
    let (body, rest) = der(signature, 0x30)?;
    if !rest.is_empty() {
        return None;
    }
    let (r, body) = der(body, 0x02)?;
    let (s, body) = der(body, 0x02)?;
    if !body.is_empty() {
        return None;
    }
    let mut out = [0u8; 64];
    let (r_half, s_half) = out.split_at_mut(32);
    for (integer, half) in [(r, r_half), (s, s_half)] {
        // DER integers are signed: a leading zero keeps a high bit from reading as a sign.
        let digits = match integer {
            [0, tail @ ..] if !tail.is_empty() => tail,
            digits => digits,
        };
        if digits.is_empty() || digits.len() > 32 {
            return None;
        }
        half[32 - digits.len()..].copy_from_slice(digits);
    }
    Some(out)
}

/// One DER element with `tag` and a short or one-byte long length: (content, rest).
fn der(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&found, input) = input.split_first()?;
    let (&first, input) = input.split_first()?;
    if found != tag {
        return None;
    }
    let (len, input) = match first {
        0..=0x7f => (usize::from(first), input),
        0x81 => {
            let (&len, input) = input.split_first()?;
            (usize::from(len), input)
        }
        // A P-256 signature is never longer than 72 bytes.
        _ => return None,
    };
    (input.len() >= len).then(|| input.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dpop::SoftwareDpopKey;
    use crate::internal::jose::b64url_decode;
    use secrecy::ExposeSecret;
    use serde_json::Value;

    fn decode(part: &str) -> Value {
        serde_json::from_slice(&b64url_decode(part).unwrap()).unwrap()
    }

    #[test]
    fn a_proof_has_the_rfc9449_header_and_claims_and_verifies() {
        let key = Arc::new(SoftwareDpopKey::generate().unwrap());
        let binding = Binding::new(key.clone(), KeyHome::Unstored);
        let url = Url::parse("https://rs.example.com/api/me?x=1#frag").unwrap();
        let proof = binding
            .proof("GET", &url, 1_700_000_000, Some("n-1"), Some("tok"))
            .unwrap();
        let proof = proof.expose_secret();
        let parts: Vec<&str> = proof.split('.').collect();
        let (header, claims) = (decode(parts[0]), decode(parts[1]));
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["jwk"]["kty"], "EC");
        assert!(header["jwk"].get("d").is_none(), "no private part in the header");
        assert_eq!(claims["htm"], "GET");
        assert_eq!(claims["htu"], "https://rs.example.com/api/me");
        assert_eq!(claims["iat"], 1_700_000_000u64);
        assert_eq!(claims["nonce"], "n-1");
        // RFC 9449 §4.2: base64url(SHA-256(ASCII(token))).
        let ath = b64url_encode(ring::digest::digest(&ring::digest::SHA256, b"tok").as_ref());
        assert_eq!(claims["ath"], ath.as_str());
        assert_eq!(b64url_decode(claims["jti"].as_str().unwrap()).unwrap().len(), 16);

        let jwk = key.public_jwk().to_json();
        let jwk: Value = serde_json::from_str(&jwk).unwrap();
        let coordinate = |c: &str| b64url_decode(jwk[c].as_str().unwrap()).unwrap();
        let point = [vec![4u8], coordinate("x"), coordinate("y")].concat();
        let public = ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point);
        let signature = b64url_decode(parts[2]).unwrap();
        public
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .expect("the proof verifies with its own jwk");
    }

    #[test]
    fn every_proof_has_a_new_jti() {
        let binding = Binding::new(Arc::new(SoftwareDpopKey::generate().unwrap()), KeyHome::Unstored);
        let url = Url::parse("https://as.example.com/token").unwrap();
        let jti = |p: SecretString| decode(p.expose_secret().split('.').nth(1).unwrap())["jti"].clone();
        let a = jti(binding.proof("POST", &url, 1, None, None).unwrap());
        let b = jti(binding.proof("POST", &url, 1, None, None).unwrap());
        assert_ne!(a, b);
    }

    #[test]
    fn der_signatures_become_r_and_s() {
        let mut der = vec![0x30, 0x45, 0x02, 0x21, 0x00];
        der.extend([0x80; 32]);
        der.extend([0x02, 0x20]);
        der.extend([0x01; 32]);
        let raw = jws_signature(&der).unwrap();
        assert_eq!(&raw[..32], &[0x80; 32]);
        assert_eq!(&raw[32..], &[0x01; 32]);
        // Short integers are left-padded.
        let raw = jws_signature(&[0x30, 0x06, 0x02, 0x01, 0x05, 0x02, 0x01, 0x07]).unwrap();
        assert_eq!((raw[31], raw[63], raw[0]), (5, 7, 0));
        for bad in [&[][..], &[0x30, 0x02, 0x02, 0x00], &[0x30, 0x10, 0x02], &[0x31, 0x00]] {
            assert!(jws_signature(bad).is_none(), "{bad:?}");
        }
    }
}
