//! Offline start and offline logout against a development server that is stopped
//! and started again on the same port: a restart with the server unreachable serves
//! the stored access token; a logout while it is down succeeds locally and the
//! revocation reaches the server once it is back.
mod common;

use common::*;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use tokenkeeper::{AuthClient, AuthConfig, AuthError, MemoryStore, StoreError, TokenStore};
use tokenkeeper_devserver::DevServerConfig;

/// A client on `store` (its config names the server, running or stopped).
fn client_on(config: AuthConfig, store: Arc<dyn TokenStore>) -> AuthClient {
    AuthClient::builder(config).store(store).build().unwrap()
}

fn stored_json(store: &dyn TokenStore, key: &str) -> serde_json::Value {
    let raw = store.load(key).unwrap().expect("a stored record");
    serde_json::from_str(raw.expose_secret()).unwrap()
}

#[tokio::test]
async fn a_cold_start_with_the_server_stopped_serves_the_stored_access_token() {
    let mut h = Harness::start().await;
    let store = Arc::new(MemoryStore::new());
    let config = h.config();
    let first = client_on(config.clone(), store.clone());
    let alice = first.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    let issued = value(&alice.access_token().await.unwrap());
    let key = alice.store_key().to_owned();
    assert_eq!(stored_json(store.as_ref(), &key)["access_token"], issued.as_str());
    drop((alice, first)); // the app exits

    h.server.stop().await;
    h.advance(600); // ten minutes later, still valid for 50

    let second = client_on(config.clone(), store.clone());
    let alice = second.restore("alice").await.expect("restored offline");
    let served = alice.access_token().await.unwrap();
    assert_eq!(value(&served), issued, "the stored token, with no token request");

    // Once it is due, the refresh runs in the background when the server is back.
    h.server.resume().await.unwrap();
    h.advance(3600 - 600 - 60);
    assert_eq!(
        value(&alice.access_token().await.unwrap()),
        issued,
        "still valid: served"
    );
    alice.wait_for_refresh().await;
    let refreshed = value(&alice.access_token().await.unwrap());
    assert_ne!(refreshed, issued);
    assert_eq!(h.grants("refresh_token"), 1, "one refresh, once it was due");
    assert_eq!(
        stored_json(store.as_ref(), &key)["access_token"],
        refreshed.as_str(),
        "every new access token is saved (the refresh token did not rotate)"
    );
}

#[tokio::test]
async fn with_offline_start_off_the_record_holds_no_access_token_and_a_cold_start_needs_the_server() {
    let mut h = Harness::start().await;
    let store = Arc::new(MemoryStore::new());
    let config = h.config().offline_start(false);
    let alice = client_on(config.clone(), store.clone())
        .login("alice", password(ALICE_PASSWORD))
        .await
        .unwrap();
    let record = stored_json(store.as_ref(), alice.store_key());
    assert!(record.get("access_token").is_none(), "{record}");
    assert!(record["refresh_token"].is_string());
    drop(alice);

    h.server.stop().await;
    let client = client_on(config, store);
    let error = client.restore("alice").await.unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
    let kept = client
        .session("alice")
        .expect("kept registered, to retry or log out offline");
    assert!(kept.cached_access_token().is_none());
}

#[tokio::test]
async fn an_expired_stored_access_token_is_never_served() {
    let mut h = Harness::start().await;
    let store = Arc::new(MemoryStore::new());
    let config = h.config();
    client_on(config.clone(), store.clone())
        .login("alice", password(ALICE_PASSWORD))
        .await
        .unwrap();
    h.server.stop().await;
    h.advance(3600);
    let client = client_on(config, store);
    let error = client.restore("alice").await.unwrap_err();
    assert!(matches!(error, AuthError::TemporarilyUnavailable { .. }), "{error:?}");
}

/// A store that refuses values over `limit` bytes, as Windows Credential Manager
/// refuses credentials over 2,560 bytes.
struct Capped {
    inner: MemoryStore,
    limit: usize,
}

impl TokenStore for Capped {
    fn load(&self, key: &str) -> Result<Option<SecretString>, StoreError> {
        self.inner.load(key)
    }
    fn save(&self, key: &str, value: &SecretString) -> Result<(), StoreError> {
        if value.expose_secret().len() > self.limit {
            return Err(StoreError(format!("longer than {} bytes", self.limit)));
        }
        self.inner.save(key, value)
    }
    fn remove(&self, key: &str) -> Result<(), StoreError> {
        self.inner.remove(key)
    }
}

#[tokio::test]
async fn a_store_too_small_for_the_access_token_still_gets_the_refresh_token() {
    // JWT-shaped access tokens are long; the record with one does not fit.
    let h = Harness::with(DevServerConfig {
        jwt_access_tokens: true,
        ..DevServerConfig::default()
    })
    .await;
    // Measured on an unlimited store: the record with the access token, and without.
    let plain = Arc::new(MemoryStore::new());
    let measured = client_on(h.config(), plain.clone())
        .login("bob", password("bob-password"))
        .await
        .unwrap();
    let full = plain.load(measured.store_key()).unwrap().unwrap().expose_secret().len();
    let token = value(&measured.access_token().await.unwrap()).len();
    let limit = full - token / 2;
    assert!(full - token + 64 < limit, "the record without the token fits");
    let store = Arc::new(Capped {
        inner: MemoryStore::new(),
        limit,
    });
    let events = EventLog::new();
    let client = AuthClient::builder(h.config())
        .store(store.clone())
        .event_listener(events.clone())
        .build()
        .unwrap();
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    let record = stored_json(store.as_ref(), alice.store_key());
    assert!(record.get("access_token").is_none(), "{record}");
    assert!(record["refresh_token"].is_string());
    assert_eq!(events.count("PersistFailed"), 0, "{:?}", events.names());
}
