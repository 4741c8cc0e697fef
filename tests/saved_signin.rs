//! Sign-ins that survive process death, against the development server: a pending
//! authorization saved as a sealed string, completed by a new `AuthClient` on the same
//! store (a new process, as far as the SDK can tell), and every way such a value is
//! refused: expired, replayed, tampered, its key gone, raced by two completions.

mod common;

use common::{browser_login, value, Harness};
use std::sync::Arc;
use tokenkeeper::signin::{AuthorizationRequest, SavedSignInRefusal, SAVED_SIGN_IN_LIFETIME};
use tokenkeeper::{AuthClient, AuthConfig, AuthError, FileStore, MemoryStore, TokenParams, TokenStore};

const APP: &str = common::NATIVE_APP;
const REDIRECT: &str = "dev.tokenkeeper.demo:/oauth2redirect";

fn native_config(h: &Harness) -> AuthConfig {
    h.native_config()
}

fn client_on(h: &Harness, store: Arc<dyn TokenStore>) -> AuthClient {
    AuthClient::builder(native_config(h)).store(store).build().unwrap()
}

/// Starts a sign-in in a client that is then dropped (the killed process), returning
/// the saved value and the redirect the browser comes back with.
async fn saved_sign_in(h: &Harness, store: Arc<dyn TokenStore>) -> (String, String) {
    let first = client_on(h, store);
    let pending = first
        .authorization_request(AuthorizationRequest::new("alice", REDIRECT).params(TokenParams::new().scopes(["read"])))
        .unwrap();
    let saved = first.save_authorization(&pending).await.unwrap();
    assert!(!saved.contains(pending.state()), "the state is sealed");
    let url = pending.url().to_owned();
    drop(pending);
    drop(first);
    let redirect = browser_login(&url, "alice", common::ALICE_PASSWORD).await;
    (saved, redirect)
}

fn refusal(error: AuthError) -> SavedSignInRefusal {
    match error {
        AuthError::SavedSignInRefused(why) => why,
        other => panic!("expected a refused saved sign-in, got {other:?}"),
    }
}

#[tokio::test]
async fn a_new_client_on_the_same_file_store_completes_a_saved_sign_in() {
    let h = Harness::start().await;
    let dir = std::env::temp_dir().join(format!("tk-saved-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store: Arc<dyn TokenStore> = Arc::new(FileStore::new(&dir).unwrap());
    let (saved, redirect) = saved_sign_in(&h, store).await;

    // The "new process": a new FileStore on the directory and a new client.
    let second = client_on(&h, Arc::new(FileStore::new(&dir).unwrap()));
    let pending = second.resume_authorization(&saved).await.unwrap();
    assert_eq!(pending.redirect_uri(), REDIRECT);
    let session = second.complete_authorization(&pending, &redirect).await.unwrap();
    let response = session
        .send(second.http().get(h.server.resource_url("/me")))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(h.grants("authorization_code"), 1);
    // The key entry is not an account.
    assert_eq!(second.accounts().await.unwrap(), Some(vec!["alice".to_owned()]));
    // The store's key entry holds the sealing key, never the verifier or the state.
    let keys = FileStore::new(&dir).unwrap().keys().unwrap();
    assert!(keys.iter().any(|k| k.ends_with("#signin-key")), "{keys:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_replayed_value_is_refused_before_the_server_sees_it() {
    let h = Harness::start().await;
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let (saved, redirect) = saved_sign_in(&h, store.clone()).await;
    let second = client_on(&h, store.clone());
    second.complete_saved_authorization(&saved, &redirect).await.unwrap();
    let requests = h.token_requests();
    let third = client_on(&h, store);
    let error = third.complete_saved_authorization(&saved, &redirect).await.unwrap_err();
    assert_eq!(refusal(error), SavedSignInRefusal::AlreadyCompleted);
    assert_eq!(
        h.token_requests(),
        requests,
        "the replay never reached the token endpoint"
    );
}

#[tokio::test]
async fn completing_in_memory_spends_the_saved_copy() {
    let h = Harness::start().await;
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let client = client_on(&h, store);
    let pending = client
        .authorization_request(AuthorizationRequest::new("alice", REDIRECT))
        .unwrap();
    let saved = client.save_authorization(&pending).await.unwrap();
    let again = client.save_authorization(&pending).await.unwrap();
    let redirect = browser_login(pending.url(), "alice", common::ALICE_PASSWORD).await;
    client.complete_authorization(&pending, &redirect).await.unwrap();
    for value in [saved, again] {
        let error = client.resume_authorization(&value).await.unwrap_err();
        assert_eq!(refusal(error), SavedSignInRefusal::AlreadyCompleted);
    }
}

#[tokio::test]
async fn an_expired_value_is_refused() {
    let h = Harness::start().await;
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let (saved, redirect) = saved_sign_in(&h, store.clone()).await;
    h.advance(SAVED_SIGN_IN_LIFETIME.as_secs() - 1);
    let second = client_on(&h, store.clone());
    assert!(
        second.resume_authorization(&saved).await.is_ok(),
        "still inside its lifetime"
    );
    h.advance(1);
    let error = second
        .complete_saved_authorization(&saved, &redirect)
        .await
        .unwrap_err();
    assert_eq!(refusal(error), SavedSignInRefusal::Expired);
    assert_eq!(h.grants("authorization_code"), 0);
}

#[tokio::test]
async fn tampered_foreign_and_keyless_values_are_typed_errors() {
    let h = Harness::start().await;
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let (saved, _) = saved_sign_in(&h, store.clone()).await;
    let client = client_on(&h, store.clone());
    let mut bytes = saved.clone().into_bytes();
    let middle = bytes.len() / 2;
    bytes[middle] = if bytes[middle] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    let huge = format!("{saved}{}", "A".repeat(1 << 20));
    for bad in [
        huge.as_str(),
        tampered.as_str(),
        "",
        "tk1",
        "not a saved sign-in",
        &saved[..saved.len() - 4],
    ] {
        let error = client.resume_authorization(bad).await.unwrap_err();
        assert_eq!(refusal(error), SavedSignInRefusal::Unreadable, "{bad:?}");
    }
    // Another client id on the same store has its own key: the value does not open.
    let other = AuthClient::builder(AuthConfig::new(h.server.token_endpoint(), "other-app").clock(h.clock.clone()))
        .store(store.clone())
        .build()
        .unwrap();
    assert_eq!(
        refusal(other.resume_authorization(&saved).await.unwrap_err()),
        SavedSignInRefusal::KeyGone
    );
    // The app's data was cleared: the key is gone with it.
    for key in store.keys().unwrap().unwrap() {
        store.remove(&key).unwrap();
    }
    assert_eq!(
        refusal(client.resume_authorization(&saved).await.unwrap_err()),
        SavedSignInRefusal::KeyGone
    );
    // And a key made afresh does not open the old value either.
    let pending = client
        .authorization_request(AuthorizationRequest::new("bob", REDIRECT))
        .unwrap();
    client.save_authorization(&pending).await.unwrap();
    assert_eq!(
        refusal(client.resume_authorization(&saved).await.unwrap_err()),
        SavedSignInRefusal::KeyGone
    );
}

#[tokio::test]
async fn of_two_racing_completions_exactly_one_exchanges_the_code() {
    let h = Harness::start().await;
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let (saved, redirect) = saved_sign_in(&h, store.clone()).await;
    let (a, b) = (client_on(&h, store.clone()), client_on(&h, store));
    let (first, second) = tokio::join!(
        a.complete_saved_authorization(&saved, &redirect),
        b.complete_saved_authorization(&saved, &redirect)
    );
    let outcomes = [first.is_ok(), second.is_ok()];
    assert_eq!(outcomes.iter().filter(|ok| **ok).count(), 1, "{first:?} {second:?}");
    let error = first.err().or(second.err()).unwrap();
    assert_eq!(refusal(error), SavedSignInRefusal::AlreadyCompleted);
    assert_eq!(h.grants("authorization_code"), 1);
}

#[tokio::test]
async fn a_saved_dpop_sign_in_keeps_its_key() {
    let h = Harness::requiring_dpop(APP).await;
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let dpop_client = || {
        AuthClient::builder(native_config(&h).dpop(tokenkeeper::DpopMode::Required))
            .store(store.clone())
            .build()
            .unwrap()
    };
    let first = dpop_client();
    let pending = first
        .authorization_request(AuthorizationRequest::new("alice", REDIRECT))
        .unwrap();
    let jkt = common::dpop_jkt(pending.url());
    let url = pending.url().to_owned();
    let saved = first.save_authorization(&pending).await.unwrap();
    drop((pending, first));
    let redirect = browser_login(&url, "alice", common::ALICE_PASSWORD).await;
    let session = dpop_client()
        .complete_saved_authorization(&saved, &redirect)
        .await
        .unwrap();
    assert_eq!(session.dpop_thumbprint().unwrap().as_deref(), Some(jkt.as_str()));
    let token = session.access_token().await.unwrap();
    assert_eq!(h.server.dpop_binding(&value(&token)), Some(jkt));
}

#[tokio::test]
async fn saving_needs_a_store() {
    let h = Harness::start().await;
    let client = AuthClient::new(native_config(&h)).unwrap();
    let pending = client
        .authorization_request(AuthorizationRequest::new("alice", REDIRECT))
        .unwrap();
    assert!(matches!(
        client.save_authorization(&pending).await,
        Err(AuthError::InvalidConfig { .. })
    ));
}
