//! The core's store seam, implemented natively on Redis by [`RedisFleet`]:
//! [`RecordStore`] (sealed records, revisions, compare-and-set and compare-and-delete
//! in Lua, the fleet channel as `changes()`) and [`RefreshLock`] (the fleet lease).
//!
//! When Redis fails, neither blocks a session: a record call is a `StoreError` within
//! the operation timeout (the session goes on with what it holds), and the lock falls
//! back to the in-process [`LocalRefreshLock`] so this instance still sends one
//! request per identity. A wait for another instance's lease is bounded by the
//! session's wait and [`RedisConfig::lease_wait`](crate::RedisConfig::lease_wait);
//! past it the instance makes its own request under the local lock. A waiter woken
//! by the holder's release gets a lease that is not held: the session re-reads and
//! adopts, and only one that finds nothing asks for the lease again.

use crate::bus::{BusMessage, Kind};
use crate::lease::{LeaseGuard, LeaseOutcome};
use crate::store::{FleetStoreError, Keys, Outcome, Stored};
use crate::RedisFleet;
use futures_util::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokenkeeper::{
    Deleted, Lease, LocalRefreshLock, LockError, RecordStore, RefreshLock, StoreError, StoreFuture, Versioned, Written,
};
use tokio::sync::broadcast;
use tokio::time::Instant;

/// Store keys this instance has used, by Redis record key: the fleet channel names
/// hashed keys, and `changes()` speaks in the core's store keys.
#[derive(Default)]
pub(crate) struct KnownKeys(Mutex<HashMap<String, String>>);

impl KnownKeys {
    fn remember(&self, keys: &Keys, store_key: &str) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if !map.contains_key(&keys.record) {
            map.insert(keys.record.clone(), store_key.to_owned());
        }
    }

    pub(crate) fn store_key(&self, record: &str) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).get(record).cloned()
    }
}

/// Forwards the fleet channel's record changes as store keys, for `changes()`.
pub(crate) async fn forward_changes(
    mut messages: broadcast::Receiver<BusMessage>,
    known: Arc<KnownKeys>,
    changes: broadcast::Sender<String>,
) {
    loop {
        match messages.recv().await {
            Ok(BusMessage::Key {
                kind: Kind::Changed | Kind::Removed | Kind::Invalidated,
                key,
                ..
            }) => {
                if let Some(store_key) = known.store_key(&key) {
                    let _ = changes.send(store_key);
                }
            }
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

fn store_error(error: FleetStoreError) -> StoreError {
    StoreError(format!("Redis: {error}"))
}

fn versioned(stored: Stored) -> Result<Versioned, StoreError> {
    let text =
        String::from_utf8(stored.value.to_vec()).map_err(|_| StoreError("Redis: the record is not text".to_owned()))?;
    Ok(Versioned {
        revision: stored.revision,
        value: SecretString::from(text),
    })
}

impl RedisFleet {
    pub(crate) fn keys_for(&self, store_key: &str) -> Keys {
        let keys = self.records.keys(store_key);
        self.known.remember(&keys, store_key);
        keys
    }
}

impl RecordStore for RedisFleet {
    fn read<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Versioned>> {
        Box::pin(async move {
            let keys = self.keys_for(key);
            match self.records.get(&keys).await.map_err(store_error)? {
                Some(stored) => Ok(Some(versioned(stored)?)),
                None => Ok(None),
            }
        })
    }

    fn compare_and_set<'a>(
        &'a self,
        key: &'a str,
        expected: Option<u64>,
        value: &'a SecretString,
        expires_at: Option<SystemTime>,
    ) -> StoreFuture<'a, Written> {
        Box::pin(async move {
            let keys = self.keys_for(key);
            let outcome = self
                .records
                .compare_and_set(&keys, expected, value.expose_secret().as_bytes(), expires_at)
                .await
                .map_err(store_error)?;
            Ok(match outcome {
                Outcome::Done(revision) => Written::Written { revision },
                Outcome::Conflict(current) => Written::Conflict {
                    current: current.map(versioned).transpose()?,
                },
            })
        })
    }

    fn compare_and_delete<'a>(&'a self, key: &'a str, expected: u64) -> StoreFuture<'a, Deleted> {
        Box::pin(async move {
            let keys = self.keys_for(key);
            Ok(
                match self
                    .records
                    .compare_and_delete(&keys, expected)
                    .await
                    .map_err(store_error)?
                {
                    Outcome::Done(_) => Deleted::Deleted,
                    Outcome::Conflict(None) => Deleted::Absent,
                    Outcome::Conflict(Some(current)) => Deleted::Conflict {
                        current: versioned(current)?,
                    },
                },
            )
        })
    }

    fn changes(&self) -> Option<broadcast::Receiver<String>> {
        Some(self.changes.subscribe())
    }
}

/// A fleet lease, or the local lock this instance fell back to.
enum FleetLease {
    /// The fleet lease, and this process's lock of the key (kept so that the
    /// instance's other sessions of the identity wait here, not on Redis).
    Fleet { guard: LeaseGuard, _local: Box<dyn Lease> },
    /// Redis failed or the wait ran out: this process's lock only.
    Local(Box<dyn Lease>),
    /// Not held: another instance just finished (or its lease ended). The session
    /// looks at the shared token and the record and asks again only if it must, so a
    /// release wakes n waiters into n reads, not n lease attempts.
    Woken { _local: Box<dyn Lease> },
}

impl Lease for FleetLease {
    fn is_held(&self) -> bool {
        match self {
            FleetLease::Fleet { guard, .. } => !guard.is_lost(),
            FleetLease::Local(lease) => lease.is_held(),
            FleetLease::Woken { .. } => false,
        }
    }
}

impl RefreshLock for RedisFleet {
    fn acquire<'a>(&'a self, key: &'a str, wait: Duration) -> BoxFuture<'a, Result<Box<dyn Lease>, LockError>> {
        Box::pin(async move {
            let keys = self.keys_for(key);
            let started = Instant::now();
            let until = started + wait.min(self.link.config().lease_wait);
            // The in-process lock first: this instance's sessions of one identity take
            // turns locally, and only one of them asks Redis for the fleet lease.
            let local = LocalRefreshLock::new(None).acquire(key, wait).await?;
            let lease: FleetLease = match self.leases.acquire(&keys, until).await {
                LeaseOutcome::Held(guard) => FleetLease::Fleet { guard, _local: local },
                // Woken: the holder wrote or released. The session re-reads and adopts,
                // and takes the lock again only if it still needs to.
                LeaseOutcome::Changed => FleetLease::Woken { _local: local },
                LeaseOutcome::TimedOut => {
                    tracing::warn!(
                        waited = ?started.elapsed(),
                        "tokenkeeper-redis: another instance kept the refresh lease; requesting alone"
                    );
                    FleetLease::Local(local)
                }
                LeaseOutcome::Unavailable(error) => {
                    tracing::warn!(%error, "tokenkeeper-redis: no fleet lease; requesting alone");
                    FleetLease::Local(local)
                }
            };
            Ok(Box::new(lease) as Box<dyn Lease>)
        })
    }
}
