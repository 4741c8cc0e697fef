//! Grants and client authentication methods against the development server.

mod common;

use common::{password, stored_refresh_token, Harness, ALICE_PASSWORD};
use std::sync::Arc;
use tokenkeeper::{AuthClient, AuthConfig, ClientAuthMethod, MemoryStore};
use tokenkeeper_devserver::DevServerConfig;

#[tokio::test]
async fn client_secret_post_and_basic_both_authenticate() {
    let h = Harness::start().await;
    for method in [ClientAuthMethod::Basic, ClientAuthMethod::Post] {
        let client = AuthClient::new(h.config().client_auth_method(method)).unwrap();
        client.client_credentials_session().access_token().await.unwrap();
    }
    assert_eq!(h.grants("client_credentials"), 2);
}

#[tokio::test]
async fn a_public_client_logs_a_user_in_without_a_secret() {
    let h = Harness::start().await;
    let config = AuthConfig::new(h.server.token_endpoint(), "public-app").clock(h.clock.clone());
    let alice = AuthClient::new(config)
        .unwrap()
        .login("alice", password(ALICE_PASSWORD))
        .await
        .unwrap();
    assert!(alice.access_token().await.is_ok());
}

#[tokio::test]
async fn a_rotated_refresh_token_replaces_the_old_one() {
    let h = Harness::with(DevServerConfig {
        rotate_refresh_tokens: true,
        ..Default::default()
    })
    .await;
    let store = Arc::new(MemoryStore::new());
    let client = h.builder().store(store.clone()).build().unwrap();
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    let key = alice.store_key().to_owned();
    let first = stored_refresh_token(store.as_ref(), &key).unwrap();

    alice.refresh().await.unwrap();
    let second = stored_refresh_token(store.as_ref(), &key).unwrap();
    assert_ne!(first, second, "the store holds the rotated refresh token");
    // The old one is revoked by the server: using it would fall back to the password.
    alice.refresh().await.unwrap();
    assert_eq!((h.grants("refresh_token"), h.grants("password")), (2, 1));
}

#[tokio::test]
async fn without_rotation_the_old_refresh_token_is_kept() {
    let h = Harness::start().await;
    let alice = h.client().login("alice", password(ALICE_PASSWORD)).await.unwrap();
    for _ in 0..3 {
        alice.refresh().await.unwrap();
    }
    assert_eq!((h.grants("refresh_token"), h.grants("password")), (3, 1));
}

#[tokio::test]
async fn a_client_credentials_session_without_refresh_tokens_renews_with_its_credentials() {
    let h = Harness::start().await;
    let machine = h.client().client_credentials_session();
    machine.access_token().await.unwrap();
    machine.refresh().await.unwrap();
    assert_eq!(h.grants("client_credentials"), 2);
    assert_eq!(h.grants("refresh_token"), 0);
}
