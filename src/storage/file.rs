//! [`FileStore`]: a [`TokenStore`] in a directory of files, for machines with no OS
//! secret store (a headless Linux server, a container, a CI runner).
//!
//! It is **weaker than a keychain**: the record is plain JSON on disk, protected only
//! by file permissions (the directory `0700`, each file `0600`, on Unix). Anyone who
//! can act as the same OS user, or as root, or who reads the disk or a backup, reads
//! the refresh token. Put the directory on an encrypted volume where that matters,
//! and prefer [`KeyringStore`](super::KeyringStore) wherever a Secret Service, the
//! Keychain or the Credential Manager exists.
//!
//! Each key is one file named by the SHA-256 of the key (keys hold user names and
//! client ids: never a file name of their own). The file holds the key and the value,
//! so a directory can be listed back into keys. A write goes to a fresh temporary
//! file in the same directory, is flushed to disk (`fsync`), and is renamed over the
//! old file, and the directory is flushed too: a crash or a full disk leaves the old
//! record or the new one, never half of one. Two processes writing the same key
//! leave one of the two records whole (the last rename wins); the refresh lock
//! (`AuthConfig::store_lock_directory`) is what keeps them from refreshing at once.

use super::{StoreError, TokenStore};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The largest file read back: a record is a few KiB; anything bigger is not ours.
const MAX_FILE: u64 = 64 * 1024;
const SUFFIX: &str = ".json";
const TEMP_PREFIX: &str = ".tmp-";

/// A [`TokenStore`] that keeps each value in its own file in one directory.
///
/// Weaker than an OS secret store (see the module documentation): use it where no
/// keychain exists, such as a headless server or a container.
///
/// ```no_run
/// use std::sync::Arc;
/// use tokenkeeper::{AuthClient, AuthConfig, FileStore};
/// # fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = FileStore::new("/var/lib/my-agent/tokens")?;   // created 0700 if missing
/// let client = AuthClient::builder(AuthConfig::new("https://as.example.com/token", "my-agent"))
///     .store(Arc::new(store))
///     .build()?;
/// # let _ = client; Ok(()) }
/// ```
#[derive(Clone)]
pub struct FileStore {
    dir: PathBuf,
}

impl fmt::Debug for FileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStore").field("dir", &self.dir).finish()
    }
}

/// What one file holds.
#[derive(Serialize, Deserialize)]
struct Entry<'a> {
    key: std::borrow::Cow<'a, str>,
    value: std::borrow::Cow<'a, str>,
}

impl FileStore {
    /// A store in `dir`, created (with its parents) if missing, `0700` on Unix.
    ///
    /// Fails if `dir` cannot be created, is not a directory, or (on Unix) can be
    /// read or entered by other users (group or other permission bits set, the
    /// check `ssh` makes of `~/.ssh`): `chmod 700` it, or choose another directory.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        create_private_dir(&dir).map_err(|e| error("create the directory", &dir, &e))?;
        let meta = fs::metadata(&dir).map_err(|e| error("read the directory", &dir, &e))?;
        if !meta.is_dir() {
            return Err(StoreError(format!("file store: {} is not a directory", dir.display())));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(StoreError(format!(
                    "file store: {} is accessible to other users (mode {mode:o}); chmod 700 it",
                    dir.display()
                )));
            }
        }
        Ok(Self { dir })
    }

    /// The directory the files live in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every key with a value in the store (in no particular order). Files that are
    /// not the store's own (unreadable, malformed, too big) are skipped.
    pub fn keys(&self) -> Result<Vec<String>, StoreError> {
        let entries = fs::read_dir(&self.dir).map_err(|e| error("list", &self.dir, &e))?;
        let mut keys = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| error("list", &self.dir, &e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !name.ends_with(SUFFIX) || name.starts_with(TEMP_PREFIX) {
                continue;
            }
            if let Ok(Some(bytes)) = read_bounded(&entry.path()) {
                if let Ok(found) = serde_json::from_slice::<Entry<'_>>(&bytes) {
                    keys.push(found.key.into_owned());
                }
            }
        }
        Ok(keys)
    }

    fn path_of(&self, key: &str) -> PathBuf {
        let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
        let name: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!("{name}{SUFFIX}"))
    }

    /// Writes `bytes` to `path` atomically: temp file (0600) + fsync + rename + fsync of
    /// the directory. The temp file is removed if any step fails.
    fn write_atomically(&self, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        let temp = self.dir.join(format!(
            "{TEMP_PREFIX}{}-{:016x}{SUFFIX}",
            std::process::id(),
            crate::internal::random::bits()
        ));
        let written = (|| {
            let mut file = create_private_file(&temp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            drop(file);
            fs::rename(&temp, path)?;
            sync_dir(&self.dir)
        })();
        written.map_err(|e| {
            let _ = fs::remove_file(&temp);
            error("write", path, &e)
        })
    }
}

impl TokenStore for FileStore {
    fn load(&self, key: &str) -> Result<Option<SecretString>, StoreError> {
        let path = self.path_of(key);
        let Some(bytes) = read_bounded(&path).map_err(|e| error("read", &path, &e))? else {
            return Ok(None);
        };
        match serde_json::from_slice::<Entry<'_>>(&bytes) {
            Ok(found) if found.key == key => Ok(Some(SecretString::from(found.value.into_owned()))),
            // Another key's file under this name cannot happen short of a SHA-256
            // collision or a hand-edited directory: not this key's value.
            Ok(_) => Ok(None),
            // A damaged file is handed on as it is, so the caller sees a corrupt
            // record and replaces or removes it (as with any store).
            Err(_) => Ok(Some(SecretString::from(String::from_utf8_lossy(&bytes).into_owned()))),
        }
    }

    fn save(&self, key: &str, value: &SecretString) -> Result<(), StoreError> {
        let entry = Entry {
            key: key.into(),
            value: value.expose_secret().into(),
        };
        let bytes = Zeroizing::new(
            serde_json::to_vec(&entry).map_err(|e| StoreError(format!("file store: cannot encode: {e}")))?,
        );
        self.write_atomically(&self.path_of(key), &bytes)
    }

    fn keys(&self) -> Result<Option<Vec<String>>, StoreError> {
        FileStore::keys(self).map(Some)
    }

    fn remove(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path_of(key);
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.dir).map_err(|e| error("remove", &path, &e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(error("remove", &path, &e)),
        }
    }
}

/// The file's bytes (zeroized when dropped), `None` if it does not exist, an error if it
/// is larger than [`MAX_FILE`].
fn read_bounded(path: &Path) -> io::Result<Option<Zeroizing<Vec<u8>>>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(MAX_FILE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {MAX_FILE} bytes"),
        ));
    }
    Ok(Some(bytes))
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)
}

/// A new file only its owner can read and write; `create_new`, so a planted file or
/// symlink at the temp name is never written through.
fn create_private_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)
}

/// Makes a rename or removal in `dir` durable (POSIX: the directory entry is the
/// directory's data). Windows has no directory handle to flush; its rename is durable
/// through the file system's journal.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// I/O errors name the path and the failure, never the value.
fn error(action: &str, path: &Path, e: &io::Error) -> StoreError {
    StoreError(format!("file store: cannot {action} {}: {e}", path.display()))
}
