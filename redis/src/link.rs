//! The link to Redis: one multiplexed connection per instance (single server,
//! Sentinel-resolved primary, or Redis Cluster), every call bounded by a timeout,
//! reconnection with exponential backoff, and one event when Redis fails and one when
//! it answers again.
//!
//! Why bounded: a Redis that is down, partitioned or stopped (`SIGSTOP`) must never
//! hold a token request: a call that times out is an error the caller treats as "no
//! fleet this time" and does its own single flight.
//!
//! Pub/sub messages arrive on the same connection (RESP3 push messages) and are
//! handed to the [`Bus`](crate::bus::Bus); the connection manager subscribes again
//! after each reconnection. Not here: what the keys and messages mean (`store`,
//! `lease`).

use crate::bus::Bus;
use crate::config::{RedisConfig, Topology};
use crate::events::{FleetEvent, FleetEvents};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, Pipeline, ProtocolVersion, PushInfo, RedisFuture, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex as AsyncMutex;

/// Why a Redis call did not give an answer. Never carries a value or a key's secret part.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// No answer within [`RedisConfig::operation_timeout`].
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    /// The connection failed or Redis answered with an error.
    #[error("Redis failed: {0}")]
    Failed(String),
    /// Redis answered something tokenkeeper did not write (a foreign or corrupt value).
    #[error("unexpected Redis reply: {0}")]
    Protocol(&'static str),
}

impl From<redis::RedisError> for RedisError {
    fn from(error: redis::RedisError) -> Self {
        // The client's message names the command and the server's error, never a value.
        RedisError::Failed(format!("{:?}: {}", error.kind(), error.detail().unwrap_or("")))
    }
}

/// The connection, whichever topology it reaches.
#[derive(Clone)]
enum Conn {
    Manager(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Manager(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Manager(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Manager(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// One instance's link to Redis, shared by its store, leases and bus.
pub(crate) struct Link {
    config: RedisConfig,
    /// `None` until the first successful connection (Cluster and Sentinel resolve
    /// their nodes then); a single server's manager is created at once, lazily
    /// connected, so an instance starts while Redis is down.
    conn: AsyncMutex<Option<Conn>>,
    bus: Arc<Bus>,
    events: FleetEvents,
    /// Whether the last call failed: events fire on the edges only.
    down: AtomicBool,
}

impl Link {
    pub(crate) fn new(config: RedisConfig, bus: Arc<Bus>, events: FleetEvents) -> Result<Arc<Link>, RedisError> {
        let conn = match &config.topology {
            Topology::Single(url) => Some(Conn::Manager(manager(&config, url.as_str(), &bus)?)),
            Topology::Cluster(_) | Topology::Sentinel { .. } => None,
        };
        Ok(Arc::new(Link {
            config,
            conn: AsyncMutex::new(conn),
            bus,
            events,
            down: AtomicBool::new(false),
        }))
    }

    pub(crate) fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// The fleet's pub/sub channel, which every script announces its change on.
    pub(crate) fn bus_channel(&self) -> &str {
        self.bus.channel()
    }

    /// The instance's bus.
    pub(crate) fn bus(&self) -> &Arc<Bus> {
        &self.bus
    }

    /// Runs `cmd`, bounded by the operation timeout.
    pub(crate) async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, RedisError> {
        let timeout = self.config.operation_timeout;
        let outcome = match tokio::time::timeout(timeout, async {
            let mut conn = self.conn().await?;
            cmd.query_async::<T>(&mut conn).await.map_err(RedisError::from)
        })
        .await
        {
            Ok(result) => result,
            Err(_) => Err(RedisError::Timeout(timeout)),
        };
        self.note(&outcome);
        self.re_resolve_after(&outcome).await;
        outcome
    }

    /// Runs a Lua script (EVALSHA, loading it on first use), bounded by the timeout.
    pub(crate) async fn script<T: FromRedisValue>(
        &self,
        invocation: redis::ScriptInvocation<'_>,
    ) -> Result<T, RedisError> {
        let timeout = self.config.operation_timeout;
        let outcome = match tokio::time::timeout(timeout, async {
            let mut conn = self.conn().await?;
            invocation.invoke_async::<T>(&mut conn).await.map_err(RedisError::from)
        })
        .await
        {
            Ok(result) => result,
            Err(_) => Err(RedisError::Timeout(timeout)),
        };
        self.note(&outcome);
        self.re_resolve_after(&outcome).await;
        outcome
    }

    /// Sentinel: after a failed call, the next one asks the sentinels for the primary
    /// again. The manager would otherwise keep reconnecting to the address it first
    /// resolved: after a failover, a dead server or a demoted replica (`READONLY`).
    /// Bounded like every call: the lock is only contended by a connect in progress,
    /// which is itself bounded by the caller's timeout.
    async fn re_resolve_after<T>(&self, outcome: &Result<T, RedisError>) {
        if outcome.is_err() && matches!(self.config.topology, Topology::Sentinel { .. }) {
            if let Ok(mut slot) = tokio::time::timeout(self.config.operation_timeout, self.conn.lock()).await {
                *slot = None;
            }
        }
    }

    /// Whether the last call to Redis failed.
    pub(crate) fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    fn note<T>(&self, outcome: &Result<T, RedisError>) {
        match outcome {
            Ok(_) => {
                if self.down.swap(false, Ordering::AcqRel) {
                    tracing::info!("tokenkeeper-redis: Redis answers again; fleet sharing resumes");
                    self.events.emit(FleetEvent::RedisRecovered);
                }
            }
            Err(error) => {
                if !self.down.swap(true, Ordering::AcqRel) {
                    tracing::warn!(%error, "tokenkeeper-redis: Redis unavailable; each instance uses its own single flight");
                    self.events.emit(FleetEvent::RedisUnavailable {
                        reason: error.to_string(),
                    });
                    // Messages may be lost while the link is down: waiters re-read.
                    self.bus.resync();
                }
            }
        }
    }

    /// The connection, established (and subscribed) on first use.
    async fn conn(&self) -> Result<Conn, RedisError> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let mut conn = match &self.config.topology {
            Topology::Single(url) => Conn::Manager(manager(&self.config, url.as_str(), &self.bus)?),
            Topology::Sentinel { sentinels, service } => {
                let mut sentinel = redis::sentinel::SentinelClient::build(
                    sentinels.clone(),
                    service.clone(),
                    None,
                    redis::sentinel::SentinelServerType::Master,
                )?;
                let primary = sentinel.async_get_client().await?;
                let info = primary.get_connection_info().clone();
                Conn::Manager(manager_for(&self.config, info, &self.bus)?)
            }
            Topology::Cluster(nodes) => {
                let bus = Arc::clone(&self.bus);
                let client = redis::cluster::ClusterClient::builder(nodes.clone())
                    .use_protocol(ProtocolVersion::RESP3)
                    .connection_timeout(self.config.operation_timeout)
                    .response_timeout(self.config.operation_timeout)
                    .push_sender(move |info: PushInfo| {
                        bus.on_push(&info);
                        Ok::<(), redis::aio::SendError>(())
                    })
                    .build()?;
                Conn::Cluster(client.get_async_connection().await?)
            }
        };
        subscribe(&mut conn, self.bus.channel()).await?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Subscribes the single-server manager created in [`Link::new`].
    pub(crate) async fn subscribe_now(&self) -> Result<(), RedisError> {
        let timeout = self.config.operation_timeout;
        let outcome = match tokio::time::timeout(timeout, async {
            let mut conn = self.conn().await?;
            subscribe(&mut conn, self.bus.channel()).await
        })
        .await
        {
            Ok(result) => result,
            Err(_) => Err(RedisError::Timeout(timeout)),
        };
        self.note(&outcome);
        outcome
    }
}

async fn subscribe(conn: &mut Conn, channel: &str) -> Result<(), RedisError> {
    match conn {
        Conn::Manager(c) => c.subscribe(channel).await?,
        Conn::Cluster(c) => c.subscribe(channel).await?,
    }
    Ok(())
}

fn manager(config: &RedisConfig, url: &str, bus: &Arc<Bus>) -> Result<ConnectionManager, RedisError> {
    let client = redis::Client::open(url)?;
    manager_for(config, client.get_connection_info().clone(), bus)
}

fn manager_for(
    config: &RedisConfig,
    info: redis::ConnectionInfo,
    bus: &Arc<Bus>,
) -> Result<ConnectionManager, RedisError> {
    // RESP3 carries pub/sub pushes on the command connection: one socket per instance.
    let redis_info = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
    let client = redis::Client::open(info.set_redis_settings(redis_info))?;
    let bus = Arc::clone(bus);
    let manager_config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(config.operation_timeout))
        .set_response_timeout(Some(config.operation_timeout))
        .set_min_delay(config.reconnect_min_delay)
        .set_max_delay(config.reconnect_max_delay)
        // One quick attempt per call: the caller's own timeout bounds the wait, and the
        // next call tries again (with the manager's backoff between attempts).
        .set_number_of_retries(1)
        .set_push_sender(move |info: PushInfo| {
            bus.on_push(&info);
            Ok::<(), redis::aio::SendError>(())
        })
        .set_automatic_resubscription();
    Ok(ConnectionManager::new_lazy_with_config(client, manager_config)?)
}

/// Keeps a bound on the time between attempts while Redis stays down.
pub(crate) fn backoff(attempt: u32, config: &RedisConfig) -> Duration {
    let factor = 1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX);
    config
        .reconnect_min_delay
        .saturating_mul(factor)
        .min(config.reconnect_max_delay)
}
