//! Records in Redis: one sealed value per identity with a revision, read, written by
//! compare-and-set and removed by compare-and-delete, with a TTL that ends with the
//! token it holds.
//!
//! The Redis key of an identity is `<prefix>:{<digest>}:rec`, where the digest is
//! SHA-256 of tokenkeeper's store key (endpoint, client, subject): Redis never sees a
//! user name, keys never contain a space (the bus splits on it), and the hash tag puts
//! the record and its lease in one Cluster slot. Not here: what the plaintext means
//! (the core's record) and the lease (`lease`).

use crate::link::{Link, RedisError};
use crate::scripts::{COMPARE_AND_DELETE, COMPARE_AND_SET};
use crate::seal::{SealError, Sealer};
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

/// A removed record's tombstone lives this long: longer than any token the core keeps
/// (it caps lifetimes at 24 h), so a writer that read before a logout stays fenced.
pub(crate) const TOMBSTONE_TTL: Duration = Duration::from_secs(25 * 3600);

/// The Redis keys of one identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Keys {
    pub record: String,
    pub lease: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str, store_key: &str) -> Keys {
        let digest = ring::digest::digest(&ring::digest::SHA256, store_key.as_bytes());
        let tag: String = digest.as_ref()[..16].iter().map(|b| format!("{b:02x}")).collect();
        Keys {
            record: format!("{prefix}:{{{tag}}}:rec"),
            lease: format!("{prefix}:{{{tag}}}:lease"),
        }
    }
}

/// A record as read: its revision (0 when there never was one, or it expired) and its
/// plaintext, `None` for a tombstone.
pub(crate) struct Stored {
    pub revision: u64,
    pub value: Option<Zeroizing<Vec<u8>>>,
}

impl std::fmt::Debug for Stored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stored")
            .field("revision", &self.revision)
            .field("value", &self.value.as_ref().map(|_| "[sealed]"))
            .finish()
    }
}

/// What a conditional write found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Written {
    /// Written; the record's revision is now this.
    Yes(u64),
    /// Someone else wrote first; this is the record's revision.
    Conflict(u64),
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
    sealer: Arc<Sealer>,
}

impl Records {
    pub(crate) fn new(link: Arc<Link>, sealer: Arc<Sealer>) -> Self {
        Records { link, sealer }
    }

    pub(crate) fn keys(&self, store_key: &str) -> Keys {
        Keys::new(&self.link.config().prefix, store_key)
    }

    pub(crate) async fn get(&self, keys: &Keys) -> Result<Stored, FleetStoreError> {
        let (revision, sealed): (Option<u64>, Option<String>) = self
            .link
            .query(redis::cmd("HMGET").arg(&keys.record).arg("rev").arg("val"))
            .await?;
        let value = match sealed.as_deref() {
            None | Some("") => None,
            Some(sealed) => Some(self.sealer.open(&keys.record, sealed)?),
        };
        Ok(Stored {
            revision: revision.unwrap_or(0),
            value,
        })
    }

    /// Writes `plaintext` if the record is still at `expected`; it expires after `ttl`.
    pub(crate) async fn compare_and_set(
        &self,
        keys: &Keys,
        expected: u64,
        plaintext: &[u8],
        ttl: Duration,
    ) -> Result<Written, FleetStoreError> {
        let sealed = self.sealer.seal(&keys.record, plaintext)?;
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut invocation = COMPARE_AND_SET.key(&keys.record);
        invocation
            .arg(expected)
            .arg(sealed)
            .arg(ttl_ms)
            .arg(self.link.bus_channel());
        let (ok, revision): (u8, u64) = self.link.script(invocation).await?;
        Ok(if ok == 1 {
            Written::Yes(revision)
        } else {
            Written::Conflict(revision)
        })
    }

    /// Removes the record if it is at `expected` (`None`: whatever it holds).
    pub(crate) async fn compare_and_delete(
        &self,
        keys: &Keys,
        expected: Option<u64>,
    ) -> Result<Written, FleetStoreError> {
        let mut invocation = COMPARE_AND_DELETE.key(&keys.record);
        match expected {
            Some(revision) => invocation.arg(revision),
            None => invocation.arg("*"),
        };
        invocation
            .arg(u64::try_from(TOMBSTONE_TTL.as_millis()).unwrap_or(u64::MAX))
            .arg(self.link.bus_channel());
        let (ok, revision): (u8, u64) = self.link.script(invocation).await?;
        Ok(if ok == 1 {
            Written::Yes(revision)
        } else {
            Written::Conflict(revision)
        })
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
