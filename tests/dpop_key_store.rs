//! DPoP keys that live in a platform key store (`AuthConfig::dpop_key_store`: the
//! Android Keystore, the Secure Enclave), against the development server's verifier.
//! The store here is an in-memory map of software keys that counts what the core asks
//! of it and lets a test delete, replace or break a key behind the SDK's back: the
//! same calls the Kotlin and Swift keys answer.
//!
//! A key lives exactly as long as its session: made at sign-in, found again after a
//! restart, deleted at logout (after the revocation it signs), when a new sign-in
//! replaces it, and when a sign-in that made it ends without a session. A key that is
//! gone or recreated needs the user once, before any request.

mod common;

use base64::Engine as _;
use common::dpop_keys::PlatformKeys;
use common::{browser_login, password, until, value, Harness, ALICE_PASSWORD};
use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::Duration;
use tokenkeeper::signin::AuthorizationRequest;
use tokenkeeper::{AuthClient, AuthConfig, AuthError, DpopMode, MemoryStore, SoftwareDpopKey, TokenStore};
use tokenkeeper_devserver::{DevServerConfig, DpopSpec};

fn server() -> DevServerConfig {
    DevServerConfig {
        dpop: DpopSpec {
            required_for_clients: vec![common::CLIENT_ID.into(), common::NATIVE_APP.into()],
            ..Default::default()
        },
        ..Default::default()
    }
}

fn client_on(config: AuthConfig, store: &Arc<MemoryStore>, keys: &Arc<PlatformKeys>) -> AuthClient {
    AuthClient::builder(config.dpop(DpopMode::Required).dpop_key_store(keys.clone()))
        .store(store.clone())
        .build()
        .unwrap()
}

fn record(store: &MemoryStore, key: &str) -> serde_json::Value {
    serde_json::from_str(store.load(key).unwrap().expect("a stored record").expose_secret()).unwrap()
}

#[tokio::test]
async fn the_key_lives_in_the_key_store_and_the_record_holds_only_its_alias_across_a_restart() {
    let h = Harness::with(server()).await;
    let (store, keys) = (Arc::new(MemoryStore::new()), Arc::new(PlatformKeys::default()));
    let client = client_on(h.config(), &store, &keys);
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    let token = alice.access_token().await.unwrap();
    let jkt = alice.dpop_thumbprint().unwrap().expect("a DPoP session");
    assert_eq!(h.server.dpop_binding(&value(&token)), Some(jkt.clone()));
    let created = keys.created();
    assert_eq!(created.len(), 1, "one key for the session: {created:?}");
    // Derived from the store key (so an app can tell whose key it is), unique per key.
    let digest = ring::digest::digest(&ring::digest::SHA256, alice.store_key().as_bytes());
    let identity = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest.as_ref()[..8]);
    assert!(
        created[0].starts_with(&format!("tokenkeeper.dpop.{identity}.")),
        "{created:?}"
    );

    let stored = record(&store, alice.store_key());
    assert_eq!(stored["dpop_key_alias"], created[0].as_str());
    assert_eq!(stored["dpop_jkt"], jkt.as_str());
    assert!(
        stored.get("dpop_key").is_none(),
        "no private key in the record: {stored}"
    );

    // The app restarts: the key is found under its alias and its tokens refresh.
    drop((alice, client));
    let client = client_on(h.config(), &store, &keys);
    let alice = client.restore("alice").await.unwrap();
    assert_eq!(alice.dpop_thumbprint().unwrap(), Some(jkt.clone()));
    let refreshed = alice.refresh().await.unwrap();
    assert_eq!(h.server.dpop_binding(&value(&refreshed)), Some(jkt));
    let response = alice
        .send(client.http().get(h.server.resource_url("/me")))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(keys.created().len(), 1, "no new key");
    assert!(keys.deleted().is_empty());
}

#[tokio::test]
async fn a_key_gone_recreated_or_out_of_reach_needs_the_user_once_before_any_request() {
    type Spoil = Box<dyn Fn(&PlatformKeys, &str)>;
    let cases: [(&str, Spoil, bool); 3] = [
        (
            "gone from the platform key store",
            Box::new(|keys, alias| keys.remove(alias)),
            true,
        ),
        (
            "thumbprint mismatch",
            Box::new(|keys, alias| {
                keys.replace(alias, SoftwareDpopKey::generate().unwrap());
            }),
            true,
        ),
        ("this client was not given", Box::new(|_, _| {}), false),
    ];
    for (reason, spoil, with_keys) in cases {
        let h = Harness::with(server()).await;
        let (store, keys) = (Arc::new(MemoryStore::new()), Arc::new(PlatformKeys::default()));
        let alice = client_on(h.config(), &store, &keys)
            .login("alice", password(ALICE_PASSWORD))
            .await
            .unwrap();
        let store_key = alice.store_key().to_owned();
        let alias = keys.created()[0].clone();
        spoil(&keys, &alias);
        let before = h.token_requests();

        let client = if with_keys {
            client_on(h.config(), &store, &keys)
        } else {
            AuthClient::builder(h.config().dpop(DpopMode::Required))
                .store(store.clone())
                .build()
                .unwrap()
        };
        let error = client.restore("alice").await.unwrap_err();
        assert!(
            matches!(&error, AuthError::ReauthenticationRequired { reason: r } if r.contains(reason)),
            "{reason}: {error}"
        );
        // Once: the record is gone, so the next start asks for the user without a
        // request, and no request was ever made with the wrong key or none.
        assert!(store.load(&store_key).unwrap().is_none(), "{reason}");
        assert!(client.restore("alice").await.is_err());
        assert_eq!(h.token_requests(), before, "{reason}: no request");
    }
}

#[tokio::test]
async fn a_failing_key_store_keeps_the_record_and_the_next_try_restores() {
    let h = Harness::with(server()).await;
    let (store, keys) = (Arc::new(MemoryStore::new()), Arc::new(PlatformKeys::default()));
    let alice = client_on(h.config(), &store, &keys)
        .login("alice", password(ALICE_PASSWORD))
        .await
        .unwrap();
    let store_key = alice.store_key().to_owned();
    drop(alice);

    keys.fail(true);
    let client = client_on(h.config(), &store, &keys);
    let error = client.restore("alice").await.unwrap_err();
    assert!(matches!(error, AuthError::Storage { .. }), "{error:?}");
    assert!(error.to_string().contains("locked"), "{error}");
    assert!(
        store.load(&store_key).unwrap().is_some(),
        "a locked keystore signs nobody out"
    );

    keys.fail(false);
    let alice = client.restore("alice").await.unwrap();
    alice.refresh().await.unwrap();
}

#[tokio::test]
async fn logout_deletes_the_key_after_the_revocation_it_signs() {
    let h = Harness::with(server()).await;
    let (store, keys) = (Arc::new(MemoryStore::new()), Arc::new(PlatformKeys::default()));
    let client = client_on(h.config(), &store, &keys);
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    let alias = keys.created()[0].clone();
    let refresh = common::stored_refresh_token(store.as_ref(), alice.store_key()).unwrap();
    alice.logout().await.unwrap();

    assert_eq!(keys.deleted(), vec![alias], "the session's key, once");
    assert!(keys.aliases().is_empty());
    assert!(!h.server.refresh_token_is_live(&refresh));
    let revocations = h.server.stats().revocations;
    assert!(
        !revocations.is_empty() && revocations.iter().all(|r| r.dpop_proof),
        "{revocations:?}"
    );
    assert!(
        h.server.stats().dpop_rejections.is_empty(),
        "{:?}",
        h.server.stats().dpop_rejections
    );
}

#[tokio::test]
async fn an_offline_logout_keeps_the_key_until_its_queued_revocation_is_sent() {
    let mut h = Harness::with(server()).await;
    let (store, keys) = (Arc::new(MemoryStore::new()), Arc::new(PlatformKeys::default()));
    let client = client_on(h.config(), &store, &keys);
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    let alias = keys.created()[0].clone();
    let refresh = common::stored_refresh_token(store.as_ref(), alice.store_key()).unwrap();
    let queued = format!("{}#revoke", alice.store_key());

    h.server.stop().await;
    alice.logout().await.expect("a logout always succeeds locally");
    assert_eq!(record(&store, &queued)["dpop_key_alias"], alias.as_str());
    assert!(keys.deleted().is_empty(), "the queued revocation still needs the key");
    until(|| h.clock.sleeps().contains(&Duration::from_secs(30 * 128))).await;
    drop((alice, client));

    h.server.resume().await.unwrap();
    let error = client_on(h.config(), &store, &keys).restore("alice").await.unwrap_err();
    assert!(matches!(error, AuthError::ReauthenticationRequired { .. }), "{error:?}");
    until(|| store.load(&queued).unwrap().is_none()).await;
    assert!(!h.server.refresh_token_is_live(&refresh));
    until(|| keys.aliases().is_empty()).await;
    assert!(keys.deleted().contains(&alias));
}

#[tokio::test]
async fn a_sign_in_key_is_deleted_when_its_sign_in_ends_without_a_session_or_is_replaced() {
    let h = Harness::with(server()).await;
    let (store, keys) = (Arc::new(MemoryStore::new()), Arc::new(PlatformKeys::default()));
    let client = client_on(h.native_config(), &store, &keys);
    let request = || AuthorizationRequest::new("alice", "dev.tokenkeeper.demo:/oauth2redirect");

    // The user closed the browser: the pending sign-in is dropped, its key deleted.
    let abandoned = client.authorization_request(request()).unwrap();
    let abandoned_alias = keys.created()[0].clone();
    drop(abandoned);
    assert_eq!(keys.deleted(), vec![abandoned_alias]);

    // A completed sign-in keeps its key...
    let pending = client.authorization_request(request()).unwrap();
    let redirect = browser_login(pending.url(), "alice", ALICE_PASSWORD).await;
    let session = client.complete_authorization(&pending, &redirect).await.unwrap();
    drop(pending);
    let first = keys.created()[1].clone();
    assert_eq!(keys.aliases(), vec![first.clone()]);

    // ...until a new sign-in of the same user replaces it.
    let pending = client.authorization_request(request()).unwrap();
    let redirect = browser_login(pending.url(), "alice", ALICE_PASSWORD).await;
    let again = client.complete_authorization(&pending, &redirect).await.unwrap();
    let second = keys.created()[2].clone();
    assert!(Arc::ptr_eq(&session, &again), "one session per identity");
    assert_eq!(keys.aliases(), vec![second.clone()]);
    assert!(keys.deleted().contains(&first));
    let token = again.refresh().await.unwrap();
    assert_eq!(h.server.dpop_binding(&value(&token)), again.dpop_thumbprint().unwrap());
    assert_eq!(record(&store, again.store_key())["dpop_key_alias"], second.as_str());
}

#[tokio::test]
async fn a_session_no_record_names_deletes_its_key_when_it_ends() {
    // Client credentials: no refresh token, so no record names the key (found by the
    // interleaving harness: every restart left one more key in the keystore).
    let h = Harness::with(server()).await;
    let (store, keys) = (Arc::new(MemoryStore::new()), Arc::new(PlatformKeys::default()));
    let client = client_on(h.config(), &store, &keys);
    let machine = client.client_credentials_session();
    let token = machine.access_token().await.unwrap();
    assert_eq!(
        h.server.dpop_binding(&value(&token)),
        machine.dpop_thumbprint().unwrap()
    );
    assert_eq!(keys.aliases().len(), 1);
    drop((token, machine, client));
    until(|| keys.aliases().is_empty()).await;
}
