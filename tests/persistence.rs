//! Keeping users signed in, end to end against the development server: restart and
//! restore, reading tokenkeeper 0.1 entries, unusable entries, a save failing during
//! a rotation, two `AuthClient`s and two OS processes sharing one store, logout.
mod common;

use common::*;
use secrecy::{ExposeSecret, SecretString};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokenkeeper::{AuthClient, AuthError, AuthEvent, AuthEventListener, MemoryStore, StoreError, TokenStore};
use tokenkeeper_devserver::{DevServerConfig, Endpoint, Fault};

const LEGACY_ALICE_KEY: &str = "tokenkeeper/v1/demo-client/user:alice";

fn rotating() -> DevServerConfig {
    DevServerConfig {
        rotate_refresh_tokens: true,
        ..DevServerConfig::default()
    }
}

fn stored(store: &dyn TokenStore, key: &str) -> Option<String> {
    store.load(key).unwrap().map(|v| v.expose_secret().to_owned())
}

/// Signs alice in on a fresh client over `store`; returns her session's store key.
async fn sign_in_alice(h: &Harness, store: Arc<dyn TokenStore>) -> String {
    let client = h.builder().store(store).build().unwrap();
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    alice.store_key().to_owned()
}

/// A store whose saves fail while `failing` is set (a locked keychain, a full disk).
#[derive(Default)]
struct FlakyStore {
    inner: MemoryStore,
    failing: AtomicBool,
}

impl TokenStore for FlakyStore {
    fn load(&self, key: &str) -> Result<Option<SecretString>, StoreError> {
        self.inner.load(key)
    }
    fn save(&self, key: &str, value: &SecretString) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError("the keychain is locked".into()));
        }
        self.inner.save(key, value)
    }
    fn remove(&self, key: &str) -> Result<(), StoreError> {
        self.inner.remove(key)
    }
}

#[derive(Default)]
struct Events(Mutex<Vec<String>>);

impl AuthEventListener for Events {
    fn on_event(&self, event: &AuthEvent) {
        let name = match event {
            AuthEvent::PersistFailed { reason, .. } => format!("PersistFailed: {reason}"),
            other => format!("{other:?}")
                .split([' ', '{', '('])
                .next()
                .unwrap_or("")
                .to_owned(),
        };
        self.0.lock().unwrap().push(name);
    }
}

impl Events {
    fn persist_failures(&self) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.starts_with("PersistFailed"))
            .count()
    }
}

#[tokio::test]
async fn restart_restores_the_session_with_one_refresh_and_no_password() {
    let h = Harness::start().await;
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let key = sign_in_alice(&h, Arc::clone(&store)).await;
    // Everything but the store is gone: a new client, as after an app restart.
    let before = (h.grants("password"), h.grants("refresh_token"));
    let client = h.builder().store(Arc::clone(&store)).build().unwrap();
    let alice = client.restore("alice").await.unwrap();
    alice.access_token().await.unwrap();
    assert_eq!(
        h.grants("refresh_token"),
        before.1,
        "offline start: the stored token is served"
    );
    h.advance(3600);
    alice.access_token().await.unwrap();
    assert_eq!(h.grants("password"), before.0, "no password after a restart");
    assert_eq!(
        h.grants("refresh_token"),
        before.1 + 1,
        "exactly one refresh once it expired"
    );
    assert_eq!(alice.store_key(), key);
    let record: serde_json::Value = serde_json::from_str(&stored(store.as_ref(), &key).unwrap()).unwrap();
    assert_eq!(record["tokenkeeper"], 1);
    assert_eq!(record["client_id"], CLIENT_ID);
    assert_eq!(record["subject"], "user:alice");
    assert_eq!(record["token_endpoint"], h.server.token_endpoint());
    assert!(!record.to_string().contains(ALICE_PASSWORD), "never the password");
    let current = value(&alice.access_token().await.unwrap());
    assert_eq!(
        record["access_token"],
        current.as_str(),
        "offline start keeps the current token"
    );
}

#[tokio::test]
async fn a_stored_session_past_the_announced_refresh_expiry_needs_the_user_without_a_request() {
    // Like Keycloak: refresh tokens live 30 min and the token response says so.
    let h = Harness::with(DevServerConfig {
        refresh_token_lifetime: Some(Duration::from_secs(1800)),
        ..DevServerConfig::default()
    })
    .await;
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let key = sign_in_alice(&h, Arc::clone(&store)).await;
    let record: serde_json::Value = serde_json::from_str(&stored(store.as_ref(), &key).unwrap()).unwrap();
    let saved_at = record["saved_at"].as_u64().unwrap();
    let expires_at = record["refresh_expires_at"]
        .as_u64()
        .expect("the refresh expiry is recorded");
    assert!(
        (1799..=1801).contains(&(expires_at - saved_at)),
        "{saved_at} → {expires_at}"
    );

    // Before the expiry a restart restores the session.
    h.advance(1700);
    h.builder()
        .store(Arc::clone(&store))
        .build()
        .unwrap()
        .restore("alice")
        .await
        .unwrap();

    // After it (on the device's clock), restoring asks for the user at once: the entry
    // is deleted and nothing is sent to the server.
    let record: serde_json::Value = serde_json::from_str(&stored(store.as_ref(), &key).unwrap()).unwrap();
    let expires_at = record["refresh_expires_at"].as_u64().unwrap();
    let now = h.clock_now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    h.advance(expires_at - now + 1);
    let requests = h.token_requests();
    let error = h
        .builder()
        .store(Arc::clone(&store))
        .build()
        .unwrap()
        .restore("alice")
        .await
        .unwrap_err();
    assert!(matches!(error, AuthError::ReauthenticationRequired { .. }), "{error:?}");
    assert_eq!(
        h.token_requests(),
        requests,
        "an expired refresh token is not even tried"
    );
    assert_eq!(stored(store.as_ref(), &key), None);
}

#[tokio::test]
async fn a_tokenkeeper_0_1_entry_is_read_and_moved_to_the_new_key() {
    let h = Harness::start().await;
    let first: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let key = sign_in_alice(&h, Arc::clone(&first)).await;
    let refresh_token = stored_refresh_token(first.as_ref(), &key).unwrap();
    // What tokenkeeper 0.1 left behind: the bare refresh token under the old key.
    let old: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    old.save(LEGACY_ALICE_KEY, &SecretString::from(refresh_token)).unwrap();

    let refreshes = h.grants("refresh_token");
    let client = h.builder().store(Arc::clone(&old)).build().unwrap();
    let alice = client.restore("alice").await.unwrap();
    alice.access_token().await.unwrap();
    assert_eq!(h.grants("refresh_token"), refreshes + 1);
    assert_eq!(stored(old.as_ref(), LEGACY_ALICE_KEY), None, "the old entry is moved");
    let record: serde_json::Value = serde_json::from_str(&stored(old.as_ref(), &key).unwrap()).unwrap();
    assert_eq!(record["tokenkeeper"], 1);
}

#[tokio::test]
async fn a_sign_in_deletes_the_tokenkeeper_0_1_entry_it_supersedes() {
    let h = Harness::start().await;
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    // An older app version (or its extension) left a 0.1 entry for alice.
    store
        .save(LEGACY_ALICE_KEY, &SecretString::from("left-by-tokenkeeper-0.1"))
        .unwrap();
    let key = sign_in_alice(&h, Arc::clone(&store)).await;
    assert!(stored(store.as_ref(), &key).is_some(), "the sign-in is stored");
    assert_eq!(
        stored(store.as_ref(), LEGACY_ALICE_KEY),
        None,
        "the superseded 0.1 entry is deleted with the first save"
    );
}

#[tokio::test]
async fn corrupt_oversized_and_foreign_entries_are_deleted_and_reported_once() {
    let h = Harness::start().await;
    let probe: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let key = sign_in_alice(&h, Arc::clone(&probe)).await;
    let staging_record = format!(
        r#"{{"tokenkeeper":1,"refresh_token":"rt","token_endpoint":"https://staging.example.com/token","client_id":"{CLIENT_ID}","subject":"user:alice"}}"#
    );
    let cases = [
        ("corrupt", "{\"tokenkeeper\":1,\"refresh_token\":".to_owned()),
        ("not a token", "line one\nline two".to_owned()),
        ("oversized", "r".repeat(64 * 1024)),
        ("foreign", staging_record),
    ];
    for (what, value) in cases {
        let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
        store.save(&key, &SecretString::from(value)).unwrap();
        let requests = h.token_requests();
        let client = h.builder().store(Arc::clone(&store)).build().unwrap();
        let first = client.restore("alice").await.unwrap_err();
        assert!(
            matches!(&first, AuthError::ReauthenticationRequired { reason } if reason.contains("deleted")),
            "{what}: {first:?}"
        );
        assert_eq!(stored(store.as_ref(), &key), None, "{what}: the entry is deleted");
        // Reported once: the next attempt finds nothing stored, and says so.
        let second = client.restore("alice").await.unwrap_err();
        assert!(
            matches!(&second, AuthError::ReauthenticationRequired { reason } if !reason.contains("deleted")),
            "{what}: {second:?}"
        );
        assert_eq!(h.token_requests(), requests, "{what}: nothing is sent to the server");
    }
}

#[tokio::test]
async fn a_save_failing_during_a_rotation_still_serves_the_token_and_the_next_change_is_saved() {
    let h = Harness::with(rotating()).await;
    let store = Arc::new(FlakyStore::default());
    let events = Arc::new(Events::default());
    let client = h
        .builder()
        .store(store.clone())
        .event_listener(events.clone())
        .build()
        .unwrap();
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    let key = alice.store_key().to_owned();
    let first = stored_refresh_token(&store.inner, &key).unwrap();

    store.failing.store(true, Ordering::SeqCst);
    let old_token = value(&alice.access_token().await.unwrap());
    h.advance(3600);
    let served = alice.access_token().await.expect("the rotated token is served anyway");
    assert_ne!(value(&served), old_token);
    alice.access_token().await.unwrap(); // delivers any queued event
    assert_eq!(events.persist_failures(), 1, "{:?}", events.0.lock().unwrap());
    assert_eq!(
        stored(&store.inner, &key),
        None,
        "the entry holding the spent refresh token {first:.4}… is removed"
    );

    store.failing.store(false, Ordering::SeqCst);
    h.advance(3600);
    alice.access_token().await.unwrap();
    let saved = stored_refresh_token(&store.inner, &key).expect("the next change is saved");
    assert_ne!(saved, first);
    // The saved token is the live one: a restarted app resumes with it.
    let password_grants = h.grants("password");
    let restarted = h.builder().store(store.clone()).build().unwrap();
    restarted.restore("alice").await.unwrap();
    assert_eq!(h.grants("password"), password_grants);
}

#[tokio::test]
async fn two_clients_on_one_store_refresh_once_per_expiry_and_never_spend_a_token_twice() {
    let h = Harness::with(rotating()).await;
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let a = h.builder().store(Arc::clone(&store)).build().unwrap();
    let b = h.builder().store(Arc::clone(&store)).build().unwrap();
    let alice_a = a.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    let alice_b = b.restore("alice").await.unwrap();
    let password_grants = h.grants("password");
    for round in 1..=5u64 {
        let refreshes = h.grants("refresh_token");
        h.advance(3600);
        // Both clients' tokens expired together; each asks twice, concurrently.
        let (x, y, z, w) = tokio::join!(
            alice_a.access_token(),
            alice_b.access_token(),
            alice_a.access_token(),
            alice_b.access_token()
        );
        for result in [x, y, z, w] {
            result.unwrap_or_else(|e| panic!("round {round}: {e:?}"));
        }
        assert_eq!(
            h.grants("refresh_token"),
            refreshes + 2,
            "round {round}: one refresh per client per expiry"
        );
    }
    // A rotated token spent twice would have been rejected and the password used.
    assert_eq!(
        h.grants("password"),
        password_grants,
        "no refresh token was ever rejected"
    );
    // Both end on the stored token: a third client resumes from it, and each of the
    // two refreshes again without the server rejecting what it holds.
    let c = h.builder().store(Arc::clone(&store)).build().unwrap();
    c.restore("alice").await.unwrap();
    alice_a.refresh().await.unwrap();
    alice_b.refresh().await.unwrap();
    assert_eq!(h.grants("password"), password_grants);
}

#[tokio::test]
async fn logout_deletes_the_stored_session_under_both_keys() {
    let h = Harness::start().await;
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let client = h.builder().store(Arc::clone(&store)).build().unwrap();
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    let key = alice.store_key().to_owned();
    store.save(LEGACY_ALICE_KEY, &SecretString::from("old-entry")).unwrap();
    assert!(stored(store.as_ref(), &key).is_some());
    alice.logout().await.unwrap();
    assert_eq!(stored(store.as_ref(), &key), None);
    assert_eq!(stored(store.as_ref(), LEGACY_ALICE_KEY), None);
    let restarted = h.builder().store(Arc::clone(&store)).build().unwrap();
    assert!(matches!(
        restarted.restore("alice").await,
        Err(AuthError::ReauthenticationRequired { .. })
    ));
}

/// A store that never answers, and one that panics: the session reports `Storage`
/// within the configured timeout and the runtime's threads stay free.
struct BadStore {
    panics: bool,
}

impl TokenStore for BadStore {
    fn load(&self, _key: &str) -> Result<Option<SecretString>, StoreError> {
        if self.panics {
            panic!("keychain exploded");
        }
        std::thread::sleep(Duration::from_secs(2));
        Ok(None)
    }
    fn save(&self, key: &str, _value: &SecretString) -> Result<(), StoreError> {
        self.load(key).map(drop)
    }
    fn remove(&self, key: &str) -> Result<(), StoreError> {
        self.load(key).map(drop)
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_hung_or_panicking_store_is_a_storage_error_not_a_stall() {
    let h = Harness::start().await;
    for panics in [false, true] {
        let client = AuthClient::builder(h.config().store_timeout(Duration::from_millis(200)))
            .store(Arc::new(BadStore { panics }))
            .build()
            .unwrap();
        // On a single-threaded runtime a store call made on the async thread would
        // block the server too, and this would never return.
        let error = client.restore("alice").await.unwrap_err();
        assert!(matches!(error, AuthError::Storage { .. }), "panics={panics}: {error:?}");
    }
}

// ----- two OS processes ---------------------------------------------------------

/// A store of one file per key in a directory, written atomically (write, rename):
/// what two processes of one app share in this test.
struct FileStore(PathBuf);

impl FileStore {
    fn path(&self, key: &str) -> PathBuf {
        let name: String = key
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() { char::from(b) } else { '_' })
            .collect();
        self.0.join(format!("{name}-{}", key.len()))
    }
}

impl TokenStore for FileStore {
    fn load(&self, key: &str) -> Result<Option<SecretString>, StoreError> {
        match std::fs::read_to_string(self.path(key)) {
            Ok(value) => Ok(Some(SecretString::from(value))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError(e.to_string())),
        }
    }
    fn save(&self, key: &str, value: &SecretString) -> Result<(), StoreError> {
        let path = self.path(key);
        let temporary = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&temporary, value.expose_secret()).map_err(|e| StoreError(e.to_string()))?;
        std::fs::rename(&temporary, &path).map_err(|e| StoreError(e.to_string()))
    }
    fn remove(&self, key: &str) -> Result<(), StoreError> {
        match std::fs::remove_file(self.path(key)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError(e.to_string())),
            _ => Ok(()),
        }
    }
}

const CHILD_ENV: &str = "TOKENKEEPER_TEST_CHILD";
const ROUNDS: usize = 15;

fn shared_client(h_config: tokenkeeper::AuthConfig, dir: &Path) -> AuthClient {
    // Without offline start each restore refreshes, so the two processes contend for
    // the refresh lock from their first call.
    AuthClient::builder(h_config.store_lock_directory(dir.join("locks")).offline_start(false))
        .store(Arc::new(FileStore(dir.join("store"))))
        .build()
        .unwrap()
}

/// Refreshes alice `ROUNDS` times from the shared store (no password).
async fn refresh_rounds(client: &AuthClient) -> Result<(), AuthError> {
    let alice = client.restore("alice").await?;
    for _ in 0..ROUNDS {
        alice.refresh().await?;
    }
    Ok(())
}

/// The second process: run only when the test below starts this binary with
/// `CHILD_ENV` naming the server and the shared directory.
#[tokio::test]
#[ignore = "run by two_processes_on_one_store_take_turns as its second process"]
async fn second_process() {
    let spec = std::env::var(CHILD_ENV).expect("started by the parent test");
    let (endpoint, dir) = spec.split_once('|').unwrap();
    let config = tokenkeeper::AuthConfig::new(endpoint, CLIENT_ID).client_secret(password(CLIENT_SECRET));
    refresh_rounds(&shared_client(config, Path::new(dir)))
        .await
        .expect("every refresh of the second process succeeds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_store_take_turns_and_never_spend_a_token_twice() {
    let h = Harness::with(rotating()).await;
    let dir = std::env::temp_dir().join(format!("tokenkeeper-two-processes-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("store")).unwrap();
    let client = shared_client(h.config(), &dir);
    client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    // Slow token responses widen the window in which the two would collide.
    for _ in 0..(2 * ROUNDS + 2) {
        h.server.inject(Endpoint::Token, Fault::delay_ms(15));
    }
    let password_grants = h.grants("password");
    let refreshes = h.grants("refresh_token");

    let child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "second_process", "--ignored", "--nocapture"])
        .env(CHILD_ENV, format!("{}|{}", h.server.token_endpoint(), dir.display()))
        .status();
    let (child, here) = tokio::join!(child, refresh_rounds(&client));
    here.expect("every refresh of this process succeeds");
    assert!(child.unwrap().success(), "the second process failed");

    // ROUNDS refreshes in each process plus the second one's restore (this process
    // still holds a valid token), and not one rejected refresh token.
    assert_eq!(h.grants("refresh_token"), refreshes + 2 * ROUNDS as u64 + 1);
    assert_eq!(h.grants("password"), password_grants);
    // The stored token is the live one.
    let third = shared_client(h.config(), &dir);
    third.restore("alice").await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
