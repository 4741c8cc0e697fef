//! [`AuthEvent`] and [`AuthEventListener`] as the foreign languages see them; the core
//! calls an app's listener through [`ForeignListener`].

use super::error::ListenerError;
use sdk::AuthEvent as Core;
use std::fmt;
use std::sync::Arc;

/// Something that happened to a session. `identity` prints who: `client` or
/// `user:alice`, then any non-default scope, audience or resource. No event carries
/// a secret.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum AuthEvent {
    /// A token was obtained with credentials (login or client credentials).
    TokenIssued {
        /// Whose token.
        identity: String,
        /// When it expires, in seconds since the Unix epoch.
        expires_at_epoch_seconds: i64,
    },
    /// A token was renewed with the refresh-token grant.
    TokenRefreshed {
        /// Whose token.
        identity: String,
        /// When the new token expires, in seconds since the Unix epoch.
        expires_at_epoch_seconds: i64,
    },
    /// A resource server rejected the session's token as revoked or invalid.
    RevocationDetected {
        /// Whose token.
        identity: String,
    },
    /// After a revocation, a new token was obtained without asking the user.
    Reauthenticated {
        /// Whose token.
        identity: String,
    },
    /// Getting a token with credentials failed: worth an operations alert.
    LoginFailed {
        /// Whose login.
        identity: String,
        /// The error's message (never a secret).
        reason: String,
    },
    /// The session logged out and forgot its tokens.
    LoggedOut {
        /// Whose session.
        identity: String,
    },
    /// Every credential the session holds was rejected: only the user can help. Emitted
    /// once per episode; the client-level `reauthenticationRequired` stream carries it.
    ReauthenticationRequired {
        /// Whose session needs the user.
        identity: String,
        /// Why (never a secret).
        reason: String,
    },
    /// A refresh token could not be saved in the app's `TokenStore`; the session goes
    /// on in memory and retries the save at the next change.
    PersistFailed {
        /// Whose refresh token.
        identity: String,
        /// What the store said (never a secret).
        reason: String,
    },
    /// A resource server kept rejecting fresh tokens: automatic recovery is paused
    /// until the given time (seconds since the Unix epoch).
    RecoveryPaused {
        /// Whose session.
        identity: String,
        /// When recovery resumes.
        until_epoch_seconds: i64,
    },
    /// An event this binding does not know yet (the core's enum is non-exhaustive).
    Other {
        /// The event, as the core prints it.
        description: String,
    },
}

fn epoch_seconds(seconds: u64) -> i64 {
    i64::try_from(seconds).unwrap_or(i64::MAX)
}

impl From<&Core> for AuthEvent {
    fn from(event: &Core) -> Self {
        match event {
            Core::TokenIssued { identity, expires_at } => Self::TokenIssued {
                identity: identity.to_string(),
                expires_at_epoch_seconds: epoch_seconds(expires_at.epoch_seconds()),
            },
            Core::TokenRefreshed { identity, expires_at } => Self::TokenRefreshed {
                identity: identity.to_string(),
                expires_at_epoch_seconds: epoch_seconds(expires_at.epoch_seconds()),
            },
            Core::RevocationDetected { identity } => Self::RevocationDetected {
                identity: identity.to_string(),
            },
            Core::Reauthenticated { identity } => Self::Reauthenticated {
                identity: identity.to_string(),
            },
            Core::LoginFailed { identity, reason } => Self::LoginFailed {
                identity: identity.to_string(),
                reason: reason.clone(),
            },
            Core::LoggedOut { identity } => Self::LoggedOut {
                identity: identity.to_string(),
            },
            Core::ReauthenticationRequired { identity, reason } => Self::ReauthenticationRequired {
                identity: identity.to_string(),
                reason: reason.clone(),
            },
            Core::PersistFailed { identity, reason } => Self::PersistFailed {
                identity: identity.to_string(),
                reason: reason.clone(),
            },
            Core::RecoveryPaused { identity, until } => Self::RecoveryPaused {
                identity: identity.to_string(),
                until_epoch_seconds: epoch_seconds(until.epoch_seconds()),
            },
            #[allow(unreachable_patterns)]
            other => Self::Other {
                description: format!("{other:?}"),
            },
        }
    }
}

/// Observes [`AuthEvent`]s, for alerting and metrics.
///
/// Called on tokenkeeper's threads, on the path of the token request that caused
/// the event: return quickly (hand work to your own dispatcher). Anything it throws
/// is logged and ignored; it can never fail or crash a token request.
#[uniffi::export(with_foreign)]
pub trait AuthEventListener: Send + Sync {
    /// Called once per event.
    fn on_event(&self, event: AuthEvent) -> Result<(), ListenerError>;
}

/// The core's view of an app's listener.
pub(crate) struct ForeignListener(pub(crate) Arc<dyn AuthEventListener>);

impl fmt::Debug for ForeignListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ForeignListener")
    }
}

impl sdk::AuthEventListener for ForeignListener {
    fn on_event(&self, event: &Core) {
        // The `Result` return type is what lets UniFFI turn any foreign exception into
        // a value here (through `From<UnexpectedUniFFICallbackError>`) instead of a panic.
        if let Err(error) = self.0.on_event(event.into()) {
            tracing::warn!(%error, "the app's AuthEventListener threw; event dropped");
        }
    }
}
