//! The store seam: what a session needs from durable storage, shaped so that a store
//! with native compare-and-set (Redis, a database) implements it directly and an app's
//! plain [`TokenStore`](crate::TokenStore) is adapted to it.
//!
//! - [`RecordStore`]: records with revisions, written only by compare-and-set and
//!   deleted only by compare-and-delete, so "newer" is exact across sessions, clients
//!   and processes, and no writer ever overwrites or deletes a record it has not seen;
//! - [`RefreshLock`] and [`Lease`]: the right to run one token request for a key, so
//!   two holders never spend the same rotating refresh token (RFC 9700 §4.14.2).
//!
//! Both traits are object-safe (boxed futures), so `Arc<dyn RecordStore>` works and
//! an implementation may await the network. The built-in implementations are the
//! [`TokenStore`](crate::TokenStore) adapter (`storage::adapter`) and
//! [`LocalRefreshLock`](crate::LocalRefreshLock) (`storage::lock`). What the session
//! does with them (timeouts, retries, which record wins) is `internal::persistence`.

use crate::storage::StoreError;
use futures_util::future::BoxFuture;
use secrecy::SecretString;
use std::fmt;
use std::time::{Duration, SystemTime};
use tokio::sync::broadcast;

/// The future every [`RecordStore`] method returns.
pub type StoreFuture<'a, T> = BoxFuture<'a, Result<T, StoreError>>;

/// A stored value and its revision.
///
/// Revisions of one key only grow while the key exists: every successful
/// [`RecordStore::compare_and_set`] returns one greater than the revision it replaced.
/// A record written by an older SDK, or by something that keeps no revisions, reads
/// as revision 0. After a delete, the next create may start again at 1: the session
/// tells records apart by revision *and* content (the record names its grant and its
/// writer), never by revision alone.
#[derive(Clone)]
pub struct Versioned {
    /// The revision of this value; see the type's docs.
    pub revision: u64,
    /// The opaque value (a session record; it holds a refresh token).
    pub value: SecretString,
}

impl fmt::Debug for Versioned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Versioned")
            .field("revision", &self.revision)
            .field("value", &"[redacted]")
            .finish()
    }
}

/// What a [`RecordStore::compare_and_set`] did.
#[derive(Debug, Clone)]
pub enum Written {
    /// The value is stored, under this new revision.
    Written {
        /// The revision the store gave the value.
        revision: u64,
    },
    /// Nothing was written: the key did not hold the expected revision. `current` is
    /// what it holds now (`None`: absent), so the caller can decide without a re-read.
    Conflict {
        /// What the key holds now.
        current: Option<Versioned>,
    },
}

/// What a [`RecordStore::compare_and_delete`] did.
#[derive(Debug, Clone)]
pub enum Deleted {
    /// The record with the expected revision is gone.
    Deleted,
    /// There was no record (someone else deleted it): nothing to do.
    Absent,
    /// Nothing was deleted: the key holds another revision, `current`.
    Conflict {
        /// What the key holds now.
        current: Versioned,
    },
}

/// Durable records with revisions: the one seam every store mutation goes through.
///
/// Contract, for every implementation:
/// - **atomic per key**: `compare_and_set` and `compare_and_delete` compare and write
///   as one step with respect to every other writer of the key, in this process and
///   in any other that shares the store;
/// - **linearizable per key**: a `read` that starts after a write returned sees that
///   write (or a later one);
/// - **no secret in errors**: a [`StoreError`] never quotes a value;
/// - calls may be slow (a keychain prompt, a network): the session bounds each one
///   with `AuthConfig::store_timeout`, and treats a timed-out write as "may or may not
///   have landed" (revisions make either outcome safe).
///
/// A fleet store (Redis) implements this natively: a revision counter next to the
/// value, a script for the two compare operations, and `expires_at` as the key's TTL.
pub trait RecordStore: Send + Sync {
    /// The record of `key`, with its revision; `None` if there is none.
    fn read<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Versioned>>;

    /// Stores `value` under `key` if the key holds revision `expected` (`None`: only if
    /// the key is absent). On success the new revision is `expected + 1` (`1` for a
    /// create); otherwise nothing changes and the current record is returned.
    ///
    /// `expires_at` is a hint: when the value is useless (its refresh token expires),
    /// so a fleet store may drop it then. A store may ignore it.
    fn compare_and_set<'a>(
        &'a self,
        key: &'a str,
        expected: Option<u64>,
        value: &'a SecretString,
        expires_at: Option<SystemTime>,
    ) -> StoreFuture<'a, Written>;

    /// Deletes `key` if it holds revision `expected`; see [`Deleted`].
    fn compare_and_delete<'a>(&'a self, key: &'a str, expected: u64) -> StoreFuture<'a, Deleted>;

    /// The keys that start with `prefix`, in no particular order; `None` if this store
    /// cannot enumerate its keys (an app's [`TokenStore`](crate::TokenStore) cannot).
    fn list<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Option<Vec<String>>> {
        let _ = prefix;
        Box::pin(async { Ok(None) })
    }

    /// Keys written or deleted by anyone sharing this store, as they change (including
    /// this process's own writes), so a session can re-read and adopt a newer record
    /// without waiting for its next refresh. `None`: the store cannot tell; sessions
    /// then notice other writers when they next read (before every refresh). A lagged
    /// receiver has missed keys: treat it as "anything may have changed".
    fn changes(&self) -> Option<broadcast::Receiver<String>> {
        None
    }
}

/// Why a [`RefreshLock`] could not be taken. Never a secret in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Another holder kept the lock longer than the wait allowed.
    #[error("another holder kept the refresh lock for more than {0:?}")]
    Timeout(Duration),
    /// The lock itself failed (a lock file could not be opened, the lock server is
    /// unreachable).
    #[error("the refresh lock failed: {0}")]
    Failed(String),
}

/// A held [`RefreshLock`]; dropping it releases the lock (best effort for a remote
/// lease: one that cannot be released expires on its own).
pub trait Lease: Send + Sync {
    /// Whether the lock is still held. A mutex or file lock always is; a lease with a
    /// time-to-live can be lost (its holder stalled past the TTL, the watchdog could
    /// not extend it). A session that lost its lease still commits through
    /// compare-and-set, which stays exact; it only loses the guarantee that no other
    /// holder sent the same refresh token meanwhile.
    fn is_held(&self) -> bool;
}

/// The right to run one token request for a store key at a time, across every holder
/// that shares the store.
///
/// Held by a session from just before it reads the stored record for a refresh until
/// the new record is written: a refresh token is spent by exactly one holder, and the
/// others re-read the store and adopt the result.
pub trait RefreshLock: Send + Sync {
    /// Takes the lock of `key`, waiting at most `wait` for another holder to let go
    /// ([`LockError::Timeout`] then). Cancel-safe: dropping the future before it
    /// resolves leaves the lock free (or released as soon as it is obtained).
    fn acquire<'a>(&'a self, key: &'a str, wait: Duration) -> BoxFuture<'a, Result<Box<dyn Lease>, LockError>>;
}
