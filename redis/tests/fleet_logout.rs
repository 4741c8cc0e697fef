//! `logout()` and `invalidate()` fleet-wide: two instances (each its own `AuthClient`
//! and its own Redis connection) sharing one real `redis-server`. A logout on one ends
//! the session on the other, the record is removed once and the tokens are revoked
//! once; an `invalidate()` on one drops the other's cached token.

#[path = "support/fleet_instance.rs"]
mod fleet_instance;
#[path = "support/redis_server.rs"]
mod redis_server;

use fleet_instance::fleet_instance;
use redis_server::{eventually, RedisServer};
use std::sync::Arc;
use std::time::Duration;
use tokenkeeper::{AuthClient, ExposeSecret, RecordStore, SecretString};
use tokenkeeper_devserver::{DevServer, DevServerConfig};
use tokenkeeper_redis::{RedisConfig, RedisFleet};

struct Instance {
    fleet: Arc<RedisFleet>,
    client: AuthClient,
}

fn instance(server: &DevServer, redis: &RedisServer) -> Instance {
    let (fleet, client) = fleet_instance(server, RedisConfig::single(redis.url()).key_prefix("fl"));
    Instance { fleet, client }
}

/// Until both subscriptions deliver (a fresh link subscribes in the background).
async fn settled(instances: &[&Instance]) {
    for instance in instances {
        instance.fleet.ping().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_on_one_instance_ends_the_session_on_every_instance_and_revokes_once() {
    let Some(redis) = RedisServer::start() else { return };
    let server = DevServer::start(DevServerConfig::default()).await.unwrap();
    let a = instance(&server, &redis);
    let b = instance(&server, &redis);
    settled(&[&a, &b]).await;
    let alice_a = a
        .client
        .login("alice", SecretString::from("alice-password"))
        .await
        .unwrap();
    let alice_b = b
        .client
        .restore("alice")
        .await
        .expect("b resumes from the shared record");
    let key = alice_a.store_key().to_owned();
    let stored = RecordStore::read(&*a.fleet, &key).await.unwrap().expect("the record");
    assert!(stored.value.expose_secret().contains("refresh"), "a session record");
    let revocations = server.stats().revocations.len();

    alice_a.logout().await.unwrap();
    eventually("alice's session ends on b", || b.client.session("alice").is_none()).await;
    assert_eq!(alice_b.state(), tokenkeeper::SessionState::LoggedOut);
    assert!(
        RecordStore::read(&*b.fleet, &key).await.unwrap().is_none(),
        "the record is gone"
    );
    let revoked_by_a = server.stats().revocations.len() - revocations;
    assert!(revoked_by_a >= 1, "a revoked the tokens");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        server.stats().revocations.len() - revocations,
        revoked_by_a,
        "b revoked nothing again"
    );
    assert_eq!(server.live_refresh_tokens("alice"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidate_on_one_instance_drops_the_shared_token_on_every_instance() {
    let Some(redis) = RedisServer::start() else { return };
    let server = DevServer::start(DevServerConfig::default()).await.unwrap();
    let a = instance(&server, &redis);
    let b = instance(&server, &redis);
    settled(&[&a, &b]).await;
    let (session_a, session_b) = (
        a.client.client_credentials_session(),
        b.client.client_credentials_session(),
    );
    let first = session_a.access_token().await.unwrap();
    let adopted = session_b.access_token().await.unwrap();
    assert_eq!(adopted.expose_secret(), first.expose_secret(), "b adopts a's token");
    assert_eq!(server.stats().token_requests, 1);

    session_a.invalidate();
    eventually("b drops the invalidated token", || {
        session_b.cached_access_token().is_none()
    })
    .await;
    let renewed = session_b.access_token().await.unwrap();
    assert_ne!(renewed.expose_secret(), first.expose_secret());
    assert_eq!(server.stats().token_requests, 2, "one new token for the fleet");
    let adopted = session_a.access_token().await.unwrap();
    assert_eq!(
        adopted.expose_secret(),
        renewed.expose_secret(),
        "a adopts b's new token"
    );
    assert_eq!(server.stats().token_requests, 2);
}
