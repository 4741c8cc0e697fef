//! [`RedisConfig`]: which Redis (single server, Sentinel, Cluster), the key prefix
//! that separates fleets sharing one Redis, and the time bounds of every call.

use std::time::Duration;

/// Where Redis is.
#[derive(Clone, Debug)]
pub enum Topology {
    /// One server (or a managed endpoint that fails over behind one address):
    /// `redis://127.0.0.1:6379`, `rediss://…` is not enabled in this build.
    Single(String),
    /// Sentinel: the sentinels' URLs and the monitored service name; the primary is
    /// resolved through them when the link first connects.
    Sentinel {
        /// `redis://host:26379` of each sentinel.
        sentinels: Vec<String>,
        /// The `sentinel monitor` name of the primary.
        service: String,
    },
    /// Redis Cluster: any nodes' URLs. Each identity's keys share one hash slot
    /// (`{…}` hash tags), so its Lua scripts run on one node.
    Cluster(Vec<String>),
}

/// How an instance talks to the fleet's Redis.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    pub(crate) topology: Topology,
    pub(crate) prefix: String,
    pub(crate) operation_timeout: Duration,
    pub(crate) reconnect_min_delay: Duration,
    pub(crate) reconnect_max_delay: Duration,
    pub(crate) lease_ttl: Duration,
    pub(crate) lease_wait: Duration,
}

impl RedisConfig {
    /// One Redis server at `url` (`redis://host:port[/db]`).
    pub fn single(url: impl Into<String>) -> Self {
        Self::with_topology(Topology::Single(url.into()))
    }

    /// A Redis Cluster reached through any of `nodes`.
    pub fn cluster(nodes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self::with_topology(Topology::Cluster(nodes.into_iter().map(Into::into).collect()))
    }

    /// The primary that `sentinels` name for `service`.
    pub fn sentinel(sentinels: impl IntoIterator<Item = impl Into<String>>, service: impl Into<String>) -> Self {
        Self::with_topology(Topology::Sentinel {
            sentinels: sentinels.into_iter().map(Into::into).collect(),
            service: service.into(),
        })
    }

    fn with_topology(topology: Topology) -> Self {
        RedisConfig {
            topology,
            prefix: "tokenkeeper".to_owned(),
            operation_timeout: Duration::from_millis(500),
            reconnect_min_delay: Duration::from_millis(100),
            reconnect_max_delay: Duration::from_secs(5),
            lease_ttl: Duration::from_secs(10),
            lease_wait: Duration::from_secs(15),
        }
    }

    /// The prefix of every key and of the fleet's channel (default `tokenkeeper`):
    /// fleets sharing one Redis use distinct prefixes.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The longest any one Redis call may take (default 500 ms). Past it the call is
    /// an error and the instance goes on without the fleet for that request.
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Reconnection backoff: from `min` doubling up to `max` (defaults 100 ms, 5 s).
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect_min_delay = min;
        self.reconnect_max_delay = max.max(min);
        self
    }

    /// The refresh lease's time to live (default 10 s). The holder's watchdog renews
    /// it every third of that while its token request runs; if the holder dies, another
    /// instance takes over at most this long after the last renewal.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl.max(Duration::from_millis(30));
        self
    }

    /// How long an instance waits for another's lease before it makes its own token
    /// request (default 15 s; should exceed the token endpoint's usual latency).
    pub fn lease_wait(mut self, wait: Duration) -> Self {
        self.lease_wait = wait;
        self
    }
}
