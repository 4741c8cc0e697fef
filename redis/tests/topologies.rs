//! Sentinel and Cluster by configuration, against real servers on loopback ports:
//! - Sentinel: a primary, a replica and a sentinel; the primary is killed and the
//!   sentinel promotes the replica; the SDK's calls keep succeeding throughout, the
//!   link asks the sentinel for the new primary and the fleet shares through it again.
//! - Cluster: three masters (`cluster-enabled yes`, no replicas); the shared token flow
//!   (one request, the other instance adopts) and a session record work, and every
//!   key of one identity sits on one node (one hash slot, so the Lua scripts run).

#[path = "support/fleet_instance.rs"]
mod fleet_instance;
#[path = "support/redis_server.rs"]
mod redis_server;

use redis_server::RedisServer;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokenkeeper::{AuthClient, ExposeSecret, SecretString};
use tokenkeeper_devserver::{DevServer, DevServerConfig};
use tokenkeeper_redis::{RedisConfig, RedisFleet};

fn client(server: &DevServer, config: RedisConfig) -> (Arc<RedisFleet>, AuthClient) {
    fleet_instance::fleet_instance(server, config.key_prefix("topo"))
}

/// Polls `check` every 50 ms for up to `limit`.
fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_is_re_resolved_and_calls_keep_succeeding() {
    let Some(mut primary) = RedisServer::start() else {
        return;
    };
    let port = primary.port().to_string();
    let replica = RedisServer::start_with(None, &["--replicaof", "127.0.0.1", &port]).unwrap();
    let monitor = format!(
        "sentinel monitor mymaster 127.0.0.1 {port} 1\n\
         sentinel down-after-milliseconds mymaster 500\n\
         sentinel failover-timeout mymaster 2000\n"
    );
    let sentinel = RedisServer::start_with(Some(&monitor), &["--sentinel"]).unwrap();
    wait_for("the replica syncs", Duration::from_secs(20), || {
        replica.cli(&["INFO", "replication"]).contains("master_link_status:up")
    });
    wait_for("the sentinel knows the replica", Duration::from_secs(20), || {
        sentinel
            .cli(&["SENTINEL", "replicas", "mymaster"])
            .contains(&replica.port().to_string())
    });
    let server = DevServer::start(DevServerConfig::default()).await.unwrap();
    let config = || RedisConfig::sentinel([sentinel.url()], "mymaster").operation_timeout(Duration::from_millis(300));
    let (fleet, a) = client(&server, config());
    let session = a.client_credentials_session();
    let first = session.access_token().await.unwrap();
    wait_for("the shared token reaches the replica", Duration::from_secs(10), || {
        replica.cli(&["DBSIZE"]) != "0"
    });

    primary.kill();
    let _ = sentinel.cli(&["SENTINEL", "FAILOVER", "mymaster"]);
    // Calls keep succeeding while Redis fails over: the cached token, then a renewal
    // the instance makes alone.
    session.invalidate();
    let during = session.access_token().await.expect("a token while the primary is gone");
    assert_ne!(during.expose_secret(), first.expose_secret());
    wait_for("the sentinel promotes the replica", Duration::from_secs(30), || {
        sentinel
            .cli(&["SENTINEL", "get-master-addr-by-name", "mymaster"])
            .contains(&replica.port().to_string())
    });
    // The link asks the sentinel again and reaches the new primary.
    let started = Instant::now();
    while fleet.ping().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the fleet never reached the new primary"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(replica.cli(&["INFO", "replication"]).contains("role:master"));
    session.invalidate();
    let after = session.access_token().await.unwrap();
    // Sharing resumed: a second instance, resolving through the sentinel, adopts it.
    let requests = server.stats().token_requests;
    let (_, b) = client(&server, config());
    let adopted = b.client_credentials_session().access_token().await.unwrap();
    assert_eq!(
        adopted.expose_secret(),
        after.expose_secret(),
        "b adopts a's token from the new primary"
    );
    assert_eq!(server.stats().token_requests, requests, "no request of b's own");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_cluster_shares_tokens_and_keeps_each_identity_in_one_slot() {
    let args = [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes-{port}.conf",
        "--cluster-node-timeout",
        "2000",
        "--cluster-port",
        "{bus_port}",
    ];
    let Some(first) = RedisServer::start_with(None, &args) else {
        return;
    };
    let nodes = [
        first,
        RedisServer::start_with(None, &args).unwrap(),
        RedisServer::start_with(None, &args).unwrap(),
    ];
    let addresses: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())).collect();
    let created = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addresses)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .expect("redis-cli --cluster create");
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stdout));
    wait_for("the cluster is ok", Duration::from_secs(20), || {
        nodes
            .iter()
            .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
    });

    let server = DevServer::start(DevServerConfig::default()).await.unwrap();
    let urls = || nodes.iter().map(|n| n.url()).collect::<Vec<_>>();
    let (fleet_a, a) = client(&server, RedisConfig::cluster(urls()));
    let (_, b) = client(&server, RedisConfig::cluster(urls()));
    fleet_a.ping().await.unwrap();
    let token = a.client_credentials_session().access_token().await.unwrap();
    let adopted = b.client_credentials_session().access_token().await.unwrap();
    assert_eq!(adopted.expose_secret(), token.expose_secret(), "b adopts a's token");
    assert_eq!(server.stats().token_requests, 1, "one token request for the fleet");
    // A session record: a compare-and-set on a's side, read back on b's.
    a.login("alice", SecretString::from("alice-password")).await.unwrap();
    b.restore("alice").await.expect("b resumes alice from the cluster");

    // Every key of one identity (record, lease, token) lives on one node.
    let mut tags = std::collections::HashMap::<String, Vec<usize>>::new();
    for (index, node) in nodes.iter().enumerate() {
        for key in node.cli(&["--scan", "--pattern", "topo:*"]).lines() {
            if let Some(tag) = key.split(['{', '}']).nth(1) {
                tags.entry(tag.to_owned()).or_default().push(index);
            }
        }
    }
    assert!(!tags.is_empty(), "the identities' keys are in the cluster");
    for (tag, on) in &tags {
        assert!(on.windows(2).all(|w| w[0] == w[1]), "{tag} spread over nodes {on:?}");
    }
}
