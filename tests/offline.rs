//! Offline start and offline logout against a development server that is stopped
//! and started again on the same port: a restart with the server unreachable serves
//! the stored access token; a logout while it is down succeeds locally and the
//! revocation reaches the server once it is back.
mod common;

use common::*;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::time::Duration;
use tokenkeeper::{AuthClient, AuthConfig, AuthError, DpopMode, MemoryStore, StoreError, TokenStore};
use tokenkeeper_devserver::{DevServerConfig, DpopSpec};

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
    let first_token = alice.access_token().await.unwrap();
    let issued = value(&first_token);
    let granted: Vec<String> = first_token.scopes().map(str::to_owned).collect();
    assert!(!granted.is_empty(), "the server granted scopes");
    let key = alice.store_key().to_owned();
    assert_eq!(stored_json(store.as_ref(), &key)["access_token"], issued.as_str());
    drop((alice, first, first_token)); // the app exits

    h.server.stop().await;
    h.advance(600); // ten minutes later, still valid for 50

    let second = client_on(config.clone(), store.clone());
    let alice = second.restore("alice").await.expect("restored offline");
    let served = alice.access_token().await.unwrap();
    assert_eq!(value(&served), issued, "the stored token, with no token request");
    assert_eq!(
        served.scopes().collect::<Vec<_>>(),
        granted,
        "served with the scopes the server granted, as stored"
    );

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

/// Signs alice in on `store`; returns the client, her session and her refresh token.
async fn alice_on(h: &Harness, store: Arc<MemoryStore>) -> (AuthClient, Arc<tokenkeeper::Session>, String) {
    let client = client_on(h.config(), store.clone());
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    let refresh = stored_refresh_token(store.as_ref(), alice.store_key()).expect("stored");
    (client, alice, refresh)
}

fn revocations_of(h: &Harness, token: &str) -> usize {
    h.server.stats().revocations.iter().filter(|r| r.token == token).count()
}

#[tokio::test]
async fn a_logout_with_the_server_stopped_succeeds_and_the_revocation_is_sent_once_it_is_back() {
    let mut h = Harness::start().await;
    let store = Arc::new(MemoryStore::new());
    let (client, alice, refresh) = alice_on(&h, store.clone()).await;
    let key = alice.store_key().to_owned();
    let queued = format!("{key}#revoke");

    h.server.stop().await;
    alice.logout().await.expect("a logout always succeeds locally");
    assert!(client.session("alice").is_none());
    assert!(store.load(&key).unwrap().is_none(), "the session entry is gone");
    assert!(
        store.load(&queued).unwrap().is_some(),
        "the revocation is queued in the store"
    );
    // The timer's attempts (30 s doubling, on the manual clock) all met a stopped server.
    until(|| h.clock.sleeps().contains(&Duration::from_secs(30 * 128))).await;

    h.server.resume().await.unwrap();
    assert_eq!(revocations_of(&h, &refresh), 0);
    // Any answer from the token endpoint shows the server is back. (The timer's last
    // attempt may still be meeting the stopped server when the first answer comes;
    // then the next answer sends it.)
    let bob = client.login("bob", password("bob-password")).await.unwrap();
    for _ in 0..100 {
        if revocations_of(&h, &refresh) > 0 {
            break;
        }
        tokio::task::yield_now().await;
        bob.refresh().await.unwrap();
    }
    until(|| revocations_of(&h, &refresh) == 1).await;
    until(|| store.load(&queued).unwrap().is_none()).await;
    assert!(!h.server.refresh_token_is_live(&refresh), "revoked at the server");
    let error = client.restore("alice").await.unwrap_err();
    assert!(matches!(error, AuthError::ReauthenticationRequired { .. }), "{error:?}");
    assert_eq!(revocations_of(&h, &refresh), 1, "sent once");
}

#[tokio::test]
async fn a_revocation_queued_offline_is_sent_by_the_next_start() {
    let mut h = Harness::start().await;
    let store = Arc::new(MemoryStore::new());
    let (client, alice, refresh) = alice_on(&h, store.clone()).await;
    h.server.stop().await;
    alice.logout().await.unwrap();
    until(|| h.clock.sleeps().contains(&Duration::from_secs(30 * 128))).await;
    drop((alice, client)); // the app exits while the server is down

    h.server.resume().await.unwrap();
    let client = client_on(h.config(), store.clone());
    let error = client.restore("alice").await.unwrap_err();
    assert!(matches!(error, AuthError::ReauthenticationRequired { .. }), "{error:?}");
    // Sent by the restart (or, in this one process, by the old client's timer if its
    // last attempt was still under way when the server came back: then possibly by
    // both, which RFC 7009 makes harmless; a real restart has no old timer).
    until(|| revocations_of(&h, &refresh) >= 1).await;
    assert!(!h.server.refresh_token_is_live(&refresh));
    assert_eq!(
        h.server.stats().token_requests,
        1,
        "only the first login: no token request since"
    );
}

#[tokio::test]
async fn a_queued_revocation_of_dpop_bound_tokens_carries_a_proof_of_their_key_when_sent() {
    let mut h = Harness::with(DevServerConfig {
        dpop: DpopSpec {
            required_for_clients: vec![CLIENT_ID.into()],
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let store = Arc::new(MemoryStore::new());
    let config = h.config().dpop(DpopMode::Required);
    let client = client_on(config.clone(), store.clone());
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    let jkt = alice.dpop_thumbprint().unwrap().expect("a DPoP session");
    let refresh = stored_refresh_token(store.as_ref(), alice.store_key()).expect("stored");
    let queued = format!("{}#revoke", alice.store_key());

    h.server.stop().await;
    alice.logout().await.expect("a logout always succeeds locally");
    // The queued entry keeps the key (a secret, like the tokens beside it) until sent.
    let entry = stored_json(store.as_ref(), &queued);
    assert_eq!(entry["dpop_jkt"], jkt.as_str());
    assert!(entry["dpop_key"].is_string());
    until(|| h.clock.sleeps().contains(&Duration::from_secs(30 * 128))).await;
    drop((alice, client));

    h.server.resume().await.unwrap();
    let accepted = h.server.stats().dpop_proofs_accepted;
    let error = client_on(config, store.clone()).restore("alice").await.unwrap_err();
    assert!(matches!(error, AuthError::ReauthenticationRequired { .. }), "{error:?}");
    until(|| revocations_of(&h, &refresh) >= 1).await;
    until(|| store.load(&queued).unwrap().is_none()).await;
    assert!(!h.server.refresh_token_is_live(&refresh));
    let sent: Vec<_> = h
        .server
        .stats()
        .revocations
        .into_iter()
        .filter(|r| r.token == refresh)
        .collect();
    assert!(
        sent.iter().all(|r| r.dpop_proof),
        "every queued revocation carried a proof: {sent:?}"
    );
    assert!(
        h.server.stats().dpop_proofs_accepted > accepted,
        "and the server verified it"
    );
    // The timer's waits moved the manual clock two hours past the server's: the first
    // proof's `iat` may be refused and re-sent corrected (the `Date` offset). Nothing
    // else is refused: not the key, not the binding.
    let rejections = h.server.stats().dpop_rejections;
    assert!(
        rejections.keys().all(|reason| reason == "iat_outside_window"),
        "{rejections:?}"
    );
}

#[tokio::test]
async fn without_a_store_an_unreachable_revocation_is_reported_not_queued() {
    // Nowhere to queue it: the logout still ends the session, and says the revocation
    // failed (a cargo-mutants survivor: a client that believed it had a store reported
    // success for a revocation queued nowhere).
    let mut h = Harness::start().await;
    let client = h.client();
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    h.server.stop().await;
    let error = alice.logout().await.unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
    assert!(client.session("alice").is_none(), "logged out all the same");
    assert!(
        h.clock.sleeps().is_empty(),
        "no retry timer for a revocation that was not queued"
    );
}
