//! A session's state and token changes as the foreign languages see them, and the
//! foreign [`TokenObserver`] that keeps the Kotlin and Swift token mirrors current.
//!
//! The core calls `tokenkeeper::TokenObserver` synchronously from the one place where it
//! writes a session's cache; [`ForeignObserver`] converts each change and hands it to
//! the app side. Anything the foreign observer throws comes back as a
//! [`ListenerError`] value (UniFFI converts unexpected exceptions through `From`), so
//! it is logged here and can never become a Rust panic.

use super::error::ListenerError;
use super::token::AccessToken;
use super::units::{epoch_millis, Moment};
use std::sync::Arc;

/// Where a session stands: signed in (with the cached token's expiry, if one is
/// cached), waiting for the user to sign in again, or logged out.
///
/// Its `toString()` / `description` reads `SignedIn(expiresAtEpochSeconds=1796212800)`,
/// `SignedIn(no token cached)`, `ReauthenticationRequired` or `LoggedOut` (never a token).
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Enum)]
#[uniffi::export(Display)]
pub enum SessionState {
    /// The session holds a token or can get one without the user.
    SignedIn {
        /// When the cached token expires, in seconds since the Unix epoch; `null`/`nil`
        /// while no token is cached.
        expires_at_epoch_seconds: Option<i64>,
        /// The same instant as a platform type (`java.util.Date` / `Date`).
        expires_at: Option<Moment>,
    },
    /// Every credential the session holds was rejected: show the login screen.
    ReauthenticationRequired,
    /// `logout()` was called; the session is finished.
    LoggedOut,
}

impl std::fmt::Display for SessionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SignedIn {
                expires_at_epoch_seconds: Some(at),
                ..
            } => write!(f, "SignedIn(expiresAtEpochSeconds={at})"),
            Self::SignedIn { .. } => f.write_str("SignedIn(no token cached)"),
            Self::ReauthenticationRequired => f.write_str("ReauthenticationRequired"),
            Self::LoggedOut => f.write_str("LoggedOut"),
        }
    }
}

impl From<sdk::SessionState> for SessionState {
    fn from(state: sdk::SessionState) -> Self {
        match state {
            sdk::SessionState::SignedIn { expires_at } => Self::SignedIn {
                expires_at_epoch_seconds: expires_at.map(|t| i64::try_from(t.epoch_seconds()).unwrap_or(i64::MAX)),
                expires_at: expires_at.map(|t| Moment(t.as_system_time())),
            },
            sdk::SessionState::ReauthenticationRequired => Self::ReauthenticationRequired,
            sdk::SessionState::LoggedOut => Self::LoggedOut,
        }
    }
}

/// One change of a session's cached token. Apps rarely see it: the `Session` classes
/// of the Kotlin and Swift packages consume it to keep their copy of the token.
// `Debug` redacts the token value (through `AccessToken`'s).
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
#[uniffi::export(Debug)]
pub struct TokenChange {
    /// Grows with every change of this session's token: never let an older change
    /// replace a newer one. Signed so Kotlin sees a `Long`.
    pub generation: i64,
    /// The cached token, or `null`/`nil` when none is cached.
    pub token: Option<AccessToken>,
    /// Until when (milliseconds since the Unix epoch, on the client's clock: the device's,
    /// or the `ManualClock` given to the client) the token may be served without asking
    /// the session; after it, ask the session, which refreshes.
    pub fresh_until_epoch_millis: Option<i64>,
    /// The session's state after the change.
    pub state: SessionState,
}

impl From<&sdk::TokenChange> for TokenChange {
    fn from(change: &sdk::TokenChange) -> Self {
        Self {
            generation: i64::try_from(change.generation).unwrap_or(i64::MAX),
            token: change.token.clone().map(AccessToken::from),
            fresh_until_epoch_millis: change.fresh_until.map(|t| epoch_millis(t.as_system_time())),
            state: change.state.into(),
        }
    }
}

/// Sees every change of a session's token, synchronously, from the place where the
/// core writes its cache. Keep it to a field write: no blocking, no calls back into
/// the session. What it throws is logged and ignored.
#[uniffi::export(with_foreign)]
pub trait TokenObserver: Send + Sync {
    /// Called once per change, in generation order; the first call, made at
    /// registration, carries the current state.
    fn on_token_change(&self, change: TokenChange) -> Result<(), ListenerError>;
}

/// The core's view of a foreign observer.
pub(crate) struct ForeignObserver(pub(crate) Arc<dyn TokenObserver>);

impl sdk::TokenObserver for ForeignObserver {
    fn on_token_change(&self, change: &sdk::TokenChange) {
        if let Err(error) = self.0.on_token_change(change.into()) {
            tracing::warn!(%error, "the app's TokenObserver threw; change ignored by it");
        }
    }
}
