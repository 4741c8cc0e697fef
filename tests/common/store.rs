//! A `TokenStore` the tests steer: writes (saves and removes) that fail, reads that
//! fail, a load that stops at a gate until the test opens it (a slow keychain, a macOS
//! access prompt), and an optional size cap (Windows Credential Manager's 2,560 bytes).
#![allow(dead_code)]

use secrecy::{ExposeSecret, SecretString};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use tokenkeeper::{MemoryStore, StoreError, TokenStore};

/// Where a gated load stops.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum GateAt {
    /// Before it reads: it returns what is stored when the gate opens.
    BeforeRead,
    /// After it read: it returns what was stored when it arrived.
    AfterRead,
}

/// A one-shot gate: loads of its key wait on it until opened.
pub struct Gate {
    key: String,
    at: GateAt,
    reached: AtomicBool,
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    pub fn reached(&self) -> bool {
        self.reached.load(Ordering::SeqCst)
    }

    pub fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }

    fn pass(&self) {
        self.reached.store(true, Ordering::SeqCst);
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
    }
}

#[derive(Default)]
pub struct TestStore {
    pub inner: MemoryStore,
    fail_writes: AtomicBool,
    fail_reads: AtomicBool,
    gate: Mutex<Option<Arc<Gate>>>,
    cap: Option<usize>,
    pub writes: AtomicUsize,
}

impl TestStore {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Refuses values longer than `bytes`, as Windows Credential Manager does.
    pub fn capped(bytes: usize) -> Arc<Self> {
        Arc::new(Self {
            cap: Some(bytes),
            ..Self::default()
        })
    }

    pub fn fail_writes(&self, on: bool) {
        self.fail_writes.store(on, Ordering::SeqCst);
    }

    pub fn fail_reads(&self, on: bool) {
        self.fail_reads.store(on, Ordering::SeqCst);
    }

    /// The next load of `key` (one only) stops at the gate until it is opened.
    pub fn gate_next_load(&self, key: &str, at: GateAt) -> Arc<Gate> {
        let gate = Arc::new(Gate {
            key: key.to_owned(),
            at,
            reached: AtomicBool::new(false),
            open: Mutex::new(false),
            opened: Condvar::new(),
        });
        *self.gate.lock().unwrap() = Some(Arc::clone(&gate));
        gate
    }

    fn take_gate(&self, key: &str) -> Option<Arc<Gate>> {
        let mut slot = self.gate.lock().unwrap();
        if slot.as_ref().is_some_and(|gate| gate.key == key) {
            slot.take()
        } else {
            None
        }
    }

    pub fn raw(&self, key: &str) -> Option<String> {
        self.inner.load(key).unwrap().map(|v| v.expose_secret().to_owned())
    }
}

impl TokenStore for TestStore {
    fn load(&self, key: &str) -> Result<Option<SecretString>, StoreError> {
        if self.fail_reads.load(Ordering::SeqCst) {
            return Err(StoreError("the keychain is locked".into()));
        }
        let gate = self.take_gate(key);
        if let Some(gate) = gate.as_ref().filter(|g| g.at == GateAt::BeforeRead) {
            gate.pass();
        }
        let value = self.inner.load(key);
        if let Some(gate) = gate.as_ref().filter(|g| g.at == GateAt::AfterRead) {
            gate.pass();
        }
        value
    }

    fn save(&self, key: &str, value: &SecretString) -> Result<(), StoreError> {
        if self.fail_writes.load(Ordering::SeqCst) {
            return Err(StoreError("the keychain is locked".into()));
        }
        if let Some(cap) = self.cap {
            let len = value.expose_secret().len();
            if len > cap {
                return Err(StoreError(format!("a credential holds at most {cap} bytes, not {len}")));
            }
        }
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.save(key, value)
    }

    fn remove(&self, key: &str) -> Result<(), StoreError> {
        if self.fail_writes.load(Ordering::SeqCst) {
            return Err(StoreError("the keychain is locked".into()));
        }
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.remove(key)
    }
}
