//! A platform DPoP key store for the tests (`AuthConfig::dpop_key_store`). Shared by
//! several test binaries, each using part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokenkeeper::{DpopKey, DpopKeyError, DpopKeyStore, SoftwareDpopKey};

/// A platform key store (the Android Keystore, the Secure Enclave) for tests: software
/// keys in a map, with what the core asked of it, and ways to delete, replace or break
/// a key behind the SDK's back.
#[derive(Debug, Default)]
pub struct PlatformKeys {
    keys: Mutex<HashMap<String, Arc<SoftwareDpopKey>>>,
    created: Mutex<Vec<String>>,
    deleted: Mutex<Vec<String>>,
    /// While set, every call fails (a locked device, a busy keystore).
    failing: Mutex<bool>,
}

impl PlatformKeys {
    pub fn aliases(&self) -> Vec<String> {
        self.keys.lock().unwrap().keys().cloned().collect()
    }

    pub fn created(&self) -> Vec<String> {
        self.created.lock().unwrap().clone()
    }

    pub fn deleted(&self) -> Vec<String> {
        self.deleted.lock().unwrap().clone()
    }

    pub fn fail(&self, failing: bool) {
        *self.failing.lock().unwrap() = failing;
    }

    /// Deletes `alias`'s key behind the SDK's back (a reinstall, a wiped keystore).
    pub fn remove(&self, alias: &str) {
        self.keys.lock().unwrap().remove(alias);
    }

    /// Puts another key under `alias` behind the SDK's back.
    pub fn replace(&self, alias: &str, key: SoftwareDpopKey) {
        self.keys.lock().unwrap().insert(alias.to_owned(), Arc::new(key));
    }

    /// The thumbprint of the key under `alias`, if there is one.
    pub fn thumbprint(&self, alias: &str) -> Option<String> {
        self.keys
            .lock()
            .unwrap()
            .get(alias)
            .map(|key| key.public_jwk().thumbprint())
    }

    /// alias → thumbprint of every key held.
    pub fn thumbprints(&self) -> HashMap<String, String> {
        self.keys
            .lock()
            .unwrap()
            .iter()
            .map(|(alias, key)| (alias.clone(), key.public_jwk().thumbprint()))
            .collect()
    }

    fn check(&self) -> Result<(), DpopKeyError> {
        if *self.failing.lock().unwrap() {
            return Err(DpopKeyError::new("the keystore is locked"));
        }
        Ok(())
    }
}

impl DpopKeyStore for PlatformKeys {
    fn create(&self, alias: &str) -> Result<Arc<dyn DpopKey>, DpopKeyError> {
        self.check()?;
        let key = Arc::new(SoftwareDpopKey::generate()?);
        self.keys.lock().unwrap().insert(alias.to_owned(), key.clone());
        self.created.lock().unwrap().push(alias.to_owned());
        Ok(key)
    }

    fn load(&self, alias: &str) -> Result<Option<Arc<dyn DpopKey>>, DpopKeyError> {
        self.check()?;
        Ok(self
            .keys
            .lock()
            .unwrap()
            .get(alias)
            .map(|key| Arc::clone(key) as Arc<dyn DpopKey>))
    }

    fn delete(&self, alias: &str) -> Result<(), DpopKeyError> {
        self.check()?;
        self.keys.lock().unwrap().remove(alias);
        self.deleted.lock().unwrap().push(alias.to_owned());
        Ok(())
    }
}
