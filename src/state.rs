//! What a session's state looks like from outside: [`SessionState`], and the
//! [`TokenObserver`] that sees every change of the cached token as a [`TokenChange`].
//!
//! The mobile bindings keep a copy of the token in Kotlin and Swift fed by these
//! changes, so a warm read never crosses the FFI; Rust apps can use the same hook to
//! drive a UI ("signed in until 10:42", "please sign in again").

use crate::token::{AccessToken, Timestamp};

/// Where a session stands, as a login screen or a status bar needs to know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionState {
    /// The session holds a token or can get one without the user.
    SignedIn {
        /// When the cached token expires; `None` while no token is cached (before
        /// the first request, or after [`Session::invalidate`](crate::Session::invalidate)).
        expires_at: Option<Timestamp>,
    },
    /// The server rejected every credential the session holds: only the user can
    /// help. Calls fail at once with
    /// [`AuthError::ReauthenticationRequired`](crate::AuthError::ReauthenticationRequired)
    /// until the app signs the user in again.
    ReauthenticationRequired,
    /// [`Session::logout`](crate::Session::logout) was called; the session is finished.
    LoggedOut,
}

/// One change of a session's cached token, delivered to a [`TokenObserver`]. Its
/// `Debug` redacts the token value (through [`AccessToken`]'s).
#[derive(Clone, Debug)]
pub struct TokenChange {
    /// Grows by one with every change of this session's cached token; a copy made
    /// from an older change must never replace one made from a newer change.
    pub generation: u64,
    /// The cached token, if any. `None` after an invalidation, a revocation, a
    /// logout, or while no token was obtained yet.
    pub token: Option<AccessToken>,
    /// Until when the token may be served without asking the session: its proactive
    /// refresh time, jitter included. After it, ask the session, which refreshes.
    pub fresh_until: Option<Timestamp>,
    /// The session's state after the change.
    pub state: SessionState,
}

/// Sees every change of a session's cached token: issued, refreshed, rotated,
/// recovered, invalidated, logged out. Register it with
/// [`Session::observe`](crate::Session::observe).
///
/// Called synchronously, from the one place where the session writes its cache,
/// before the new token is handed to anyone. Keep it to a field write: it must not
/// block, and must not call back into the session. A panic is caught and logged.
///
/// ```
/// use std::sync::Mutex;
/// use tokenkeeper::{TokenChange, TokenObserver};
/// #[derive(Default)]
/// struct Mirror(Mutex<Option<TokenChange>>);
/// impl TokenObserver for Mirror {
///     fn on_token_change(&self, change: &TokenChange) {
///         let mut held = self.0.lock().unwrap();
///         if held.as_ref().is_none_or(|h| h.generation < change.generation) {
///             *held = Some(change.clone());
///         }
///     }
/// }
/// ```
pub trait TokenObserver: Send + Sync {
    /// Called once per change, in generation order.
    fn on_token_change(&self, change: &TokenChange);
}
