//! The refresh lock of one store key: held by a session for the whole of one refresh
//! so that no two holders ever spend the same rotating refresh token (RFC 6749 §6,
//! RFC 9700 §4.14.2: a reused rotated token makes the server revoke the grant).
//!
//! Two layers, always taken in this order:
//! 1. an async mutex per key shared by every `AuthClient` of this process;
//! 2. when the app names a lock directory, an OS file lock (`flock` on Unix,
//!    `LockFileEx` on Windows, through std's `File::lock`) on one file per key, so an
//!    app and its widget or share extension, or two desktop windows, take turns too.
//!    Without a directory only the process is covered (documented on
//!    `AuthConfig::store_lock_directory`).
//!
//! The OS drops a file lock when its holder dies, so a crashed process never leaves a
//! key locked.

use crate::storage::seam::{Lease, LockError, RefreshLock};
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// The built-in [`RefreshLock`]: a mutex per key shared by every `AuthClient` of the
/// process, plus, with a lock directory, an OS file lock per key for the processes
/// that share the directory (see the module docs). `AuthClientBuilder` uses one built
/// from `AuthConfig::store_lock_directory` unless given another.
#[derive(Debug, Clone, Default)]
pub struct LocalRefreshLock {
    directory: Option<PathBuf>,
}

impl LocalRefreshLock {
    /// In-process only (`None`), or across the processes sharing `directory` too.
    pub fn new(directory: Option<PathBuf>) -> Self {
        Self { directory }
    }
}

impl RefreshLock for LocalRefreshLock {
    fn acquire<'a>(&'a self, key: &'a str, wait: Duration) -> BoxFuture<'a, Result<Box<dyn Lease>, LockError>> {
        Box::pin(async move {
            let guard = acquire(key, self.directory.as_deref(), wait).await?;
            Ok(Box::new(guard) as Box<dyn Lease>)
        })
    }
}

impl Lease for RefreshGuard {
    /// A mutex and a file lock cannot be lost while held.
    fn is_held(&self) -> bool {
        true
    }
}

/// Held for one refresh; dropping it releases both layers.
pub(crate) struct RefreshGuard {
    // Field order is drop order: the file lock goes before the in-process one, so a
    // waiter of this process never finds the file still locked by its own process.
    file: Option<File>,
    _local: OwnedMutexGuard<()>,
}

impl std::fmt::Debug for RefreshGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshGuard")
            .field("cross_process", &self.file.is_some())
            .finish()
    }
}

impl Drop for RefreshGuard {
    fn drop(&mut self) {
        if let Some(file) = self.file.take() {
            // Closing the file unlocks it as well; unlocking first says so explicitly.
            let _ = file.unlock();
        }
    }
}

static LOCAL: Mutex<Option<HashMap<String, Weak<AsyncMutex<()>>>>> = Mutex::new(None);

/// The process-wide mutex of `key`. Entries are weak: a key nobody holds or waits
/// for costs nothing once its last guard is gone.
fn local_mutex(key: &str) -> Arc<AsyncMutex<()>> {
    let mut map = LOCAL.lock().unwrap_or_else(|p| p.into_inner());
    let map = map.get_or_insert_with(HashMap::new);
    if let Some(existing) = map.get(key).and_then(Weak::upgrade) {
        return existing;
    }
    map.retain(|_, weak| weak.strong_count() > 0);
    let mutex = Arc::new(AsyncMutex::new(()));
    map.insert(key.to_owned(), Arc::downgrade(&mutex));
    mutex
}

/// FNV-1a, 64 bit: stable across Rust releases and builds, unlike std's hasher, so an
/// app and its extension built apart still agree on the file name.
fn fnv1a(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `tokenkeeper-<readable part of the key>-<hash>.lock`: the readable part helps a
/// human; the hash of the whole key keeps distinct keys in distinct files.
pub(crate) fn lock_file_name(key: &str) -> String {
    let readable: String = key
        .chars()
        .filter_map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '.' => Some(c),
            '/' | '=' | ':' | ',' => Some('_'),
            _ => None,
        })
        .take(64)
        .collect();
    format!("tokenkeeper-{readable}-{:016x}.lock", fnv1a(key))
}

/// Takes `key`'s lock: the in-process layer, then the file in `directory` if any.
/// Waits at most `timeout` for each layer.
pub(crate) async fn acquire(key: &str, directory: Option<&Path>, timeout: Duration) -> Result<RefreshGuard, LockError> {
    let local = tokio::time::timeout(timeout, local_mutex(key).lock_owned())
        .await
        .map_err(|_| LockError::Timeout(timeout))?;
    let file = match directory {
        None => None,
        Some(directory) => Some(lock_file(directory.join(lock_file_name(key)), timeout).await?),
    };
    Ok(RefreshGuard { file, _local: local })
}

/// Opens `path` (creating it and its directory) and locks it, blocking until any
/// other holder lets go. Call it on a blocking thread.
pub(crate) fn lock_file_blocking(path: PathBuf) -> Result<File, LockError> {
    let failed = |what: &str, path: &Path, error: std::io::Error| {
        LockError::Failed(format!("could not {what} {}: {error}", path.display()))
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| failed("create the lock directory of", &path, e))?;
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| failed("open the lock file", &path, e))?;
    file.lock().map_err(|e| failed("lock", &path, e))?;
    Ok(file)
}

async fn lock_file(path: PathBuf, timeout: Duration) -> Result<File, LockError> {
    // `File::lock` blocks until the other process lets go: never on an async thread.
    // If this wait is abandoned (timeout, cancelled caller), the blocking task still
    // ends by dropping the file it locked, which unlocks it.
    let task = tokio::task::spawn_blocking(move || lock_file_blocking(path));
    match tokio::time::timeout(timeout, task).await {
        Ok(Ok(result)) => result,
        Ok(Err(join_error)) => Err(LockError::Failed(format!("the lock task failed: {join_error}"))),
        Err(_) => Err(LockError::Timeout(timeout)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_file_names_are_readable_distinct_and_portable() {
        let a = lock_file_name("tokenkeeper/v2/https:%2F%2Fas/app/user=alice/-/-/-");
        assert!(a.starts_with("tokenkeeper-tokenkeeper_v2_https_2F2Fas_app_user_alice_-_-_-"));
        assert!(a.ends_with(".lock"));
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c)));
        assert_ne!(lock_file_name("a/b"), lock_file_name("a=b"));
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[tokio::test]
    async fn one_holder_per_key_in_process_other_keys_are_free() {
        let first = acquire("k1", None, Duration::from_secs(5)).await.unwrap();
        assert!(matches!(
            acquire("k1", None, Duration::from_millis(50)).await,
            Err(LockError::Timeout(_))
        ));
        let _other = acquire("k2", None, Duration::from_secs(5)).await.unwrap();
        // Taking another key's lock (which prunes the map of dead entries) keeps k1's.
        assert!(matches!(
            acquire("k1", None, Duration::from_millis(50)).await,
            Err(LockError::Timeout(_))
        ));
        drop(first);
        acquire("k1", None, Duration::from_secs(5)).await.unwrap();
    }

    #[tokio::test]
    async fn the_file_lock_excludes_another_open_file_and_is_released_on_drop() {
        let dir = std::env::temp_dir().join(format!("tokenkeeper-lock-test-{}", std::process::id()));
        let guard = acquire("k3", Some(&dir), Duration::from_secs(5)).await.unwrap();
        // Another open file description, as another process would have.
        let other = OpenOptions::new()
            .write(true)
            .open(dir.join(lock_file_name("k3")))
            .unwrap();
        assert!(other.try_lock().is_err(), "the file is locked while the guard lives");
        drop(guard);
        other.try_lock().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
