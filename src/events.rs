//! [`AuthEvent`]s and the [`AuthEventListener`] that observes them, for alerting and
//! metrics. Events carry the session's identity and never a secret.

use crate::identity::Identity;
use crate::token::Timestamp;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// Something that happened to a session.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum AuthEvent {
    /// A token was obtained with credentials (login or client credentials).
    TokenIssued {
        /// Whose token.
        identity: Identity,
        /// When it expires.
        expires_at: Timestamp,
    },
    /// A token was renewed with the refresh-token grant.
    TokenRefreshed {
        /// Whose token.
        identity: Identity,
        /// When the new token expires.
        expires_at: Timestamp,
    },
    /// A resource server rejected the session's token as revoked or invalid.
    RevocationDetected {
        /// Whose token.
        identity: Identity,
    },
    /// After a revocation, a new token was obtained without asking the user.
    Reauthenticated {
        /// Whose token.
        identity: Identity,
    },
    /// Getting a token with credentials failed. Raise an operations alert: it needs a person.
    LoginFailed {
        /// Whose login.
        identity: Identity,
        /// The error's message (never contains a secret).
        reason: String,
    },
    /// The session logged out and forgot its tokens.
    LoggedOut {
        /// Whose session.
        identity: Identity,
    },
    /// The server rejected every credential the session holds: route the user to
    /// the sign-in screen. Emitted once per such rejection; until the app signs the
    /// user in again, calls fail at once without a token request.
    ReauthenticationRequired {
        /// Whose session needs the user.
        identity: Identity,
        /// Why (never contains a secret).
        reason: String,
    },
    /// A refresh token could not be saved in the [`TokenStore`](crate::TokenStore).
    /// The session goes on with the token in memory, the stale stored entry was
    /// removed, and the save is retried at the next change; until then a restart
    /// would need the user to sign in again.
    PersistFailed {
        /// Whose refresh token.
        identity: Identity,
        /// What the store said (never contains a secret).
        reason: String,
    },
    /// A resource server kept rejecting fresh tokens, so automatic recovery is paused
    /// (a circuit breaker): until `until`, 401 responses are handed to the app as they
    /// are. Usually a misconfigured API (wrong audience, clock, or key).
    RecoveryPaused {
        /// Whose session.
        identity: Identity,
        /// When recovery resumes.
        until: Timestamp,
    },
}

/// Receives [`AuthEvent`]s, per session in the order they happened, after the change
/// they announce is visible to [`Session::access_token`](crate::Session::access_token)
/// and persisted. It is never called while a token request is in flight or a lock is
/// held, so it may itself ask for a token; still, keep it quick. A listener that
/// panics is caught and logged; it cannot break a token request.
///
/// ```
/// use tokenkeeper::{AuthEvent, AuthEventListener};
/// struct Alerts;
/// impl AuthEventListener for Alerts {
///     fn on_event(&self, event: &AuthEvent) {
///         if let AuthEvent::LoginFailed { identity, reason } = event {
///             eprintln!("ALERT: login failed for {identity}: {reason}");
///         }
///     }
/// }
/// ```
pub trait AuthEventListener: Send + Sync {
    /// Called once per event.
    fn on_event(&self, event: &AuthEvent);
}

fn kind(identity: &Identity) -> &'static str {
    match identity.subject() {
        crate::identity::Subject::Client => "client",
        crate::identity::Subject::User(_) => "user",
    }
}

/// Logs every event with `tracing` and forwards it to the app's listener, if any.
#[derive(Clone, Default)]
pub(crate) struct EventSink {
    listener: Option<Arc<dyn AuthEventListener>>,
}

impl EventSink {
    pub(crate) fn new(listener: Option<Arc<dyn AuthEventListener>>) -> Self {
        Self { listener }
    }

    pub(crate) fn emit(&self, event: AuthEvent) {
        // Above DEBUG, logs name the kind of session, never the user.
        match &event {
            AuthEvent::LoginFailed { identity, reason } => {
                tracing::warn!(session = kind(identity), %reason, "login failed");
                tracing::debug!(%identity, "login failed for this identity");
            }
            AuthEvent::RevocationDetected { identity } => {
                tracing::info!(session = kind(identity), "token revocation detected");
                tracing::debug!(%identity, "token revocation detected for this identity");
            }
            AuthEvent::ReauthenticationRequired { identity, reason } => {
                tracing::warn!(session = kind(identity), %reason, "the user must sign in again");
                tracing::debug!(%identity, "the user must sign in again");
            }
            AuthEvent::PersistFailed { identity, reason } => {
                tracing::warn!(session = kind(identity), %reason, "the refresh token could not be saved");
            }
            other => tracing::debug!(event = ?other, "auth event"),
        }
        if let Some(listener) = &self.listener {
            if catch_unwind(AssertUnwindSafe(|| listener.on_event(&event))).is_err() {
                tracing::error!("AuthEventListener panicked; event dropped");
            }
        }
    }
}
