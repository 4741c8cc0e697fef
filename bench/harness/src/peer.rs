//! The naive peer: seed 003's `TokenCache`, in Rust. A mutex around an optional
//! token and its expiry; a caller that finds it missing or inside the 5-minute buffer
//! takes a second (async) lock, checks again, and requests a token inline while
//! everyone behind it waits. On a 401 it drops the token and asks again (seed 003,
//! "Reactive refresh"), whichever token failed.

use crate::admin::{BoxError, Server};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

const BUFFER: Duration = Duration::from_secs(300);

pub struct MutexCache {
    token: Mutex<Option<(String, SystemTime)>>,
    refresh: tokio::sync::Mutex<()>,
    server: Server,
}

impl MutexCache {
    pub fn new(server: Server) -> Self {
        Self {
            token: Mutex::new(None),
            refresh: tokio::sync::Mutex::new(()),
            server,
        }
    }

    /// Seeds the cache, e.g. with a token about to expire.
    pub fn set(&self, token: String, expires_at: SystemTime) {
        *self.token.lock().unwrap_or_else(PoisonError::into_inner) = Some((token, expires_at));
    }

    /// The fast path alone: the cached token if it is outside the buffer.
    #[inline]
    pub fn cached(&self) -> Option<String> {
        let guard = self.token.lock().unwrap_or_else(PoisonError::into_inner);
        match &*guard {
            Some((token, expiry)) if SystemTime::now() + BUFFER < *expiry => Some(token.clone()),
            _ => None,
        }
    }

    /// Seed 003's `GetTokenAsync`: check, lock, check again, request inline.
    pub async fn get(&self) -> Result<String, BoxError> {
        if let Some(token) = self.cached() {
            return Ok(token);
        }
        let _refreshing = self.refresh.lock().await;
        if let Some(token) = self.cached() {
            return Ok(token);
        }
        let (token, expires_at) = self.server.fetch_token().await?;
        self.set(token.clone(), expires_at);
        Ok(token)
    }

    /// After a 401: forget the token so the next `get` requests a new one.
    pub fn invalidate(&self) {
        *self.token.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}
