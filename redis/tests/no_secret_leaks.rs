//! What `tokenkeeper-redis` adds that is secret — sealing keys, refresh-token records,
//! shared access tokens — never appears in `Debug` output, errors or Redis itself.

#[path = "support/redis_server.rs"]
mod redis_server;

use redis_server::RedisServer;
use std::time::{Duration, SystemTime};
use tokenkeeper::{RecordStore, SecretString, SharedToken, SharedTokens};
use tokenkeeper_redis::{RedisConfig, RedisFleet, Sealer, SealingKey};

const KEY_BYTES: [u8; 32] = *b"sealing-key-bytes-0123456789abcd";

#[tokio::test]
async fn keys_records_and_shared_tokens_stay_sealed_and_unprinted() {
    let sealer = Sealer::new(SealingKey::new("k1", &KEY_BYTES).unwrap(), []).unwrap();
    let printed = format!("{sealer:?}");
    assert!(!printed.contains("sealing-key-bytes"), "{printed}");
    let Some(server) = RedisServer::start() else { return };
    let fleet = RedisFleet::connect(RedisConfig::single(server.url()).key_prefix("leak"), sealer).unwrap();

    let record = SecretString::from(r#"{"tokenkeeper":1,"refresh_token":"refresh-secret-0001"}"#);
    fleet
        .compare_and_set("user=alice-secretless-key", None, &record, None)
        .await
        .unwrap();
    let token = SharedToken {
        access_token: SecretString::from("access-secret-0002"),
        expires_at: SystemTime::now() + Duration::from_secs(600),
        scope: None,
    };
    fleet.publish("user=alice-secretless-key", &token).await.unwrap();
    assert!(!format!("{fleet:?}").contains("secret-000"));

    // Everything Redis holds, dumped: no secret and no user name in clear.
    let mut dump = String::new();
    for key in server.cli(&["KEYS", "*"]).lines() {
        dump.push_str(key);
        dump.push_str(&server.cli(&["HGETALL", key]));
    }
    assert!(dump.contains("tk1.k1."), "values are sealed: {dump}");
    for secret in [
        "refresh-secret-0001",
        "access-secret-0002",
        "alice",
        "sealing-key-bytes",
    ] {
        assert!(!dump.contains(secret), "{secret} in Redis: {dump}");
    }
    // And it reads back through the seal.
    let read = SharedTokens::read(fleet.as_ref(), "user=alice-secretless-key")
        .await
        .unwrap()
        .unwrap();
    assert!(!format!("{read:?}").contains("access-secret"));
}
