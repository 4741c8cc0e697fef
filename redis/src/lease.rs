//! The fleet-wide refresh lease of one identity: at most one instance runs that
//! identity's token request at a time, so a rotating refresh token is spent once.
//!
//! - taken with `SET <lease> <owner> NX PX <ttl>`, the owner 128 random bits;
//! - renewed by a watchdog task every third of the TTL while the request runs, with a
//!   compare-and-renew script (only the owner extends it), so a token endpoint slower
//!   than the TTL does not let a second instance in;
//! - released by compare-and-delete (a holder whose lease expired and was taken by
//!   another cannot delete the new holder's lease), which announces it on the bus;
//! - lost when a renewal finds another owner, or when no renewal succeeded for a whole
//!   TTL (Redis unreachable): [`LeaseGuard::is_lost`] says so, and the record's
//!   revision fences whatever the former holder still tries to write.
//!
//! Waiters subscribe to the bus before they look at the lease, then sleep until a
//! message about this identity, a resync, or the lease's own remaining TTL: one wake
//! per change, never a poll loop.

use crate::bus::{BusMessage, Kind};
use crate::link::{Link, RedisError};
use crate::scripts::{RELEASE_LEASE, RENEW_LEASE};
use crate::store::Keys;
use ring::rand::{SecureRandom, SystemRandom};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

/// What a try for the lease found.
#[derive(Debug)]
pub(crate) enum LeaseOutcome {
    /// This instance holds the lease: make the token request.
    Held(LeaseGuard),
    /// Another instance held it, and the identity changed (or the lease ended, or
    /// messages may have been lost): re-read the record, then try again if need be.
    Changed,
    /// The wait reached `until`.
    TimedOut,
    /// Redis did not answer: make the request without the fleet.
    Unavailable(RedisError),
}

/// Leases over the instance's link.
pub(crate) struct Leases {
    link: Arc<Link>,
    random: SystemRandom,
    /// Renewals that succeeded, for the tests and the benchmark's Redis-operations row.
    pub(crate) renewals: Arc<AtomicU64>,
}

impl Leases {
    pub(crate) fn new(link: Arc<Link>) -> Self {
        Leases {
            link,
            random: SystemRandom::new(),
            renewals: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Takes `keys`' lease, or waits (until `until` at the latest) for a sign that
    /// the identity changed.
    pub(crate) async fn acquire(&self, keys: &Keys, until: Instant) -> LeaseOutcome {
        // Subscribe first: a release published between our SET and our wait is kept.
        let mut messages = self.link.bus().subscribe();
        let ttl = self.link.config().lease_ttl;
        let owner = match self.owner() {
            Ok(owner) => owner,
            Err(error) => return LeaseOutcome::Unavailable(error),
        };
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let set: Result<Option<String>, _> = self
            .link
            .query(
                redis::cmd("SET")
                    .arg(&keys.lease)
                    .arg(&owner)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms),
            )
            .await;
        match set {
            Err(error) => return LeaseOutcome::Unavailable(error),
            Ok(Some(_)) => return LeaseOutcome::Held(self.guard(keys.lease.clone(), owner)),
            Ok(None) => {}
        }
        // Held elsewhere: wait at most until it would expire (its holder may be dead).
        let remaining: i64 = match self.link.query(redis::cmd("PTTL").arg(&keys.lease)).await {
            Ok(ms) => ms,
            Err(error) => return LeaseOutcome::Unavailable(error),
        };
        let lease_end = Instant::now() + Duration::from_millis(u64::try_from(remaining.max(1)).unwrap_or(1));
        let deadline = lease_end.min(until);
        loop {
            match tokio::time::timeout_at(deadline, messages.recv()).await {
                Err(_) if deadline == until => return LeaseOutcome::TimedOut,
                Err(_) => return LeaseOutcome::Changed,
                Ok(Err(RecvError::Closed)) => return LeaseOutcome::TimedOut,
                Ok(Err(RecvError::Lagged(_))) | Ok(Ok(BusMessage::Resync)) => return LeaseOutcome::Changed,
                Ok(Ok(BusMessage::Key { kind, key, .. })) => {
                    let ours = match kind {
                        Kind::Released => key == keys.lease,
                        Kind::Changed | Kind::Removed | Kind::Invalidated => key == keys.record,
                        Kind::Logout | Kind::Ended => false,
                    };
                    if ours {
                        return LeaseOutcome::Changed;
                    }
                }
            }
        }
    }

    fn owner(&self) -> Result<String, RedisError> {
        let mut bytes = [0u8; 16];
        self.random
            .fill(&mut bytes)
            .map_err(|_| RedisError::Protocol("the system random generator failed"))?;
        Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    fn guard(&self, key: String, owner: String) -> LeaseGuard {
        let lost = Arc::new(AtomicBool::new(false));
        let watchdog = tokio::spawn(watchdog(
            Arc::clone(&self.link),
            key.clone(),
            owner.clone(),
            Arc::clone(&lost),
            Arc::clone(&self.renewals),
        ));
        LeaseGuard {
            link: Arc::clone(&self.link),
            key,
            owner,
            lost,
            watchdog: Some(watchdog),
        }
    }
}

/// Renews the lease every third of its TTL until aborted or lost.
async fn watchdog(link: Arc<Link>, key: String, owner: String, lost: Arc<AtomicBool>, renewals: Arc<AtomicU64>) {
    let ttl = link.config().lease_ttl;
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    let mut last_renewed = Instant::now();
    loop {
        tokio::time::sleep(ttl / 3).await;
        let mut invocation = RENEW_LEASE.key(&key);
        invocation.arg(&owner).arg(ttl_ms);
        match link.script::<u8>(invocation).await {
            Ok(1) => {
                last_renewed = Instant::now();
                renewals.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {
                tracing::warn!("tokenkeeper-redis: the refresh lease was lost to another instance");
                lost.store(true, Ordering::Release);
                return;
            }
            // Unreachable for a whole TTL: Redis may have let it expire. Assume lost.
            Err(_) if last_renewed.elapsed() >= ttl => {
                lost.store(true, Ordering::Release);
                return;
            }
            Err(_) => {}
        }
    }
}

/// The lease while this instance holds it. Dropping it stops the watchdog and
/// releases the lease in the background (also on a panic or a cancelled caller).
pub(crate) struct LeaseGuard {
    link: Arc<Link>,
    key: String,
    owner: String,
    lost: Arc<AtomicBool>,
    watchdog: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for LeaseGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseGuard")
            .field("key", &self.key)
            .field("lost", &self.is_lost())
            .finish_non_exhaustive()
    }
}

impl LeaseGuard {
    /// Whether the lease may now belong to another instance.
    pub(crate) fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }

    /// Releases the lease now and waits for Redis to confirm (bounded by the timeout).
    #[cfg(test)]
    pub(crate) async fn release(mut self) -> Result<bool, RedisError> {
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.abort();
        }
        release(&self.link, &self.key, &self.owner).await
    }
}

async fn release(link: &Link, key: &str, owner: &str) -> Result<bool, RedisError> {
    let mut invocation = RELEASE_LEASE.key(key);
    invocation.arg(owner).arg(link.bus_channel());
    Ok(link.script::<u8>(invocation).await? == 1)
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        let Some(watchdog) = self.watchdog.take() else {
            return; // released explicitly
        };
        watchdog.abort();
        let (link, key, owner) = (
            Arc::clone(&self.link),
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.owner),
        );
        // Without a runtime (shutdown), the lease simply expires after its TTL.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = release(&link, &key, &owner).await;
            });
        }
    }
}
