//! Errors as the foreign languages see them.
//!
//! - [`AuthError`]: the core's `tokenkeeper::AuthError`, one variant per variant, thrown
//!   as `AuthException.<Variant>` in Kotlin and `AuthError.<Variant>` in Swift. It is
//!   a *flat* error: the exception's message is the core's `Display` text (which says
//!   what to do and never contains a secret); the subclass names the action.
//! - [`StoreError`] and [`ListenerError`]: what an app's [`TokenStore`] or
//!   [`AuthEventListener`] throws back into Rust. Any other exception they throw
//!   arrives as [`uniffi::UnexpectedUniFFICallbackError`] and is converted here too,
//!   so a misbehaving app callback becomes an error value, never a Rust panic.
//!
//! [`TokenStore`]: super::TokenStore
//! [`AuthEventListener`]: super::AuthEventListener

use sdk::AuthError as Core;

/// Why a token could not be had, named for what the app should do. See
/// `tokenkeeper::AuthError` for when each happens.
///
/// Retrying later is the right answer exactly for `TemporarilyUnavailable`,
/// `TokenRevoked` and `RequestNotReplayed` (the core's `AuthError::is_retryable`).
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum AuthError {
    /// The server rejected the client id or secret: fix the configuration.
    #[error("{0}")]
    InvalidClient(String),
    /// Wrong password, or an expired or revoked refresh token: ask the user to sign in.
    #[error("{0}")]
    InvalidGrant(String),
    /// A requested scope is unknown or not allowed for this client.
    #[error("{0}")]
    InvalidScope(String),
    /// This client may not use this grant type.
    #[error("{0}")]
    UnauthorizedClient(String),
    /// The server does not support this grant type.
    #[error("{0}")]
    UnsupportedGrantType(String),
    /// The server rejected the request as malformed.
    #[error("{0}")]
    InvalidRequest(String),
    /// Another OAuth error code from the server.
    #[error("{0}")]
    OAuth(String),
    /// A 401 whose challenge says `insufficient_scope`: the token is valid but lacks the
    /// permission; a new token would not help.
    #[error("{0}")]
    InsufficientScope(String),
    /// No silent way is left to get a token: ask the user to sign in again.
    #[error("{0}")]
    ReauthenticationRequired(String),
    /// Network failure, timeout, HTTP 5xx or 429: try again later. The message names
    /// the server that failed.
    #[error("{0}")]
    TemporarilyUnavailable(String),
    /// With `RecoveryPolicy.CLEAR_AND_FAIL`: the token was revoked and dropped; try again.
    #[error("{0}")]
    TokenRevoked(String),
    /// The token was renewed but the request was not re-sent, as replaying it is unsafe.
    #[error("{0}")]
    RequestNotReplayed(String),
    /// The server's answer was not a valid token response.
    #[error("{0}")]
    InvalidResponse(String),
    /// The configuration is unusable (bad URL, http to a non-loopback host, …).
    #[error("{0}")]
    InvalidConfig(String),
    /// The app's token store failed.
    #[error("{0}")]
    Storage(String),
    /// The user (or the server's policy) refused the sign-in: offer to start again.
    #[error("{0}")]
    AccessDenied(String),
    /// The redirect does not belong to this sign-in (`state` differs): start again.
    #[error("{0}")]
    StateMismatch(String),
    /// The server named another issuer than expected (RFC 9207 / RFC 8414): nothing was exchanged.
    #[error("{0}")]
    IssuerMismatch(String),
    /// The redirect URL is not an authorization response.
    #[error("{0}")]
    InvalidRedirect(String),
    /// The device code expired before the user approved: start a new device sign-in.
    #[error("{0}")]
    DeviceCodeExpired(String),
    /// The app cancelled the sign-in.
    #[error("{0}")]
    Cancelled(String),
    /// A saved sign-in expired, was completed already, is unreadable or its key is
    /// gone: nothing was sent; start the sign-in again.
    #[error("{0}")]
    SavedSignInRefused(String),
    /// An ID token (or UserInfo answer) failed a named check, or arrived with no key
    /// set to verify it; nothing was installed. The message names the check.
    #[error("{0}")]
    InvalidJwt(String),
    /// The resource server asks for a stronger sign-in (RFC 9470); the message names
    /// its `acr_values` and `max_age`. Sign in again with `SignInOptions`.
    #[error("{0}")]
    StepUpRequired(String),
    /// A bug in tokenkeeper (a panicked task) or an error this binding does not know yet.
    #[error("{0}")]
    Internal(String),
}

impl From<Core> for AuthError {
    fn from(error: Core) -> Self {
        let message = error.to_string();
        match error {
            Core::InvalidClient(_) => Self::InvalidClient(message),
            Core::InvalidGrant(_) => Self::InvalidGrant(message),
            Core::InvalidScope(_) => Self::InvalidScope(message),
            Core::UnauthorizedClient(_) => Self::UnauthorizedClient(message),
            Core::UnsupportedGrantType(_) => Self::UnsupportedGrantType(message),
            Core::InvalidRequest(_) => Self::InvalidRequest(message),
            Core::OAuth(_) => Self::OAuth(message),
            Core::InsufficientScope { .. } => Self::InsufficientScope(message),
            Core::ReauthenticationRequired { .. } => Self::ReauthenticationRequired(message),
            // The same advice (try again later) for either server; the message names which.
            Core::TemporarilyUnavailable { .. } | Core::ResourceServerUnavailable { .. } => {
                Self::TemporarilyUnavailable(message)
            }
            Core::TokenRevoked => Self::TokenRevoked(message),
            Core::RequestNotReplayed { .. } => Self::RequestNotReplayed(message),
            Core::InvalidResponse { .. } => Self::InvalidResponse(message),
            Core::InvalidConfig { .. } => Self::InvalidConfig(message),
            Core::Storage { .. } => Self::Storage(message),
            Core::AccessDenied(_) => Self::AccessDenied(message),
            Core::StateMismatch => Self::StateMismatch(message),
            Core::IssuerMismatch { .. } => Self::IssuerMismatch(message),
            Core::InvalidRedirect { .. } => Self::InvalidRedirect(message),
            Core::DeviceCodeExpired => Self::DeviceCodeExpired(message),
            Core::Cancelled => Self::Cancelled(message),
            Core::SavedSignInRefused(_) => Self::SavedSignInRefused(message),
            Core::InvalidJwt(_) => Self::InvalidJwt(message),
            Core::StepUpRequired { .. } => Self::StepUpRequired(message),
            // `sdk::AuthError` is #[non_exhaustive]: a variant added later still
            // reaches the app, with its message, until it gets its own subclass here.
            #[allow(unreachable_patterns)]
            _ => Self::Internal(message),
        }
    }
}

/// What an app's `TokenStore` throws when it cannot load, save or remove a token.
///
/// ```kotlin
/// override fun save(key: String, refreshToken: String) {
///     if (!prefs.edit().putString(key, encrypt(refreshToken)).commit())
///         throw StoreException.Failed("could not write shared preferences")
/// }
/// ```
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum StoreError {
    /// The store failed; `reason` is shown in `AuthException.Storage` (keep secrets out).
    #[error("{reason}")]
    Failed {
        /// What failed.
        reason: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for StoreError {
    fn from(error: uniffi::UnexpectedUniFFICallbackError) -> Self {
        Self::Failed {
            reason: format!("the app's TokenStore threw: {}", error.reason),
        }
    }
}

/// What an app's `AuthEventListener` may throw. tokenkeeper logs it and goes on: a
/// listener can never break a token request.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum ListenerError {
    /// The listener failed.
    #[error("{reason}")]
    Failed {
        /// What failed.
        reason: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for ListenerError {
    fn from(error: uniffi::UnexpectedUniFFICallbackError) -> Self {
        Self::Failed { reason: error.reason }
    }
}
