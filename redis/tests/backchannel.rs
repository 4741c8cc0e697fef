//! OIDC Back-Channel Logout across a fleet: two instances (each its own `AuthClient`
//! and its own Redis connection) and a real `redis-server`. A valid logout token
//! received by one instance ends the session on both and removes the record; a
//! forged signature, a wrong `aud`, missing `events`, a `nonce` end nothing on
//! either; a `jti` accepted by one instance is refused as a replay by the other.

#[path = "support/redis_server.rs"]
mod redis_server;

use redis_server::{eventually, RedisServer};
use std::sync::Arc;
use std::time::Duration;
use tokenkeeper::oidc::{BackChannelLogout, LogoutRejection};
use tokenkeeper::{AuthClient, AuthConfig, JwtCheck, RecordStore, SecretString};
use tokenkeeper_devserver::{session_id, DevServer, DevServerConfig, LogoutTokenFault};
use tokenkeeper_redis::{RedisConfig, RedisFleet, Sealer, SealingKey};

const APP: &str = "oidc-app";
const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

struct Instance {
    fleet: Arc<RedisFleet>,
    client: AuthClient,
    receiver: BackChannelLogout,
}

async fn instance(server: &DevServer, redis: &RedisServer) -> Instance {
    let sealer = Sealer::new(SealingKey::new("k1", &[9; 32]).unwrap(), []).unwrap();
    let fleet = RedisFleet::connect(RedisConfig::single(redis.url()).key_prefix("bcl"), sealer).unwrap();
    let config = AuthConfig::discover(&server.issuer(), APP)
        .await
        .expect("discovery")
        .scopes(["openid"]);
    let client = AuthClient::builder(config)
        .record_store(fleet.clone())
        .refresh_lock(fleet.clone())
        .build()
        .unwrap();
    client
        .login("alice", SecretString::from("alice-password"))
        .await
        .unwrap();
    let receiver = fleet.backchannel_logout(&client).unwrap();
    Instance {
        fleet,
        client,
        receiver,
    }
}

fn form(token: &str) -> Vec<u8> {
    // A JWS is base64url and dots: nothing to escape.
    format!("logout_token={token}").into_bytes()
}

/// Waits, bounded, until both fleets' subscriptions deliver.
async fn subscribed(instances: &[&Instance]) {
    for instance in instances {
        eventually("the fleet subscription", || !instance.fleet.is_redis_down()).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_logout_token_at_one_instance_ends_the_session_on_every_instance() {
    let Some(redis) = RedisServer::start() else { return };
    let server = DevServer::start(DevServerConfig::default()).await.unwrap();
    let a = instance(&server, &redis).await;
    let b = instance(&server, &redis).await;
    subscribed(&[&a, &b]).await;
    let key = a.client.session("alice").unwrap().store_key().to_owned();
    assert!(RecordStore::read(&*a.fleet, &key).await.unwrap().is_some());

    let sid = session_id(APP, "alice");
    let forged = [
        (LogoutTokenFault::BadSignature, JwtCheck::Signature),
        (LogoutTokenFault::WrongAudience, JwtCheck::Audience),
        (LogoutTokenFault::MissingEvents, JwtCheck::Events),
        (LogoutTokenFault::WithNonce, JwtCheck::Nonce),
    ];
    for (fault, check) in forged {
        let token = server.logout_token(APP, None, Some(&sid), Some(fault));
        let outcome = a.receiver.handle(FORM, &form(&token)).await;
        assert_eq!(outcome.status, 400, "{fault:?}");
        assert!(
            matches!(&outcome.result, Err(LogoutRejection::InvalidToken(e)) if e.check == check),
            "{fault:?}: {outcome:?}"
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(a.client.session("alice").is_some() && b.client.session("alice").is_some());

    let token = server.logout_token(APP, None, Some(&sid), None);
    let outcome = a.receiver.handle(FORM, &form(&token)).await;
    assert_eq!(outcome.status, 200, "{:?}", outcome.result);
    assert_eq!(outcome.result.unwrap().ended, 2, "both instances were told");
    eventually("alice's session ends on a", || a.client.session("alice").is_none()).await;
    eventually("alice's session ends on b", || b.client.session("alice").is_none()).await;
    let mut removed = false;
    for _ in 0..200 {
        if RecordStore::read(&*b.fleet, &key).await.unwrap().is_none() {
            removed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(removed, "the record is removed");

    // The same token at the other instance is a replay: the jti is remembered in Redis.
    b.client
        .login("alice", SecretString::from("alice-password"))
        .await
        .unwrap();
    let replay = b.receiver.handle(FORM, &form(&token)).await;
    assert_eq!(replay.status, 400);
    assert!(
        matches!(&replay.result, Err(LogoutRejection::InvalidToken(e)) if e.check == JwtCheck::Replayed),
        "{replay:?}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(b.client.session("alice").is_some(), "the replay ended nothing");
}

#[tokio::test]
async fn with_redis_down_a_logout_token_fails_closed() {
    let Some(mut redis) = RedisServer::start() else { return };
    let server = DevServer::start(DevServerConfig::default()).await.unwrap();
    let a = instance(&server, &redis).await;
    redis.kill();
    let token = server.logout_token(APP, Some("alice"), None, None);
    let outcome = a.receiver.handle(FORM, &form(&token)).await;
    assert_eq!(outcome.status, 400);
    assert!(
        matches!(outcome.result, Err(LogoutRejection::Unavailable(_))),
        "{outcome:?}"
    );
}
