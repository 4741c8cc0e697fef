//! Sealing: AES-256-GCM (`ring`) for values that leave the secure store. Redis is not
//! a secret store, so `tokenkeeper-redis` seals every value it writes there under a key
//! the app supplies; a saved sign-in ([`AuthClient::save_authorization`](crate::AuthClient::save_authorization))
//! goes into an Android `Bundle` or a file sealed under a key kept in the app's store.
//!
//! A sealed value reads `tk1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>`. The key
//! id in clear lets keys rotate: [`Sealer`] encrypts with its current key and opens
//! with any key it knows, so a fleet rolls a new key out first as an extra key, then
//! makes it current, then drops the old one once the longest token TTL has passed.
//! The additional authenticated data names where the value belongs (the Redis key, the
//! client a sign-in was saved by), so a value copied elsewhere does not open.
//!
//! Not here: where the keys come from (the app's secret manager, the app's store), and
//! what the plaintext means (`tokenkeeper-redis`'s `store`, `signin::saved`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use std::fmt;
use zeroize::Zeroizing;

const PREFIX: &str = "tk1";

/// One AES-256 key and the id a sealed value names it by.
pub struct SealingKey {
    id: String,
    key: LessSafeKey,
}

impl SealingKey {
    /// A key from 32 secret bytes and a short id (`[A-Za-z0-9_-]`, 1–32 characters,
    /// e.g. `"2026-12"`). The bytes are copied into `ring` and not kept here.
    pub fn new(id: impl Into<String>, bytes: &[u8]) -> Result<Self, SealError> {
        let id = id.into();
        let id_ok =
            (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !id_ok {
            return Err(SealError::InvalidKey("the key id must be 1-32 of [A-Za-z0-9_-]"));
        }
        let unbound =
            UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| SealError::InvalidKey("an AES-256 key is 32 bytes"))?;
        Ok(SealingKey {
            id,
            key: LessSafeKey::new(unbound),
        })
    }

    /// The key's id, as written in each value it seals.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealingKey")
            .field("id", &self.id)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// Why a value could not be sealed or opened. Never carries key material or plaintext.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The key given to [`SealingKey::new`] is unusable.
    #[error("invalid sealing key: {0}")]
    InvalidKey(&'static str),
    /// Two keys given to [`Sealer`] share an id.
    #[error("two sealing keys have the id {0:?}")]
    DuplicateKeyId(String),
    /// The value names a key this instance does not know (rotated out, or not rolled
    /// out here yet).
    #[error("the stored value is sealed with the unknown key id {0:?}")]
    UnknownKey(String),
    /// Not a sealed value, or it fails authentication (tampered, wrong key, moved to
    /// another Redis key or client).
    #[error("the stored value is not a valid sealed value")]
    Invalid,
    /// The system random generator failed.
    #[error("the system random generator failed")]
    Random,
}

/// Seals with the current key, opens with any known key.
pub struct Sealer {
    current: SealingKey,
    others: Vec<SealingKey>,
    random: SystemRandom,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("current", &self.current.id)
            .field("others", &self.others.iter().map(|k| k.id.as_str()).collect::<Vec<_>>())
            .finish()
    }
}

impl Sealer {
    /// Seals with `current`; opens values sealed with `current` or any of `previous`.
    pub fn new(current: SealingKey, previous: impl IntoIterator<Item = SealingKey>) -> Result<Self, SealError> {
        let others: Vec<SealingKey> = previous.into_iter().collect();
        let mut ids = vec![current.id.as_str()];
        for key in &others {
            if ids.contains(&key.id.as_str()) {
                return Err(SealError::DuplicateKeyId(key.id.clone()));
            }
            ids.push(&key.id);
        }
        Ok(Sealer {
            current,
            others,
            random: SystemRandom::new(),
        })
    }

    /// The id of the key new values are sealed with.
    pub fn current_key_id(&self) -> &str {
        &self.current.id
    }

    /// `plaintext` sealed for `aad` (the place it belongs: a Redis key, a client).
    pub fn seal(&self, aad: &str, plaintext: &[u8]) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random.fill(&mut nonce).map_err(|_| SealError::Random)?;
        // The buffer holds the plaintext until it is encrypted in place.
        let mut buffer = Zeroizing::new(Vec::with_capacity(NONCE_LEN + plaintext.len() + 16));
        buffer.extend_from_slice(&nonce);
        buffer.extend_from_slice(plaintext);
        let tag = self
            .current
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut buffer[NONCE_LEN..],
            )
            .map_err(|_| SealError::Invalid)?;
        buffer.extend_from_slice(tag.as_ref());
        Ok(format!(
            "{PREFIX}.{}.{}",
            self.current.id,
            URL_SAFE_NO_PAD.encode(&buffer[..])
        ))
    }

    /// The plaintext of a value sealed for `aad` by any known key.
    pub fn open(&self, aad: &str, sealed: &str) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let mut parts = sealed.splitn(3, '.');
        let (Some(PREFIX), Some(id), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(SealError::Invalid);
        };
        let key = std::iter::once(&self.current)
            .chain(&self.others)
            .find(|k| k.id == id)
            .ok_or_else(|| SealError::UnknownKey(id.to_owned()))?;
        let mut bytes = Zeroizing::new(URL_SAFE_NO_PAD.decode(body).map_err(|_| SealError::Invalid)?);
        if bytes.len() < NONCE_LEN + 16 {
            return Err(SealError::Invalid);
        }
        let nonce = Nonce::try_assume_unique_for_key(&bytes[..NONCE_LEN]).map_err(|_| SealError::Invalid)?;
        let plain_len = key
            .key
            .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut bytes[NONCE_LEN..])
            .map_err(|_| SealError::Invalid)?
            .len();
        Ok(Zeroizing::new(bytes[NONCE_LEN..NONCE_LEN + plain_len].to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, byte: u8) -> SealingKey {
        SealingKey::new(id, &[byte; 32]).unwrap()
    }

    #[test]
    fn a_sealed_value_opens_only_for_its_redis_key_and_hides_the_plaintext() {
        let sealer = Sealer::new(key("k1", 1), []).unwrap();
        let sealed = sealer.seal("tk:a", b"refresh-token-secret").unwrap();
        assert!(sealed.starts_with("tk1.k1."));
        assert!(!sealed.contains("refresh-token-secret"));
        assert_eq!(&sealer.open("tk:a", &sealed).unwrap()[..], b"refresh-token-secret");
        assert_eq!(sealer.open("tk:b", &sealed), Err(SealError::Invalid));
        // Two seals of the same plaintext differ (a fresh nonce each time).
        assert_ne!(sealed, sealer.seal("tk:a", b"refresh-token-secret").unwrap());
    }

    #[test]
    fn rotation_opens_with_any_known_key_and_seals_with_the_current() {
        let old = Sealer::new(key("old", 1), []).unwrap();
        let sealed_old = old.seal("k", b"v").unwrap();
        let rotated = Sealer::new(key("new", 2), [key("old", 1)]).unwrap();
        assert_eq!(&rotated.open("k", &sealed_old).unwrap()[..], b"v");
        assert!(rotated.seal("k", b"v").unwrap().starts_with("tk1.new."));
        let dropped = Sealer::new(key("new", 2), []).unwrap();
        assert_eq!(dropped.open("k", &sealed_old), Err(SealError::UnknownKey("old".into())));
    }

    #[test]
    fn tampered_truncated_and_foreign_values_are_typed_errors() {
        let sealer = Sealer::new(key("k1", 1), []).unwrap();
        let sealed = sealer.seal("k", b"value").unwrap();
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(sealer.open("k", &tampered), Err(SealError::Invalid));
        for bad in [
            "",
            "tk1",
            "tk1.k1",
            "tk1.k1.",
            "tk1.k1.!!!",
            "tk0.k1.AAAA",
            "plain refresh token",
        ] {
            assert!(sealer.open("k", bad).is_err(), "{bad:?}");
        }
        // Same id, other key bytes: authentication fails.
        let impostor = Sealer::new(key("k1", 9), []).unwrap();
        assert_eq!(impostor.open("k", &sealed), Err(SealError::Invalid));
    }

    #[test]
    fn keys_are_validated_and_never_printed() {
        assert!(SealingKey::new("k", &[0; 16]).is_err());
        assert!(SealingKey::new("", &[0; 32]).is_err());
        assert!(SealingKey::new("a.b", &[0; 32]).is_err());
        assert!(matches!(
            Sealer::new(key("a", 1), [key("a", 2)]),
            Err(SealError::DuplicateKeyId(_))
        ));
        let printed = format!("{:?}", Sealer::new(key("a", 0x41), [key("b", 0x42)]).unwrap());
        assert_eq!(printed, r#"Sealer { current: "a", others: ["b"] }"#);
    }
}
