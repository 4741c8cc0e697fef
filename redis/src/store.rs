//! Records in Redis: one sealed value per identity with a revision, read, written by
//! compare-and-set and removed by compare-and-delete, expiring when the token it holds
//! does.
//!
//! The Redis key of an identity is `<prefix>:{<digest>}:rec`, where the digest is
//! SHA-256 of tokenkeeper's store key (endpoint, client, subject): Redis never sees a
//! user name, keys never contain a space (the bus splits on it), and the hash tag puts
//! the record and its lease in one Cluster slot. Not here: what the plaintext means
//! (the core's record) and the lease (`lease`).

use crate::link::{Link, RedisError};
use crate::scripts::{COMPARE_AND_DELETE, COMPARE_AND_SET};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokenkeeper::seal::{SealError, Sealer};
use zeroize::Zeroizing;

/// The Redis keys of one identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Keys {
    pub record: String,
    pub lease: String,
    /// The shared access token (`tokens`).
    pub token: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str, store_key: &str) -> Keys {
        let digest = ring::digest::digest(&ring::digest::SHA256, store_key.as_bytes());
        let tag: String = digest.as_ref()[..16].iter().map(|b| format!("{b:02x}")).collect();
        Keys {
            record: format!("{prefix}:{{{tag}}}:rec"),
            lease: format!("{prefix}:{{{tag}}}:lease"),
            token: format!("{prefix}:{{{tag}}}:at"),
        }
    }
}

/// A record as read: its revision and its plaintext.
pub(crate) struct Stored {
    pub revision: u64,
    pub value: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Stored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stored")
            .field("revision", &self.revision)
            .field("value", &"[sealed]")
            .finish()
    }
}

/// What a conditional write or delete found.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Done; for a write, the record's new revision.
    Done(u64),
    /// Nothing changed: the key holds this (`None`: nothing).
    Conflict(Option<Stored>),
}

/// Why a record operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FleetStoreError {
    /// Redis did not answer, or answered an error.
    #[error(transparent)]
    Redis(#[from] RedisError),
    /// The stored value does not open (tampered, unknown key id).
    #[error(transparent)]
    Seal(#[from] SealError),
}

/// Sealed, revisioned records over the instance's link.
pub(crate) struct Records {
    link: Arc<Link>,
    pub(crate) sealer: Arc<Sealer>,
}

impl Records {
    pub(crate) fn new(link: Arc<Link>, sealer: Arc<Sealer>) -> Self {
        Records { link, sealer }
    }

    pub(crate) fn keys(&self, store_key: &str) -> Keys {
        Keys::new(&self.link.config().prefix, store_key)
    }

    pub(crate) async fn get(&self, keys: &Keys) -> Result<Option<Stored>, FleetStoreError> {
        let (revision, sealed): (Option<u64>, Option<String>) = self
            .link
            .query(redis::cmd("HMGET").arg(&keys.record).arg("rev").arg("val"))
            .await?;
        self.opened(keys, revision, sealed)
    }

    fn opened(
        &self,
        keys: &Keys,
        revision: Option<u64>,
        sealed: Option<String>,
    ) -> Result<Option<Stored>, FleetStoreError> {
        match (revision, sealed) {
            (Some(revision), Some(sealed)) => Ok(Some(Stored {
                revision,
                value: self.sealer.open(&keys.record, &sealed)?,
            })),
            (None, None) => Ok(None),
            _ => Err(RedisError::Protocol("a record without its revision or value").into()),
        }
    }

    /// Writes `plaintext` if the record is at `expected` (`None`: absent); it expires
    /// at `expires_at` (Unix time), or never.
    pub(crate) async fn compare_and_set(
        &self,
        keys: &Keys,
        expected: Option<u64>,
        plaintext: &[u8],
        expires_at: Option<SystemTime>,
    ) -> Result<Outcome, FleetStoreError> {
        let sealed = self.sealer.seal(&keys.record, plaintext)?;
        let expires_ms = expires_at.map(|at| {
            let ms = at.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
            // At least "now + 1 ms" in Redis's eyes would be ideal; 1 ms after the
            // epoch makes an already expired token expire at once, which is right.
            u64::try_from(ms).unwrap_or(u64::MAX).max(1)
        });
        let mut invocation = COMPARE_AND_SET.key(&keys.record);
        invocation
            .arg(expected.map(|r| r.to_string()).unwrap_or_default())
            .arg(sealed)
            .arg(expires_ms.map(|ms| ms.to_string()).unwrap_or_default())
            .arg(self.link.bus_channel());
        let reply: Vec<redis::Value> = self.link.script(invocation).await?;
        self.outcome(keys, &reply)
    }

    /// Removes the record if it is at `expected`.
    pub(crate) async fn compare_and_delete(&self, keys: &Keys, expected: u64) -> Result<Outcome, FleetStoreError> {
        let mut invocation = COMPARE_AND_DELETE.key(&keys.record);
        invocation.arg(expected).arg(self.link.bus_channel());
        let reply: Vec<redis::Value> = self.link.script(invocation).await?;
        match self.outcome(keys, &reply)? {
            Outcome::Done(_) => Ok(Outcome::Done(expected)),
            conflict => Ok(conflict),
        }
    }

    /// `{1, revision}` / `{1}`, `{0}`, `{0, revision, sealed}`: what the scripts answer.
    fn outcome(&self, keys: &Keys, reply: &[redis::Value]) -> Result<Outcome, FleetStoreError> {
        use redis::FromRedisValue as _;
        let int =
            |value: &redis::Value| u64::from_redis_value_ref(value).map_err(|_| RedisError::Protocol("not a revision"));
        match reply {
            [status, rest @ ..] if int(status)? == 1 => Ok(Outcome::Done(match rest.first() {
                Some(revision) => int(revision)?,
                None => 0,
            })),
            [_] => Ok(Outcome::Conflict(None)),
            [_, revision, sealed] => {
                let sealed =
                    String::from_redis_value_ref(sealed).map_err(|_| RedisError::Protocol("not a sealed value"))?;
                Ok(Outcome::Conflict(self.opened(
                    keys,
                    Some(int(revision)?),
                    Some(sealed),
                )?))
            }
            _ => Err(RedisError::Protocol("an unexpected script reply").into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hide_the_identity_share_a_slot_and_have_no_spaces() {
        let keys = Keys::new("tk", "tokenkeeper/v2/https:%2F%2Fas/app/user=alice smith/-/-/-");
        assert!(keys.record.starts_with("tk:{") && keys.record.ends_with("}:rec"));
        assert_eq!(keys.record.replace(":rec", ":lease"), keys.lease);
        assert!(!keys.record.contains("alice") && !keys.record.contains(' '));
        assert_ne!(Keys::new("tk", "a"), Keys::new("tk", "b"));
    }
}
