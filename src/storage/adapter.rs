//! [`TokenStoreRecords`]: an app's plain [`TokenStore`] (load, save, remove; the
//! Kotlin and Swift foreign trait, [`KeyringStore`](crate::KeyringStore),
//! [`MemoryStore`](crate::MemoryStore)) seen as a [`RecordStore`].
//!
//! A plain store keeps no revisions and cannot compare-and-set, so the adapter
//! - keeps the revision **inside the record** (a `revision` field of the JSON object;
//!   a value without one, such as a tokenkeeper 0.1 bare token, is revision 0), and
//! - emulates compare-and-set under the key's **write lock**: a process-wide mutex
//!   per (key), then, when the app names a lock directory, an OS file lock on
//!   `tokenkeeper-…-write.lock`. The lock is held only around read-compare-write,
//!   one blocking store call or two, never across a network request: a suspended iOS
//!   app holding a lock in a shared container is killed (0xdead10cc, docs/ios.md).
//!
//! Every store call runs on a blocking thread (a keychain may block) under
//! `catch_unwind` (a panicking store is a [`StoreError`]). Timeouts are the caller's
//! (`internal::persistence` bounds every seam call).
//!
//! `changes()` reports the writes made through any adapter of the same store in this
//! process (so two `AuthClient`s on one store hear of each other); other processes
//! are noticed on the next read.

use crate::storage::lock::{lock_file_blocking, lock_file_name};
use crate::storage::record;
use crate::storage::seam::{Deleted, RecordStore, StoreFuture, Versioned, Written};
use crate::storage::{StoreError, TokenStore};
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::SystemTime;
use tokio::sync::broadcast;

/// How many key changes a slow listener may fall behind before it is told it lagged.
const CHANGES_CAPACITY: usize = 64;

/// A [`TokenStore`] as a [`RecordStore`]; see the module docs. `AuthClientBuilder::store`
/// wraps the app's store in one; build one yourself to share it between clients.
pub struct TokenStoreRecords {
    store: Arc<dyn TokenStore>,
    lock_directory: Option<PathBuf>,
    changes: Arc<broadcast::Sender<String>>,
}

impl std::fmt::Debug for TokenStoreRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenStoreRecords")
            .field("lock_directory", &self.lock_directory)
            .finish_non_exhaustive()
    }
}

type Registry<T> = Mutex<Option<HashMap<T, Weak<dyn std::any::Any + Send + Sync>>>>;

/// One shared value per registry key while anyone holds it (weak entries: a key
/// nobody uses costs nothing, and a reused store address never inherits old state).
fn shared<K: std::hash::Hash + Eq + Clone, T: Send + Sync + 'static>(
    registry: &Registry<K>,
    key: &K,
    create: impl FnOnce() -> T,
) -> Arc<T> {
    let mut map = registry.lock().unwrap_or_else(|p| p.into_inner());
    let map = map.get_or_insert_with(HashMap::new);
    if let Some(existing) = map.get(key).and_then(Weak::upgrade) {
        if let Ok(existing) = existing.downcast::<T>() {
            return existing;
        }
    }
    map.retain(|_, weak| weak.strong_count() > 0);
    let value = Arc::new(create());
    let erased: Arc<dyn std::any::Any + Send + Sync> = value.clone();
    map.insert(key.clone(), Arc::downgrade(&erased));
    value
}

static CHANNELS: Registry<usize> = Mutex::new(None);
static WRITE_LOCKS: Registry<String> = Mutex::new(None);

impl TokenStoreRecords {
    /// Adapts `store`; with `lock_directory`, compare-and-set is exact across the
    /// processes that share that directory too (an app and its extensions).
    pub fn new(store: Arc<dyn TokenStore>, lock_directory: Option<PathBuf>) -> Self {
        // The store's address names it: adapters of one store share one channel.
        let address = Arc::as_ptr(&store).cast::<()>() as usize;
        let changes = shared(&CHANNELS, &address, || broadcast::channel(CHANGES_CAPACITY).0);
        Self {
            store,
            lock_directory,
            changes,
        }
    }

    /// Runs `body` on a blocking thread; with `locked`, under the key's write lock.
    fn blocking<'a, T: Send + 'static>(
        &'a self,
        key: &str,
        locked: bool,
        what: &'static str,
        body: impl FnOnce(&dyn TokenStore, &str) -> Result<T, StoreError> + Send + 'static,
    ) -> StoreFuture<'a, T> {
        let store = Arc::clone(&self.store);
        let key = key.to_owned();
        let directory = self.lock_directory.clone();
        Box::pin(async move {
            let handle = tokio::runtime::Handle::try_current()
                .map_err(|_| StoreError(format!("{what} needs a Tokio runtime")))?;
            let task = handle.spawn_blocking(move || {
                // Field order is release order: the file lock first, then the mutex.
                let _file;
                let local = if locked {
                    let mutex = shared(&WRITE_LOCKS, &key, || Mutex::new(()));
                    Some(mutex)
                } else {
                    None
                };
                let _local = local.as_ref().map(|m| m.lock().unwrap_or_else(|p| p.into_inner()));
                if let (true, Some(directory)) = (locked, directory) {
                    let path = directory.join(lock_file_name(&format!("{key}#write")));
                    _file = Some(lock_file_blocking(path).map_err(|e| StoreError(e.to_string()))?);
                }
                catch_unwind(AssertUnwindSafe(|| body(store.as_ref(), &key)))
                    .unwrap_or_else(|_| Err(StoreError(format!("the token store panicked during {what}"))))
            });
            task.await
                .unwrap_or_else(|_| Err(StoreError(format!("the token store's {what} was cancelled"))))
        })
    }

    fn announce(changes: &broadcast::Sender<String>, key: &str) {
        // No receiver is fine: nobody listens.
        let _ = changes.send(key.to_owned());
    }
}

fn versioned(raw: SecretString) -> Versioned {
    Versioned {
        revision: record::revision_of(raw.expose_secret()),
        value: raw,
    }
}

impl RecordStore for TokenStoreRecords {
    fn read<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Versioned>> {
        self.blocking(key, false, "load", |store, key| Ok(store.load(key)?.map(versioned)))
    }

    fn compare_and_set<'a>(
        &'a self,
        key: &'a str,
        expected: Option<u64>,
        value: &'a SecretString,
        _expires_at: Option<SystemTime>,
    ) -> StoreFuture<'a, Written> {
        let value = SecretString::from(value.expose_secret());
        let changes = Arc::clone(&self.changes);
        self.blocking(key, true, "save", move |store, key| {
            let current = store.load(key)?.map(versioned);
            if current.as_ref().map(|c| c.revision) != expected {
                return Ok(Written::Conflict { current });
            }
            let revision = match expected {
                None => 1,
                Some(revision) => revision
                    .checked_add(1)
                    .ok_or_else(|| StoreError("the record's revision cannot grow any more".into()))?,
            };
            let stamped = record::with_revision(value.expose_secret(), revision)
                .ok_or_else(|| StoreError("only a session record can be stored".into()))?;
            store.save(key, &stamped)?;
            Self::announce(&changes, key);
            Ok(Written::Written { revision })
        })
    }

    fn compare_and_delete<'a>(&'a self, key: &'a str, expected: u64) -> StoreFuture<'a, Deleted> {
        let changes = Arc::clone(&self.changes);
        self.blocking(key, true, "remove", move |store, key| {
            let Some(current) = store.load(key)?.map(versioned) else {
                return Ok(Deleted::Absent);
            };
            if current.revision != expected {
                return Ok(Deleted::Conflict { current });
            }
            store.remove(key)?;
            Self::announce(&changes, key);
            Ok(Deleted::Deleted)
        })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Option<Vec<String>>> {
        let prefix = prefix.to_owned();
        self.blocking("", false, "list", move |store, _| {
            Ok(store
                .keys()?
                .map(|keys| keys.into_iter().filter(|key| key.starts_with(&prefix)).collect()))
        })
    }

    fn changes(&self) -> Option<broadcast::Receiver<String>> {
        Some(self.changes.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryStore;

    fn record(token: &str) -> SecretString {
        SecretString::from(format!(r#"{{"tokenkeeper":1,"refresh_token":"{token}"}}"#))
    }

    #[tokio::test]
    async fn compare_and_set_creates_then_advances_and_refuses_a_stale_revision() {
        let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
        let records = TokenStoreRecords::new(Arc::clone(&store), None);
        assert!(records.read("k").await.unwrap().is_none());
        let first = records.compare_and_set("k", None, &record("a"), None).await.unwrap();
        assert!(matches!(first, Written::Written { revision: 1 }));
        let second = records.compare_and_set("k", Some(1), &record("b"), None).await.unwrap();
        assert!(matches!(second, Written::Written { revision: 2 }));
        // A writer that last saw revision 1 (or absence) loses, and learns what is there.
        match records.compare_and_set("k", Some(1), &record("c"), None).await.unwrap() {
            Written::Conflict { current: Some(current) } => assert_eq!(current.revision, 2),
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert!(matches!(
            records.compare_and_set("k", None, &record("c"), None).await.unwrap(),
            Written::Conflict { current: Some(_) }
        ));
        let stored = records.read("k").await.unwrap().unwrap();
        assert_eq!(stored.revision, 2);
        assert!(stored.value.expose_secret().contains(r#""refresh_token":"b""#));
        // The revision lives in the plain store's value.
        assert!(store
            .load("k")
            .unwrap()
            .unwrap()
            .expose_secret()
            .contains(r#""revision":2"#));
    }

    #[tokio::test]
    async fn compare_and_delete_removes_only_the_revision_it_saw() {
        let records = TokenStoreRecords::new(Arc::new(MemoryStore::new()), None);
        assert!(matches!(
            records.compare_and_delete("k", 1).await.unwrap(),
            Deleted::Absent
        ));
        records.compare_and_set("k", None, &record("a"), None).await.unwrap();
        records.compare_and_set("k", Some(1), &record("b"), None).await.unwrap();
        assert!(matches!(
            records.compare_and_delete("k", 1).await.unwrap(),
            Deleted::Conflict { current } if current.revision == 2
        ));
        assert!(matches!(
            records.compare_and_delete("k", 2).await.unwrap(),
            Deleted::Deleted
        ));
        assert!(records.read("k").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_value_without_a_revision_is_revision_0_and_can_be_replaced() {
        let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
        store.save("k", &SecretString::from("bare-0.1-token")).unwrap();
        let records = TokenStoreRecords::new(Arc::clone(&store), None);
        assert_eq!(records.read("k").await.unwrap().unwrap().revision, 0);
        assert!(matches!(
            records.compare_and_set("k", Some(0), &record("a"), None).await.unwrap(),
            Written::Written { revision: 1 }
        ));
    }

    #[tokio::test]
    async fn adapters_of_one_store_hear_each_others_writes() {
        let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
        let a = TokenStoreRecords::new(Arc::clone(&store), None);
        let b = TokenStoreRecords::new(Arc::clone(&store), None);
        let mut heard = b.changes().unwrap();
        a.compare_and_set("k", None, &record("a"), None).await.unwrap();
        assert_eq!(heard.recv().await.unwrap(), "k");
        a.compare_and_delete("k", 1).await.unwrap();
        assert_eq!(heard.recv().await.unwrap(), "k");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_compare_and_sets_on_one_revision_have_one_winner() {
        let dir = std::env::temp_dir().join(format!("tokenkeeper-adapter-{}", std::process::id()));
        let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
        let records = Arc::new(TokenStoreRecords::new(store, Some(dir.clone())));
        records.compare_and_set("k", None, &record("a"), None).await.unwrap();
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let records = Arc::clone(&records);
                tokio::spawn(async move {
                    let value = record(&format!("t{i}"));
                    records.compare_and_set("k", Some(1), &value, None).await.unwrap()
                })
            })
            .collect();
        let mut winners = 0;
        for task in tasks {
            if matches!(task.await.unwrap(), Written::Written { .. }) {
                winners += 1;
            }
        }
        assert_eq!(winners, 1);
        assert_eq!(records.read("k").await.unwrap().unwrap().revision, 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    struct Panicking;
    impl TokenStore for Panicking {
        fn load(&self, _: &str) -> Result<Option<SecretString>, StoreError> {
            panic!("store bug")
        }
        fn save(&self, _: &str, _: &SecretString) -> Result<(), StoreError> {
            Ok(())
        }
        fn remove(&self, _: &str) -> Result<(), StoreError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_panicking_store_is_an_error_and_leaves_the_key_unlocked() {
        let records = TokenStoreRecords::new(Arc::new(Panicking), None);
        assert!(records.read("k").await.is_err());
        assert!(records.compare_and_set("k", None, &record("a"), None).await.is_err());
        assert!(records.compare_and_set("k", None, &record("a"), None).await.is_err());
    }

    /// The registry prunes entries nobody holds, never one somebody still holds:
    /// pruning a held one would hand a second adapter of the same store its own write
    /// lock and change channel (a cargo-mutants survivor of the pruning comparison).
    #[test]
    fn a_held_shared_value_outlives_the_pruning_of_dropped_ones() {
        let registry: Registry<String> = Mutex::new(None);
        let held = shared(&registry, &"a".to_owned(), || 1u32);
        drop(shared(&registry, &"b".to_owned(), || 2u32));
        let _c = shared(&registry, &"c".to_owned(), || 3u32); // prunes "b"
        let again = shared(&registry, &"a".to_owned(), || 9u32);
        assert!(Arc::ptr_eq(&held, &again), "a held value is shared, not made anew");
        let entries = registry.lock().unwrap().as_ref().map_or(0, HashMap::len);
        assert_eq!(entries, 2, "the dropped entry was pruned, the held ones kept");
    }
}
