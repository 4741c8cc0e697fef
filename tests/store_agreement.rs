//! Sessions and their store agree under every interleaving (issue 24): one test per
//! behaviour, each named after it, end to end against the development server, with a
//! store the test steers (`common::store::TestStore`: failing writes, a load held at
//! a gate, a size cap). The seeded harness in `interleavings.rs` looks for the same
//! kind of bug at random.
mod common;

use common::store::{GateAt, TestStore};
use common::*;
use std::sync::Arc;
use std::time::Duration;
use tokenkeeper::{AuthClient, AuthError, SessionState, TokenStore};
use tokenkeeper_devserver::{DevServerConfig, Endpoint, Fault};

fn rotating() -> DevServerConfig {
    DevServerConfig {
        rotate_refresh_tokens: true,
        ..DevServerConfig::default()
    }
}

fn client_on(h: &Harness, store: &Arc<TestStore>) -> AuthClient {
    h.builder().store(store.clone()).build().unwrap()
}

/// The refresh token in the record the store holds under `key`.
fn stored_token(store: &TestStore, key: &str) -> Option<String> {
    stored_refresh_token(&store.inner, key)
}

fn signed_in(session: &tokenkeeper::Session) -> bool {
    matches!(session.state(), SessionState::SignedIn { .. })
}

/// Signs alice in with her password on a new client over `store`.
async fn alice_signed_in(h: &Harness, store: &Arc<TestStore>) -> (AuthClient, Arc<tokenkeeper::Session>) {
    let client = client_on(h, store);
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    (client, alice)
}

/// Signs alice in with her password on one client, then resumes her on a fresh one:
/// a session that lives on its refresh token alone, as after an app restart.
async fn passwordless_alice(h: &Harness, store: &Arc<TestStore>) -> (AuthClient, Arc<tokenkeeper::Session>) {
    alice_signed_in(h, store).await;
    let client = client_on(h, store);
    let alice = client.restore("alice").await.unwrap();
    (client, alice)
}

// ----- 1 ----------------------------------------------------------------------------

#[tokio::test]
async fn a_stale_stored_token_never_replaces_a_live_one() {
    let h = Harness::with(rotating()).await;
    let store = TestStore::new();
    let (_client, alice) = passwordless_alice(&h, &store).await;
    let key = alice.store_key().to_owned();
    let spent = stored_token(&store, &key).unwrap();

    // The keychain locks: the rotation's save fails, and so does removing the entry.
    store.fail_writes(true);
    h.advance(3600);
    alice.access_token().await.expect("the rotated token is served");
    assert!(!h.server.refresh_token_is_live(&spent), "the server rotated it away");
    assert_eq!(
        stored_token(&store, &key).as_deref(),
        Some(spent.as_str()),
        "the stale entry stays"
    );

    // The keychain unlocks; the next refresh re-reads the store and must not send the
    // spent token it finds there.
    store.fail_writes(false);
    h.advance(3600);
    alice.access_token().await.expect("refreshed with the live token");
    assert!(signed_in(&alice), "{:?}", alice.state());
    let saved = stored_token(&store, &key).unwrap();
    assert!(
        h.server.refresh_token_is_live(&saved),
        "the retried save stored the live token"
    );
}

// ----- 2 ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_is_durable_and_cancel_safe() {
    let h = Harness::with(rotating()).await;
    let store = TestStore::new();
    let client = client_on(&h, &store);
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    let key = alice.store_key().to_owned();

    // A token request in flight, slow to answer: logout waits for it.
    h.server.inject(Endpoint::Token, Fault::delay_ms(300));
    alice.invalidate();
    let flight = {
        let alice = alice.clone();
        tokio::spawn(async move { alice.access_token().await })
    };
    until(|| h.token_requests() >= 2).await;
    // The app gives up on logout() at once (a timeout, the screen went away).
    let dropped = tokio::time::timeout(Duration::from_millis(20), alice.logout()).await;
    assert!(dropped.is_err(), "logout was still waiting for the flight");
    assert_eq!(alice.state(), SessionState::LoggedOut, "the fence is in place at once");

    // A second logout() waits for the first one's work and reports its outcome.
    alice.logout().await.expect("the logout completes");
    assert!(store.raw(&key).is_none(), "the entry is removed");
    assert_eq!(
        h.server.live_refresh_tokens("alice"),
        0,
        "every refresh token is revoked"
    );
    assert!(
        flight.await.unwrap().is_err(),
        "the fenced flight's answer is not served"
    );
    assert!(client_on(&h, &store).restore("alice").await.is_err());
}

/// A logout whose removal the store refused (a locked keychain) is not final: the
/// next `logout()` removes the entry, so the next start does not bring the user back.
#[tokio::test]
async fn a_logout_the_store_refused_is_completed_by_the_next_logout() {
    let h = Harness::start().await;
    let store = TestStore::new();
    let client = client_on(&h, &store);
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    let key = alice.store_key().to_owned();

    store.fail_writes(true);
    assert!(
        matches!(alice.logout().await, Err(AuthError::Storage { .. })),
        "the app hears that the entry could not be removed"
    );
    assert!(store.raw(&key).is_some(), "the entry is still stored");
    store.fail_writes(false);
    alice.logout().await.expect("the repeated logout removes the entry");
    assert!(store.raw(&key).is_none());
    assert!(client_on(&h, &store).restore("alice").await.is_err());
}

// ----- 3 ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_during_a_restore_or_a_migration_removes_the_entry() {
    for migration in [false, true] {
        let h = Harness::with(rotating()).await;
        let store = TestStore::new();
        let key = {
            let alice = client_on(&h, &store)
                .login("alice", password(ALICE_PASSWORD))
                .await
                .unwrap();
            alice.store_key().to_owned()
        };
        let gated = if migration {
            // A tokenkeeper 0.1 entry under the old key, moved on first load.
            let token = stored_token(&store, &key).unwrap();
            store.inner.remove(&key).unwrap();
            let legacy = "tokenkeeper/v1/demo-client/user:alice";
            store.inner.save(legacy, &token.as_str().into()).unwrap();
            legacy.to_owned()
        } else {
            key.clone()
        };
        // The app restarts; restore's read waits on a slow keychain.
        let client = client_on(&h, &store);
        let gate = store.gate_next_load(&gated, GateAt::AfterRead);
        let restore = {
            let client = client.clone();
            tokio::spawn(async move { client.restore("alice").await })
        };
        until(|| gate.reached()).await;
        let alice = client.session("alice").expect("the session restore works on");
        let logout = tokio::spawn(async move { alice.logout().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        gate.open();
        let _ = restore.await.unwrap();
        logout.await.unwrap().expect("logout completes");

        assert!(store.raw(&key).is_none(), "migration={migration}: the entry is removed");
        assert!(store.raw(&gated).is_none(), "migration={migration}: the old entry too");
        assert_eq!(h.server.live_refresh_tokens("alice"), 0, "migration={migration}");
        assert!(
            matches!(
                client_on(&h, &store).restore("alice").await,
                Err(AuthError::ReauthenticationRequired { .. })
            ),
            "migration={migration}: the next start does not bring alice back"
        );
    }
}

// ----- 4 ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_writer_per_store_key() {
    for second_client in [false, true] {
        let h = Harness::with(rotating()).await;
        let store = TestStore::new();
        let old_client = client_on(&h, &store);
        let old = old_client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
        let key = old.store_key().to_owned();
        // The old session's logout reads the entry, and is held right after.
        let gate = store.gate_next_load(&key, GateAt::AfterRead);
        let logout = {
            let old = old.clone();
            tokio::spawn(async move { old.logout().await })
        };
        until(|| gate.reached()).await;
        // Meanwhile the user signs in again (same client, or another one on the store).
        let new_client = if second_client {
            client_on(&h, &store)
        } else {
            old_client.clone()
        };
        let new = new_client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
        assert!(!Arc::ptr_eq(&old, &new));
        let saved = stored_token(&store, &key).unwrap();
        gate.open();
        logout.await.unwrap().unwrap();

        assert_eq!(
            stored_token(&store, &key).as_deref(),
            Some(saved.as_str()),
            "second_client={second_client}: the new sign-in's record survives the old logout"
        );
        let restarted = client_on(&h, &store);
        restarted
            .restore("alice")
            .await
            .expect("the next start resumes the new sign-in");
    }
}

#[tokio::test]
async fn one_writer_per_store_key_an_older_session_never_overwrites_a_newer_sign_in() {
    let h = Harness::with(rotating()).await;
    let store = TestStore::new();
    let (older_client, older) = alice_signed_in(&h, &store).await;
    let key = older.store_key().to_owned();
    // Alice signs in again elsewhere (an app extension on the shared store): the
    // latest sign-in is the stored one.
    client_on(&h, &store)
        .login("alice", password(ALICE_PASSWORD))
        .await
        .unwrap();
    let newer = stored_token(&store, &key).unwrap();
    // The older session's token expires; its own grant is still live, so it rotates
    // that, and its save meets the newer sign-in's record.
    h.advance(3600);
    older.access_token().await.expect("the older session still works");
    assert_eq!(
        stored_token(&store, &key).as_deref(),
        Some(newer.as_str()),
        "the newer sign-in stays stored"
    );
    client_on(&h, &store)
        .restore("alice")
        .await
        .expect("the next start resumes the newer sign-in");
    // Alice signs in again on the older client: its session's view of the store is
    // stale, and its save is now the latest sign-in, which wins the store.
    let again = older_client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    assert_eq!(again.store_key(), key);
    assert_ne!(
        stored_token(&store, &key),
        Some(newer),
        "the latest sign-in is the stored one"
    );
    client_on(&h, &store)
        .restore("alice")
        .await
        .expect("the next start resumes the latest sign-in");
}

// ----- 7 ----------------------------------------------------------------------------

#[tokio::test]
async fn reauthentication_required_is_left_when_it_can_be() {
    let h = Harness::with(rotating()).await;
    let store = TestStore::new();
    let (client, alice) = passwordless_alice(&h, &store).await;
    // Her grant is revoked: the password-less session needs the user.
    h.server.revoke_subject("alice");
    h.advance(3600);
    assert!(matches!(
        alice.access_token().await,
        Err(AuthError::ReauthenticationRequired { .. })
    ));
    assert_eq!(alice.state(), SessionState::ReauthenticationRequired);
    assert!(
        stored_token(&store, alice.store_key()).is_none(),
        "the rejected refresh token's record is removed"
    );
    // The app's extension (another client on the shared store) signs her in again.
    client_on(&h, &store)
        .login("alice", password(ALICE_PASSWORD))
        .await
        .unwrap();
    let restored = client.restore("alice").await.expect("restore adopts the new sign-in");
    assert!(Arc::ptr_eq(&restored, &alice));
    assert!(signed_in(&alice), "{:?}", alice.state());
    alice.access_token().await.unwrap();
    // Nothing new stored: restore stays stuck, without a token request.
    h.server.revoke_subject("alice");
    h.advance(3600);
    assert!(alice.access_token().await.is_err());
    let requests = h.token_requests();
    assert!(client.restore("alice").await.is_err());
    assert_eq!(h.token_requests(), requests);
    // The rejected refresh token's record cannot be removed (the keychain is locked
    // when the refresh fails): the record left behind is no news to the session, so
    // restore stays stuck and never sends that refresh token again.
    client_on(&h, &store)
        .login("alice", password(ALICE_PASSWORD))
        .await
        .unwrap();
    client.restore("alice").await.expect("the newer sign-in is adopted");
    h.server.revoke_subject("alice");
    h.advance(3600);
    store.fail_writes(true);
    assert!(alice.access_token().await.is_err());
    store.fail_writes(false);
    assert!(
        stored_token(&store, alice.store_key()).is_some(),
        "the failed removal left the rejected record"
    );
    let requests = h.token_requests();
    assert!(matches!(
        client.restore("alice").await,
        Err(AuthError::ReauthenticationRequired { .. })
    ));
    assert_eq!(
        h.token_requests(),
        requests,
        "the rejected refresh token is not sent again"
    );
    assert_eq!(alice.state(), SessionState::ReauthenticationRequired);
}

// ----- 12 ---------------------------------------------------------------------------

#[tokio::test]
async fn platform_limits_of_the_stores_a_2_kib_refresh_token_fits_windows_credential_manager() {
    let h = Harness::with(rotating()).await;
    let store = TestStore::capped(2560);
    let config = h.config();
    let scopes = [
        "openid",
        "profile",
        "offline_access",
        "https://graph.microsoft.com/User.Read",
        "https://graph.microsoft.com/Mail.ReadWrite",
        "https://graph.microsoft.com/Calendars.ReadWrite",
        "https://graph.microsoft.com/Files.ReadWrite.All",
        "https://graph.microsoft.com/Sites.Read.All",
        "https://graph.microsoft.com/Team.ReadBasic.All",
    ];
    let client = AuthClient::builder(config).store(store.clone()).build().unwrap();
    // Azure AD's refresh tokens are about 2 KiB, its access tokens (JWTs) 1.5-2 KiB;
    // with offline start on (the default) the record would hold both.
    let refresh = format!("0.AXkA{}", "q".repeat(2042));
    let access = format!("eyJ0eXAiOiJKV1Qi.{}.sig", "x".repeat(1700));
    // The scope the server granted is recorded too.
    let tokens = tokenkeeper::signin::ImportedTokens::new(access.as_str().into())
        .refresh_token(refresh.as_str().into())
        .scope(scopes.join(" "));
    let alice = client
        .import_tokens(
            "someone.with.a.long.name@contoso.onmicrosoft.com",
            tokenkeeper::TokenParams::new(),
            tokens,
        )
        .await
        .unwrap();
    let raw = store
        .raw(alice.store_key())
        .expect("the record was stored under the cap");
    assert!(raw.len() <= 2560, "{} bytes", raw.len());
    assert_eq!(
        stored_token(&store, alice.store_key()).as_deref(),
        Some(refresh.as_str())
    );
    // A small sign-in still keeps its access token for offline start.
    let small = tokenkeeper::signin::ImportedTokens::new("at-small".into()).refresh_token("rt-small".into());
    let bob = client
        .import_tokens("bob", tokenkeeper::TokenParams::new(), small)
        .await
        .unwrap();
    let raw: serde_json::Value = serde_json::from_str(&store.raw(bob.store_key()).unwrap()).unwrap();
    assert_eq!(raw["access_token"].as_str(), Some("at-small"));
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_limits_of_the_stores_no_file_lock_is_held_across_a_network_request() {
    // What the iOS default does: the lock directory serves the store's
    // compare-and-set only; the refresh lock is in-process.
    let h = Harness::with(rotating()).await;
    let dir = std::env::temp_dir().join(format!("tokenkeeper-ios-locks-{}", std::process::id()));
    let plain: Arc<dyn TokenStore> = TestStore::new();
    let records = Arc::new(tokenkeeper::TokenStoreRecords::new(plain, Some(dir.clone())));
    let client = h
        .builder()
        .record_store(records)
        .refresh_lock(Arc::new(tokenkeeper::LocalRefreshLock::new(None)))
        .build()
        .unwrap();
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    assert!(
        std::fs::read_dir(&dir).unwrap().count() > 0,
        "the save took the write lock"
    );
    h.server.inject(Endpoint::Token, Fault::delay_ms(300));
    h.advance(3600);
    let refresh = {
        let alice = alice.clone();
        tokio::spawn(async move { alice.access_token().await })
    };
    let before = h.token_requests();
    until(|| h.token_requests() > before).await;
    // The refresh request is at the server: every lock file is free (another process
    // could take it; a suspended app would hold none).
    for entry in std::fs::read_dir(&dir).unwrap() {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(entry.unwrap().path())
            .unwrap();
        file.try_lock().expect("no lock file is held during the request");
    }
    refresh.await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

// ----- 4, one more writer -------------------------------------------------------------

#[tokio::test]
async fn logout_revokes_the_stored_refresh_token_a_co_holder_rotated() {
    let h = Harness::with(rotating()).await;
    let store = TestStore::new();
    let (_first, alice) = alice_signed_in(&h, &store).await;
    // A second client on the same store (an app extension) resumes the same sign-in
    // and refreshes: the rotated refresh token is stored, the first session still holds
    // the spent one.
    let second = client_on(&h, &store);
    let co_holder = second.restore("alice").await.unwrap();
    co_holder.refresh().await.unwrap();
    assert_ne!(stored_token(&store, alice.store_key()), None);
    alice.logout().await.unwrap();
    assert_eq!(stored_token(&store, alice.store_key()), None, "the sign-in is removed");
    assert_eq!(
        h.server.live_refresh_tokens("alice"),
        0,
        "the stored, rotated refresh token of the same sign-in is revoked too"
    );
}
