//! `FileStore`, the store for headless machines: a restart against the development
//! server, the files' permissions, atomic replacement under a concurrent reader,
//! listing keys, and hostile directory contents.
mod common;

use common::*;
use secrecy::{ExposeSecret, SecretString};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokenkeeper::{FileStore, TokenStore};

/// A fresh directory under the system's temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "tokenkeeper-file-store-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

#[tokio::test]
async fn a_restarted_app_restores_the_user_from_the_file_store_without_the_password() {
    let h = Harness::start().await;
    let dir = TempDir::new("restart");
    let first = h
        .builder()
        .store(Arc::new(FileStore::new(dir.0.join("tokens")).unwrap()))
        .build()
        .unwrap();
    let alice = first.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    let key = alice.store_key().to_owned();
    drop((alice, first)); // the app exits

    let files = files_in(&dir.0.join("tokens"));
    assert_eq!(files.len(), 1, "one file per key, no temp file left: {files:?}");
    let on_disk = std::fs::read_to_string(&files[0]).unwrap();
    assert!(!on_disk.contains(ALICE_PASSWORD), "the password is never stored");
    assert!(
        !files[0].to_string_lossy().contains("alice"),
        "file names do not carry the key"
    );

    let store = FileStore::new(dir.0.join("tokens")).unwrap();
    assert_eq!(store.keys().unwrap(), vec![key.clone()]);
    let second = h.builder().store(Arc::new(store.clone())).build().unwrap();
    let restored = second.restore("alice").await.unwrap();
    assert_eq!(
        h.grants("refresh_token"),
        0,
        "the stored access token is served (offline start)"
    );
    let me = restored
        .send(second.http().get(h.server.resource_url("/me")))
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    h.advance(3600);
    assert!(restored.access_token().await.is_ok());
    assert_eq!(
        h.grants("refresh_token"),
        1,
        "then refreshed with the stored refresh token"
    );

    restored.logout().await.unwrap();
    assert!(store.load(&key).unwrap().is_none(), "logout removes the file");
    assert!(files_in(&dir.0.join("tokens")).is_empty());
}

#[cfg(unix)]
#[test]
fn the_directory_is_private_and_every_file_is_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = TempDir::new("modes");
    let store = FileStore::new(dir.0.join("a/b")).unwrap();
    store.save("k", &SecretString::from("v")).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(store.dir()), 0o700);
    for file in files_in(store.dir()) {
        assert_eq!(mode(&file), 0o600, "{file:?}");
    }
    // Replacing keeps the mode: the new file is created 0600, not copied.
    store.save("k", &SecretString::from("w")).unwrap();
    for file in files_in(store.dir()) {
        assert_eq!(mode(&file), 0o600, "{file:?}");
    }

    std::fs::set_permissions(store.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let error = FileStore::new(store.dir()).unwrap_err();
    assert!(error.to_string().contains("chmod 700"), "{error}");
}

#[test]
fn a_reader_never_sees_half_a_record_while_it_is_replaced() {
    let dir = TempDir::new("atomic");
    let store = Arc::new(FileStore::new(&dir.0).unwrap());
    // Large enough that a non-atomic write is caught half-way by the reader.
    let values: Vec<String> = (0..2).map(|i| format!("{i}").repeat(32 * 1024)).collect();
    store.save("key", &SecretString::from(values[0].clone())).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (store, done, values) = (store.clone(), done.clone(), values.clone());
        std::thread::spawn(move || {
            let mut reads = 0u32;
            while !done.load(Ordering::SeqCst) {
                let value = store.load("key").unwrap().expect("a record is always there");
                assert!(
                    values.iter().any(|v| v == value.expose_secret()),
                    "a torn read of {} bytes",
                    value.expose_secret().len()
                );
                reads += 1;
            }
            reads
        })
    };
    for round in 0..300 {
        store
            .save("key", &SecretString::from(values[round % 2].clone()))
            .unwrap();
    }
    done.store(true, Ordering::SeqCst);
    assert!(reader.join().unwrap() > 0);
    assert_eq!(files_in(&dir.0).len(), 1, "no temp file left behind");
}

#[test]
fn keys_lists_each_stored_key_and_skips_foreign_files() {
    let dir = TempDir::new("keys");
    let store = FileStore::new(&dir.0).unwrap();
    for key in ["tokenkeeper/v2/a/user:alice", "tokenkeeper/v2/a/user:bob/../x", "ü"] {
        store.save(key, &SecretString::from("v")).unwrap();
    }
    std::fs::write(dir.0.join("notes.txt"), "not ours").unwrap();
    std::fs::write(dir.0.join("0000.json"), "{ malformed").unwrap();
    std::fs::write(dir.0.join(".tmp-1-2.json"), r#"{"key":"half","value":"written"}"#).unwrap();
    let mut keys = store.keys().unwrap();
    keys.sort();
    assert_eq!(
        keys,
        ["tokenkeeper/v2/a/user:alice", "tokenkeeper/v2/a/user:bob/../x", "ü"]
    );
    store.remove("ü").unwrap();
    store.remove("never-stored").unwrap();
    assert_eq!(store.keys().unwrap().len(), 2);
    assert!(store.load("ü").unwrap().is_none());
}

#[test]
fn a_hostile_file_is_a_store_error_or_a_corrupt_record_never_a_panic() {
    let dir = TempDir::new("hostile");
    let store = FileStore::new(&dir.0).unwrap();
    store.save("key", &SecretString::from("v")).unwrap();
    let file = files_in(&dir.0).remove(0);

    std::fs::write(&file, vec![b'x'; 1024 * 1024]).unwrap();
    let error = store.load("key").unwrap_err();
    assert!(error.to_string().contains("larger than"), "{error}");
    // The cap is 64 KiB: a file of exactly that size is still read, one byte more is not.
    std::fs::write(&file, vec![b'x'; 64 * 1024]).unwrap();
    assert!(store.load("key").unwrap().is_some(), "64 KiB is within the cap");
    std::fs::write(&file, vec![b'x'; 64 * 1024 + 1]).unwrap();
    assert!(store.load("key").is_err(), "one byte over the cap");

    std::fs::write(&file, b"\xff\xfe not json").unwrap();
    let value = store.load("key").unwrap().expect("handed on for the caller to discard");
    assert!(value.expose_secret().contains("not json"));

    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    assert!(store.load("key").is_err(), "a directory in its place is an error");

    std::fs::write(dir.0.join("plain"), "").unwrap();
    assert!(FileStore::new(dir.0.join("plain")).is_err(), "not a directory");
}

/// Only a record that is not there counts as gone: any other failure to read or remove
/// it is an error, so a logout never reports success while the record stays on disk.
#[test]
fn a_record_that_cannot_be_read_or_removed_is_a_store_error_not_an_absent_one() {
    let dir = TempDir::new("unreachable");
    let store = FileStore::new(dir.0.join("tokens")).unwrap();
    store.save("key", &SecretString::from("v")).unwrap();
    let file = files_in(&dir.0.join("tokens")).remove(0);

    // A directory where the record was: unlinking it fails (even for root).
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    std::fs::write(file.join("inside"), "").unwrap();
    let error = store.remove("key").unwrap_err();
    assert!(error.to_string().contains("remove"), "{error}");
    assert!(file.exists(), "the entry is still there, and the caller was told");

    // The store's directory replaced by a plain file: opening a record inside it fails
    // with "not a directory", which is not "no record".
    std::fs::remove_dir_all(dir.0.join("tokens")).unwrap();
    std::fs::write(dir.0.join("tokens"), "").unwrap();
    let error = store.load("key").unwrap_err();
    assert!(error.to_string().contains("read"), "{error}");
    assert!(store.remove("key").is_err(), "nor is removing it a success");
}

#[tokio::test]
async fn accounts_lists_the_users_signed_in_for_this_client_only() {
    let h = Harness::start().await;
    let dir = TempDir::new("accounts");
    let store = Arc::new(FileStore::new(&dir.0).unwrap());
    let client = h.builder().store(store.clone()).build().unwrap();
    assert_eq!(client.accounts().await.unwrap(), Some(vec![]));
    client.login("bob", password("bob-password")).await.unwrap();
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    // Another client of the same server, sharing the store, is not this client's.
    let other = tokenkeeper::AuthClient::builder(
        tokenkeeper::AuthConfig::new(h.server.token_endpoint(), "public-app").clock(h.clock.clone()),
    )
    .store(store.clone())
    .build()
    .unwrap();
    other.login("carol-is-not-here", password("x")).await.unwrap_err();
    other.login("bob", password("bob-password")).await.unwrap();
    assert_eq!(other.accounts().await.unwrap(), Some(vec!["bob".to_owned()]));

    let restarted = h.builder().store(store.clone()).build().unwrap();
    assert_eq!(
        restarted.accounts().await.unwrap(),
        Some(vec!["alice".to_owned(), "bob".to_owned()])
    );
    alice.logout().await.unwrap();
    assert_eq!(restarted.accounts().await.unwrap(), Some(vec!["bob".to_owned()]));

    // A store that cannot enumerate says so.
    struct Opaque(tokenkeeper::MemoryStore);
    impl TokenStore for Opaque {
        fn load(&self, key: &str) -> Result<Option<SecretString>, tokenkeeper::StoreError> {
            self.0.load(key)
        }
        fn save(&self, key: &str, value: &SecretString) -> Result<(), tokenkeeper::StoreError> {
            self.0.save(key, value)
        }
        fn remove(&self, key: &str) -> Result<(), tokenkeeper::StoreError> {
            self.0.remove(key)
        }
    }
    let opaque = h
        .builder()
        .store(Arc::new(Opaque(tokenkeeper::MemoryStore::new())))
        .build()
        .unwrap();
    assert_eq!(opaque.accounts().await.unwrap(), None);
}

#[tokio::test]
async fn accounts_lists_a_name_with_a_hash_and_never_a_user_whose_revocation_is_queued() {
    let mut h = Harness::start().await;
    h.server.set_user_password("team#1", "team-password");
    let dir = TempDir::new("accounts-hash");
    let store = Arc::new(FileStore::new(&dir.0).unwrap());
    let client = h.builder().store(store.clone()).build().unwrap();
    client.login("team#1", password("team-password")).await.unwrap();
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    assert_eq!(
        client.accounts().await.unwrap(),
        Some(vec!["alice".to_owned(), "team#1".to_owned()])
    );
    // Offline logout: alice's tokens wait in a `#revoke` record; she is not an account.
    h.server.stop().await;
    alice.logout().await.unwrap();
    assert_eq!(client.accounts().await.unwrap(), Some(vec!["team#1".to_owned()]));
}
