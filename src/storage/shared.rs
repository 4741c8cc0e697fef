//! [`SharedTokens`]: access tokens shared by every holder of a store key — the
//! instances of a server fleet — so that the fleet makes one token request per
//! identity per expiry instead of one per instance.
//!
//! Optional and server-side: an app's keychain never holds access tokens (the
//! session record does not carry them); a fleet store (`tokenkeeper-redis`) seals
//! them and gives them a TTL ending with the token. The in-process cache stays in
//! front: a session reads the shared token only inside a token flight (once before
//! and once after taking the key's [`RefreshLock`](crate::RefreshLock)), never on the
//! cached path.
//!
//! How the session uses it (`internal::grants`):
//! - before it sends a token request, it reads the shared token and adopts it instead
//!   when it is newer than the one held and not yet due for refresh;
//! - after a token request, it publishes the new token (a store keeps the later
//!   expiry of two, so a late writer cannot move the fleet back);
//! - after a 401 for a token, and on `Session::invalidate`, it withdraws that token
//!   (only if it is still the shared one), so no instance adopts it again;
//! - after `Session::logout`, it announces the logout, so every holder ends its
//!   session of the key (a fleet-wide logout, revoked once).

use crate::storage::seam::StoreFuture;
use secrecy::SecretString;
use std::fmt;
use std::time::SystemTime;

/// An access token as the fleet shares it.
#[derive(Clone)]
pub struct SharedToken {
    /// The access token.
    pub access_token: SecretString,
    /// When it expires.
    pub expires_at: SystemTime,
    /// The scope the server granted, space-separated, if it said.
    pub scope: Option<String>,
}

impl fmt::Debug for SharedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedToken")
            .field("access_token", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .finish()
    }
}

/// Where the instances of a fleet share each identity's access token, keyed by the
/// session's store key (`Session::store_key`). Every call is bounded by
/// `AuthConfig::store_timeout`; a failure only costs a token request.
pub trait SharedTokens: Send + Sync {
    /// The shared token of `key`, if one is stored and not expired.
    fn read<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<SharedToken>>;

    /// Shares `token` for `key`, unless the store already holds one that expires later.
    fn publish<'a>(&'a self, key: &'a str, token: &'a SharedToken) -> StoreFuture<'a, ()>;

    /// Removes the shared token of `key` if it is still `token` (revoked, or
    /// invalidated by the app), and tells the other holders.
    fn withdraw<'a>(&'a self, key: &'a str, token: &'a SecretString) -> StoreFuture<'a, ()>;

    /// The session of `key` logged out here (`Session::logout`, which removed the
    /// record and revokes the tokens once): tell the other holders, which end theirs
    /// without revoking again (`AuthClient::end_session_stored_at`). The default
    /// tells no one, for a store without a channel between its holders.
    fn announce_logout<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        let _ = key;
        Box::pin(std::future::ready(Ok(())))
    }
}
