//! Sign-ins, per-request tokens, logins and asks that race a logout or each other
//! (issue 24, behaviours 5, 6, 8, 9 and 10), end to end against the development
//! server. Each test is named after its behaviour.
mod common;

use common::*;
use std::sync::Arc;
use std::time::Duration;
use tokenkeeper::signin::ImportedTokens;
use tokenkeeper::{AuthClient, AuthConfig, AuthError, CachePolicy, MemoryStore, SecretString, TokenParams, TokenStore};
use tokenkeeper_devserver::{DevServerConfig, Endpoint, Fault};

fn rotating() -> DevServerConfig {
    DevServerConfig {
        rotate_refresh_tokens: true,
        ..DevServerConfig::default()
    }
}

/// Tokens for alice from the server (a password grant the test sends itself), as an
/// older app version or another SDK would hand them over.
async fn tokens_from_elsewhere(h: &Harness) -> ImportedTokens {
    let text = reqwest::Client::new()
        .post(h.server.token_endpoint())
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", ALICE_PASSWORD),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    ImportedTokens::new(SecretString::from(body["access_token"].as_str().unwrap()))
        .refresh_token(SecretString::from(body["refresh_token"].as_str().unwrap()))
}

// ----- 5 ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_never_leaves_tokens_live_and_unowned() {
    let h = Harness::with(rotating()).await;
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let client = h.builder().store(Arc::clone(&store)).build().unwrap();
    // The user is signed in; the app logs the old session out while a new sign-in of
    // the same account (an import here: a code exchange or a device grant installs
    // the same way) lands.
    let old = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    h.server.inject(Endpoint::Revocation, Fault::delay_ms(200));
    let logout = {
        let old = old.clone();
        tokio::spawn(async move { old.logout().await })
    };
    let imported = tokens_from_elsewhere(&h).await;
    let signed_in = client.import_tokens("alice", TokenParams::new(), imported).await;
    logout.await.unwrap().unwrap();

    let session = signed_in.expect("the sign-in installs into a fresh session");
    assert!(!Arc::ptr_eq(&session, &old));
    assert!(session.access_token().await.is_ok());
    assert!(Arc::ptr_eq(&client.session("alice").unwrap(), &session));
    // Every live refresh token of alice is owned: the new session's, and it is stored.
    assert_eq!(h.server.live_refresh_tokens("alice"), 1);
    let stored = stored_refresh_token(store.as_ref(), session.store_key()).expect("the sign-in is stored");
    assert!(h.server.refresh_token_is_live(&stored));

    // A sign-in landing on a session whose logout already fenced it, during its
    // install (the store save is slow), goes to a fresh session too.
    let gate_store = common::store::TestStore::new();
    let client = h.builder().store(gate_store.clone()).build().unwrap();
    let first = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    let gate = gate_store.gate_next_load(first.store_key(), common::store::GateAt::BeforeRead);
    let imported = tokens_from_elsewhere(&h).await;
    let install = {
        let client = client.clone();
        tokio::spawn(async move { client.import_tokens("alice", TokenParams::new(), imported).await })
    };
    until(|| gate.reached()).await;
    let logout = tokio::spawn(async move { first.logout().await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    gate.open();
    let _ = logout.await.unwrap();
    match install.await.unwrap() {
        Ok(session) => {
            assert!(session.access_token().await.is_ok());
            assert_eq!(
                h.server.live_refresh_tokens("alice"),
                2,
                "the earlier session's and this one"
            );
        }
        Err(error) => {
            assert!(matches!(error, AuthError::ReauthenticationRequired { .. }), "{error:?}");
            assert_eq!(h.server.live_refresh_tokens("alice"), 1, "what it obtained is revoked");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_device_sign_in_whose_code_was_redeemed_is_signed_in_or_revoked() {
    let h = Harness::with(rotating()).await;
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    // The development server's public client for devices; polling waits on the manual
    // clock (no real sleep).
    let config = AuthConfig::new(h.server.token_endpoint(), "native-app")
        .revocation_endpoint(h.server.revocation_endpoint())
        .device_authorization_endpoint(h.server.device_authorization_endpoint())
        .clock(h.clock.clone());
    let client = AuthClient::builder(config).store(Arc::clone(&store)).build().unwrap();
    let device = Arc::new(
        client
            .start_device_authorization("tv", TokenParams::new())
            .await
            .unwrap(),
    );
    assert!(h.server.approve_device(device.user_code(), "carol"));
    // The redeeming poll is slow to answer; the user presses "cancel" meanwhile.
    h.server.inject(Endpoint::Token, Fault::delay_ms(300));
    let polling = {
        let (client, device) = (client.clone(), Arc::clone(&device));
        tokio::spawn(async move { client.complete_device_authorization(&device).await })
    };
    until(|| h.token_requests() >= 1).await;
    device.cancel();
    let outcome = polling.await.unwrap();
    match outcome {
        Ok(session) => {
            // Signed in, owned and stored.
            let stored = stored_refresh_token(store.as_ref(), session.store_key()).unwrap();
            assert!(h.server.refresh_token_is_live(&stored));
            assert_eq!(h.server.live_refresh_tokens("carol"), 1);
        }
        Err(error) => {
            assert!(matches!(error, AuthError::Cancelled), "{error:?}");
            assert_eq!(
                h.server.live_refresh_tokens("carol"),
                0,
                "Cancelled means not signed in"
            );
            assert!(client.session("tv").is_none());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_code_exchange_whose_code_was_redeemed_still_signs_the_user_in() {
    let h = Harness::with(rotating()).await;
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let config = AuthConfig::new(h.server.token_endpoint(), "native-app")
        .authorization_endpoint(h.server.authorization_endpoint())
        .revocation_endpoint(h.server.revocation_endpoint())
        .clock(h.clock.clone());
    let client = AuthClient::builder(config).store(Arc::clone(&store)).build().unwrap();
    let pending = client
        .authorization_request(tokenkeeper::signin::AuthorizationRequest::new(
            "alice",
            "http://127.0.0.1/callback",
        ))
        .unwrap();
    let redirect = browser_login(pending.url(), "alice", ALICE_PASSWORD).await;
    // The exchange is slow; the app gives up on it (a timeout, a closed screen) once
    // the code is on its way to the server.
    h.server.inject(Endpoint::Token, Fault::delay_ms(300));
    let exchange = client.complete_authorization(&pending, &redirect);
    let gave_up = tokio::time::timeout(Duration::from_millis(100), exchange).await;
    assert!(gave_up.is_err(), "the exchange was still running");
    assert_eq!(h.grants("authorization_code"), 1, "the code reached the server");
    // The server issued tokens for it: they end in a signed-in, stored session, not
    // live and unowned.
    until(|| client.session("alice").is_some()).await;
    let session = client.session("alice").unwrap();
    // Registered first, then installed and stored, on the exchange's own task.
    until(|| stored_refresh_token(store.as_ref(), session.store_key()).is_some()).await;
    let stored = stored_refresh_token(store.as_ref(), session.store_key()).expect("the sign-in is stored");
    assert!(h.server.refresh_token_is_live(&stored));
    assert_eq!(h.server.live_refresh_tokens("alice"), 1);
    assert!(session.access_token().await.is_ok());
}

// ----- 6 ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_request_obeys_the_fence() {
    let h = Harness::start().await;
    let client = AuthClient::new(h.config().cache_policy(CachePolicy::PerRequest)).unwrap();
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    // Every answer's refresh token is revoked at once: nobody keeps it.
    let token = alice.access_token().await.unwrap();
    assert!(!value(&token).is_empty());
    h.server.inject(Endpoint::Token, Fault::delay_ms(300));
    // Counted before the spawn: the request may reach the server before this task runs.
    let before = h.token_requests();
    let requested = {
        let alice = alice.clone();
        tokio::spawn(async move { alice.access_token().await })
    };
    until(|| h.token_requests() > before).await;
    alice.logout().await.unwrap();
    let handed_out = requested.await.unwrap();
    assert!(
        matches!(handed_out, Err(AuthError::ReauthenticationRequired { .. })),
        "a per-request token requested before logout() is not handed out after it: {handed_out:?}"
    );
    assert_eq!(h.server.live_refresh_tokens("alice"), 0, "no refresh token stays live");
}

// ----- 8 ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_logins_keep_the_registry_right() {
    let h = Harness::start().await;
    let client = h.client();
    for typo_first in [true, false] {
        h.server.inject(Endpoint::Token, Fault::delay_ms(50));
        let (typo, right) = {
            let (a, b) = (client.clone(), client.clone());
            let typo = async move { a.login("bob", password("bob-pasword")).await };
            let right = async move { b.login("bob", password("bob-password")).await };
            if typo_first {
                tokio::join!(typo, right)
            } else {
                let (r, t) = tokio::join!(right, typo);
                (t, r)
            }
        };
        assert!(matches!(typo, Err(AuthError::InvalidGrant(_))), "{typo:?}");
        let bob = right.expect("the right password signs bob in");
        let registered = client.session("bob").expect("bob's session stays registered");
        assert!(Arc::ptr_eq(&registered, &bob), "typo_first={typo_first}");
        let again = client.login("bob", password("bob-password")).await.unwrap();
        assert!(Arc::ptr_eq(&again, &bob), "a later login finds the same session");
        bob.logout().await.unwrap();
    }
}

// ----- 9 ----------------------------------------------------------------------------

#[tokio::test]
async fn no_request_per_call_when_the_ask_cannot_be_met() {
    let h = Harness::start().await; // access tokens live one hour
    let client = h.client();
    let machine = client.client_credentials_session();
    let first = machine
        .access_token_valid_for(Duration::from_secs(2 * 3600))
        .await
        .unwrap();
    let requests = h.token_requests();
    for _ in 0..20 {
        let token = machine
            .access_token_valid_for(Duration::from_secs(2 * 3600))
            .await
            .unwrap();
        assert_eq!(value(&token), value(&first), "the best token there is");
    }
    assert_eq!(h.token_requests(), requests, "no token request per call");
    // An ask a new token can meet still gets one.
    h.advance(3000);
    let renewed = machine.access_token_valid_for(Duration::from_secs(1800)).await.unwrap();
    assert_ne!(value(&renewed), value(&first));
    assert_eq!(h.token_requests(), requests + 1);
    // Once that token is due for refresh, the long ask still gets the best token there
    // is at once, and one refresh runs behind the caller.
    h.advance(3400);
    let due = machine
        .access_token_valid_for(Duration::from_secs(2 * 3600))
        .await
        .unwrap();
    assert_eq!(value(&due), value(&renewed));
    machine.wait_for_refresh().await;
    assert_eq!(h.token_requests(), requests + 2, "one refresh behind the caller");
    assert_ne!(value(&machine.access_token().await.unwrap()), value(&renewed));
}

// ----- 10 ---------------------------------------------------------------------------

#[tokio::test]
async fn no_panic_from_network_arithmetic_anywhere() {
    let h = Harness::start().await;
    let config = AuthConfig::new(h.server.token_endpoint(), "native-app")
        .device_authorization_endpoint(h.server.device_authorization_endpoint())
        .clock(h.clock.clone());
    let client = AuthClient::new(config).unwrap();
    for (expires_in, interval) in [
        (serde_json::json!(18_446_744_073_709_551_615u64), serde_json::json!(5)),
        (
            serde_json::json!(1e300),
            serde_json::json!(18_446_744_073_709_551_615u64),
        ),
        (serde_json::json!(600), serde_json::json!(1e300)),
    ] {
        h.server.inject(
            Endpoint::DeviceAuthorization,
            Fault::json(
                200,
                serde_json::json!({
                    "device_code": "dc", "user_code": "ABCD-EFGH",
                    "verification_uri": "https://as.example/device",
                    "expires_in": expires_in, "interval": interval,
                }),
            ),
        );
        match client.start_device_authorization("tv", TokenParams::new()).await {
            Ok(device) => {
                assert!(device.interval() <= Duration::from_secs(60));
                assert!(device.expires_at().as_system_time() > h.clock_now());
            }
            Err(error) => assert!(matches!(error, AuthError::InvalidResponse { .. }), "{error:?}"),
        }
    }
    // Token responses with hostile numbers: typed errors or capped values, no panic.
    for body in [
        serde_json::json!({"access_token": "a", "token_type": "Bearer", "expires_in": 18_446_744_073_709_551_615u64,
                           "refresh_token": "r", "refresh_expires_in": 18_446_744_073_709_551_615u64}),
        serde_json::json!({"access_token": "a", "token_type": "Bearer", "expires_in": -1}),
        serde_json::json!({"access_token": "a", "token_type": "Bearer", "expires_in": 1e308}),
    ] {
        h.server.inject(Endpoint::Token, Fault::json(200, body));
        let machine = client.client_credentials_session();
        machine.invalidate();
        let _ = machine.access_token().await;
        let _ = machine.access_token_valid_for(Duration::MAX).await;
    }
    h.server.inject(
        Endpoint::Token,
        Fault::status(503).with_header("Retry-After", "18446744073709551615"),
    );
    let machine = client.client_credentials_session();
    machine.invalidate();
    assert!(machine.access_token().await.is_err());
}
