//! One instance of a server fleet for the multi-instance tests (each its own
//! `AuthClient` and its own Redis link).

/// One instance of a server fleet: an `AuthClient` for the development server's demo
/// client whose records, refresh lock and shared tokens live in `config`'s Redis, and
/// which serves the fleet channel (fleet-wide logout and invalidate).
pub fn fleet_instance(
    server: &tokenkeeper_devserver::DevServer,
    config: tokenkeeper_redis::RedisConfig,
) -> (std::sync::Arc<tokenkeeper_redis::RedisFleet>, tokenkeeper::AuthClient) {
    use tokenkeeper_redis::{RedisFleet, Sealer, SealingKey};
    let sealer = Sealer::new(SealingKey::new("k1", &[3; 32]).expect("a valid test key"), []).expect("a sealer");
    let fleet = RedisFleet::connect(config, sealer).expect("a valid Redis config");
    let config = tokenkeeper::AuthConfig::new(server.token_endpoint(), "demo-client")
        .client_secret(tokenkeeper::SecretString::from("demo-secret"))
        .revocation_endpoint(server.revocation_endpoint());
    let client = tokenkeeper::AuthClient::builder(config)
        .record_store(fleet.clone())
        .refresh_lock(fleet.clone())
        .shared_tokens(fleet.clone())
        .build()
        .expect("a valid client config");
    fleet.serve(&client);
    (fleet, client)
}
