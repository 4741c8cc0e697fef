//! Signing keys for the ID tokens the development server issues, and the JWT
//! encoding (RFC 7515 compact JWS) the tests use to build hostile tokens. ES256 keys
//! are generated at start; RS256/PS256 use one fixed 2048-bit test key
//! (`test_rsa_key.der`, generated for this server and used for nothing else), since
//! `ring` cannot generate RSA keys.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair, RsaPublicKeyComponents};
use serde_json::{json, Value};

const TEST_RSA_KEY: &[u8] = include_bytes!("test_rsa_key.der");

/// The JWS algorithm a [`SigningKey`] signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigningAlg {
    /// ECDSA P-256 SHA-256.
    ES256,
    /// RSASSA-PKCS1-v1_5 SHA-256.
    RS256,
    /// RSASSA-PSS SHA-256.
    PS256,
}

impl SigningAlg {
    /// The `alg` header value.
    pub fn name(self) -> &'static str {
        match self {
            SigningAlg::ES256 => "ES256",
            SigningAlg::RS256 => "RS256",
            SigningAlg::PS256 => "PS256",
        }
    }
}

/// A private key with its `kid`, publishing its public half as a JWK.
pub struct SigningKey {
    kid: String,
    alg: SigningAlg,
    key: Key,
}

enum Key {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

impl SigningKey {
    /// A fresh key for `alg` (RSA algorithms use the fixed test key).
    pub fn generate(kid: &str, alg: SigningAlg) -> SigningKey {
        let rng = SystemRandom::new();
        let key = match alg {
            SigningAlg::ES256 => {
                let curve = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
                let pkcs8 = EcdsaKeyPair::generate_pkcs8(curve, &rng).expect("the system RNG works");
                Key::Ec(EcdsaKeyPair::from_pkcs8(curve, pkcs8.as_ref(), &rng).expect("a key ring just made"))
            }
            SigningAlg::RS256 | SigningAlg::PS256 => {
                Key::Rsa(RsaKeyPair::from_der(TEST_RSA_KEY).expect("the bundled test key is a valid RSAPrivateKey"))
            }
        };
        SigningKey {
            kid: kid.to_owned(),
            alg,
            key,
        }
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm.
    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// The public key as a JWK (RFC 7517) with `kid`, `use: sig` and `alg`.
    pub fn jwk(&self) -> Value {
        match &self.key {
            Key::Ec(pair) => {
                let point = pair.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "kid": self.kid, "use": "sig", "alg": self.alg.name(),
                       "x": b64(&point[1..33]), "y": b64(&point[33..65])})
            }
            Key::Rsa(pair) => {
                let parts = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
                json!({"kty": "RSA", "kid": self.kid, "use": "sig", "alg": self.alg.name(),
                       "n": b64(&parts.n), "e": b64(&parts.e)})
            }
        }
    }

    /// `claims` as a compact JWS with the header `{"alg", "kid", "typ": "JWT"}`.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(&json!({"alg": self.alg.name(), "kid": self.kid, "typ": "JWT"}), claims)
    }

    /// `claims` as a compact JWS under any `header` (a wrong `alg` or `kid` included).
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let rng = SystemRandom::new();
        let signature = match (&self.key, self.alg) {
            (Key::Ec(pair), _) => pair
                .sign(&rng, input.as_bytes())
                .expect("ECDSA signing")
                .as_ref()
                .to_vec(),
            (Key::Rsa(pair), alg) => {
                let padding: &dyn signature::RsaEncoding = if alg == SigningAlg::PS256 {
                    &signature::RSA_PSS_SHA256
                } else {
                    &signature::RSA_PKCS1_SHA256
                };
                let mut out = vec![0; pair.public().modulus_len()];
                pair.sign(padding, &rng, input.as_bytes(), &mut out)
                    .expect("RSA signing");
                out
            }
        };
        format!("{input}.{}", b64(&signature))
    }
}

/// An unsecured JWT (`alg: none`, RFC 7519 §6): what an attacker sends.
pub fn unsecured(claims: &Value) -> String {
    format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(claims.to_string().as_bytes()))
}

/// `at_hash` for `access_token` under SHA-256 (OIDC Core §3.1.3.6).
pub fn at_hash(access_token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, access_token.as_bytes());
    b64(&digest.as_ref()[..16])
}

/// base64url without padding.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}
