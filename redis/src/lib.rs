//! `tokenkeeper-redis`: a server fleet's tokens on Redis — one token per identity
//! across every instance, a fenced refresh lease, fleet-wide revocation and logout.
//!
//! Server-only: phones never compile it, and the core crate does not depend on it.
//!
//! | module | what |
//! | --- | --- |
//! | `config` | [`RedisConfig`]: single server, Sentinel or Cluster; key prefix; time bounds |
//! | `tokenkeeper::seal` | [`Sealer`]: AES-256-GCM on `ring`, app-supplied keys with ids, rotation (in the core, shared with its saved sign-ins) |
//! | `link` | the connection: bounded calls, reconnection with backoff, [`FleetEvent`]s |
//! | `bus` | the fleet's pub/sub channel, fanned out inside the instance |
//! | `scripts` | the Lua compare-and-set / compare-and-delete / lease scripts |
//! | `store` | sealed records with a revision and a TTL ending with the token |
//! | `lease` | the refresh lease: `SET NX PX`, watchdog renewal, compare-and-delete release |
//! | `seam` | the core's `RecordStore` and `RefreshLock` on all of the above |
//! | `tokens` | the core's `SharedTokens`: each identity's access token, shared by the fleet |
//! | `backchannel` | OIDC back-channel logout fleet-wide: `jti`s in Redis, the logout fanned out |
//!
//! # Use
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use tokenkeeper::{AuthClient, AuthConfig};
//! use tokenkeeper_redis::{RedisConfig, RedisFleet, Sealer, SealingKey};
//!
//! // 32 bytes from the app's secret manager; the id names the key in each record.
//! let key = SealingKey::new("2026-12", &[0u8; 32])?;
//! let fleet = RedisFleet::connect(RedisConfig::single("redis://127.0.0.1:6379"), Sealer::new(key, [])?)?;
//! let client = AuthClient::builder(AuthConfig::new("https://as.example.com/token", "portal"))
//!     .record_store(fleet.clone())
//!     .refresh_lock(fleet.clone())
//!     .shared_tokens(fleet.clone())
//!     .build()?;
//! // logout(), invalidate() and back-channel logouts reach this instance's sessions.
//! fleet.serve(&client);
//! # let _ = client; Ok(()) }
//! ```
//!
//! # Why `redis` (redis-rs) and not `fred`
//! Both are well kept, permissively licensed (BSD-3-Clause, MIT) and speak Cluster and
//! Sentinel. redis-rs is the client the Redis project maintains; its tokio
//! `ConnectionManager` reconnects with exponential backoff, re-subscribes after a
//! reconnection and carries RESP3 pub/sub pushes on the command socket (one socket per
//! instance); its `Script` type runs `EVALSHA` with a fallback to `EVAL`. That is all
//! this crate needs, in fewer dependencies than fred's own pooling, tracing and
//! metrics layers; with default features off it adds no TLS stack of its own.
//!
//! # Failure model
//! Every Redis call is bounded ([`RedisConfig::operation_timeout`]). A failed call
//! makes the instance act alone for that request (its in-process single flight:
//! correct, only more token requests), emits [`FleetEvent::RedisUnavailable`] once,
//! and [`FleetEvent::RedisRecovered`] when Redis answers again.

mod backchannel;
mod bus;
mod config;
mod events;
mod lease;
mod link;
mod scripts;
mod seam;
mod store;
mod tokens;

#[cfg(test)]
#[path = "../tests/support/redis_server.rs"]
mod redis_server;
#[cfg(test)]
mod tests;

pub use config::{RedisConfig, Topology};
pub use events::FleetEvent;
pub use link::RedisError;
// The sealing primitive lives in the core (saved sign-ins use it too); its names stay here.
pub use store::FleetStoreError;
pub use tokenkeeper::seal::{SealError, Sealer, SealingKey};

use std::sync::Arc;

/// One instance's membership of a fleet: its link to Redis, its bus and its sealer.
/// Create one per process and share it (`Arc`).
pub struct RedisFleet {
    link: Arc<link::Link>,
    records: store::Records,
    leases: lease::Leases,
    events: events::FleetEvents,
    known: Arc<seam::KnownKeys>,
    changes: tokio::sync::broadcast::Sender<String>,
    logouts: Arc<backchannel::LogoutClients>,
    /// A random id in this instance's `ended` messages, so it skips its own echo
    /// (its session already ended; a new sign-in since must not).
    instance: u64,
}

impl std::fmt::Debug for RedisFleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisFleet")
            .field("topology", &self.link.config().topology)
            .field("down", &self.link.is_down())
            .finish_non_exhaustive()
    }
}

impl RedisFleet {
    /// Joins the fleet. Returns at once, even while Redis is down: the link connects
    /// (and subscribes to the fleet channel) in the background and on first use.
    /// Call it inside a Tokio runtime (it spawns the subscriber).
    pub fn connect(config: RedisConfig, sealer: Sealer) -> Result<Arc<RedisFleet>, RedisError> {
        let events = events::FleetEvents::new();
        let bus = Arc::new(bus::Bus::new(&config.prefix));
        let link = link::Link::new(config, bus, events.clone())?;
        let sealer = Arc::new(sealer);
        let known = Arc::new(seam::KnownKeys::default());
        let changes = tokio::sync::broadcast::channel(1024).0;
        tokio::spawn(seam::forward_changes(
            link.bus().subscribe(),
            Arc::clone(&known),
            changes.clone(),
        ));
        let logouts = Arc::new(backchannel::LogoutClients::default());
        let mut id = [0u8; 8];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id)
            .map_err(|_| RedisError::Failed("no random numbers for the instance id".to_owned()))?;
        let instance = u64::from_le_bytes(id);
        tokio::spawn(backchannel::serve(
            link.bus().subscribe(),
            Arc::downgrade(&logouts),
            Arc::clone(&known),
            instance,
        ));
        let fleet = Arc::new(RedisFleet {
            records: store::Records::new(Arc::clone(&link), sealer),
            leases: lease::Leases::new(Arc::clone(&link)),
            link: Arc::clone(&link),
            events,
            known,
            changes,
            logouts,
            instance,
        });
        tokio::spawn(subscribe_with_backoff(link));
        Ok(fleet)
    }

    /// The fleet layer's events: Redis unavailable, Redis recovered.
    pub fn events(&self) -> tokio::sync::broadcast::Receiver<FleetEvent> {
        self.events.subscribe()
    }

    /// Whether the last Redis call failed.
    pub fn is_redis_down(&self) -> bool {
        self.link.is_down()
    }

    /// One `PING`, bounded by the operation timeout: a health check.
    pub async fn ping(&self) -> Result<(), RedisError> {
        self.link.query::<String>(&redis::cmd("PING")).await.map(drop)
    }
}

/// Subscribes to the fleet channel, retrying with backoff until it works once; the
/// connection manager re-subscribes by itself after every later reconnection.
async fn subscribe_with_backoff(link: Arc<link::Link>) {
    let mut attempt = 0;
    while link.subscribe_now().await.is_err() {
        tokio::time::sleep(link::backoff(attempt, link.config())).await;
        attempt = attempt.saturating_add(1);
    }
}
