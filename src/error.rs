//! The one public error type, [`AuthError`], named for what the app should do next.
//!
//! Protocol details (the RFC 6749 §5.2 error code, the server's description) are kept
//! in [`ServerError`]; every message is built from them and never from a secret.
//! Every message names the party that failed: the authorization server, the resource
//! server, or the token store. The underlying cause (an I/O or TLS error, a JSON error,
//! the store's error), when there is one, is kept as an [`ErrorSource`] and returned by
//! [`std::error::Error::source`].

use std::error::Error;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

/// The underlying cause of an [`AuthError`]: shared, so an error stays `Clone` (every
/// caller waiting on one token request gets the same outcome).
///
/// [`AuthError::source`](std::error::Error::source) returns the cause itself, not
/// this wrapper, so it can be downcast:
///
/// ```
/// use std::error::Error;
/// use tokenkeeper::{AuthError, ErrorSource};
/// let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
/// let error = AuthError::ResourceServerUnavailable {
///     reason: "could not connect to the server".into(),
///     source: Some(ErrorSource::new(io)),
/// };
/// let cause = error.source().unwrap();
/// assert_eq!(cause.downcast_ref::<std::io::Error>().unwrap().kind(), std::io::ErrorKind::ConnectionRefused);
/// ```
///
/// Causes never carry a URL or a secret: HTTP errors are stripped of their URL and a
/// JSON error that could quote a value from a token response is replaced by one that
/// only gives the position.
#[derive(Clone)]
pub struct ErrorSource(Arc<dyn Error + Send + Sync + 'static>);

impl ErrorSource {
    /// Wraps `error` as the cause of an [`AuthError`].
    pub fn new(error: impl Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(error))
    }
}

impl ErrorSource {
    /// A cause a transport boxed (see [`crate::transport::TransportError`]).
    pub(crate) fn from_boxed(error: Box<dyn Error + Send + Sync + 'static>) -> Self {
        Self(Arc::from(error))
    }

    /// A JSON error from parsing a server's body. A syntax error's message is a fixed
    /// text and a position; a data error's message may quote a value from the body (a
    /// token), so it is replaced by one that keeps only the position.
    pub(crate) fn json(error: serde_json::Error) -> Self {
        if error.is_syntax() || error.is_eof() {
            return Self::new(error);
        }
        Self::new(<serde_json::Error as serde::de::Error>::custom(format!(
            "a value has the wrong type or is out of range at line {} column {}",
            error.line(),
            error.column()
        )))
    }
}

/// Dereferences to the cause, which is what `AuthError::source()` returns.
impl Deref for ErrorSource {
    type Target = dyn Error + Send + Sync + 'static;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl fmt::Debug for ErrorSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for ErrorSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

/// Two causes are equal when they are the same shared error or say the same thing, so
/// errors compare by what they report (causes have no `PartialEq` of their own).
impl PartialEq for ErrorSource {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

/// What an authorization server said in an RFC 6749 §5.2 error response.
///
/// `description` and `uri` are the server's own words, truncated to a sane length and
/// stripped of control characters so a hostile server cannot flood logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerError {
    /// The `error` code, e.g. `invalid_client`.
    pub code: String,
    /// The optional `error_description`.
    pub description: Option<String>,
    /// The optional `error_uri`.
    pub uri: Option<String>,
    /// The HTTP status of the error response.
    pub status: u16,
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (HTTP {})", self.code, self.status)?;
        if let Some(description) = &self.description {
            write!(f, ": {description}")?;
        }
        Ok(())
    }
}

/// Which check a JWT from the authorization server (an ID token, a logout token)
/// failed; carried by [`JwtError`] in [`AuthError::InvalidJwt`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JwtCheck {
    /// Not a compact JWS with JSON header and claims, or a required claim is missing
    /// or has the wrong type.
    Malformed,
    /// `alg` is `none`, symmetric (`HS*`), or not one the issuer announces.
    Algorithm,
    /// The issuer's key set has no key with the token's `kid`, even after a refetch.
    UnknownKey,
    /// The signature does not verify.
    Signature,
    /// The key set at `jwks_uri` is not a JWK Set, or an ID token arrived (with
    /// `openid` in scope) and no key set is configured to verify it: no discovery,
    /// no [`AuthConfig::jwks_uri`](crate::AuthConfig::jwks_uri).
    KeySet,
    /// `iss` is not exactly the issuer.
    Issuer,
    /// `aud` does not contain the client id.
    Audience,
    /// `azp` is missing with several audiences, or is not the client id.
    AuthorizedParty,
    /// `exp` has passed (beyond the tolerated clock skew).
    Expired,
    /// `iat` is in the future (beyond the tolerated clock skew).
    IssuedAt,
    /// `nonce` is not the one the authorization request sent.
    Nonce,
    /// `auth_time` is missing or older than the requested `max_age`.
    AuthTime,
    /// `at_hash` does not match the access token issued with it.
    AccessTokenHash,
    /// A refreshed ID token names another `iss` or `sub` than the session's (OIDC Core §12.2),
    /// or UserInfo answered for another `sub`.
    SubjectChanged,
    /// A logout token's `events` claim lacks the back-channel logout event
    /// (OIDC Back-Channel Logout 1.0 §2.4).
    Events,
    /// A logout token's `jti` was seen before: a replay (§2.6, step 7).
    Replayed,
}

impl fmt::Display for JwtCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Malformed => "format",
            Self::Algorithm => "algorithm",
            Self::UnknownKey => "key id",
            Self::Signature => "signature",
            Self::KeySet => "key set",
            Self::Issuer => "iss",
            Self::Audience => "aud",
            Self::AuthorizedParty => "azp",
            Self::Expired => "exp",
            Self::IssuedAt => "iat",
            Self::Nonce => "nonce",
            Self::AuthTime => "auth_time",
            Self::AccessTokenHash => "at_hash",
            Self::SubjectChanged => "same subject",
            Self::Events => "events",
            Self::Replayed => "jti",
        })
    }
}

/// A JWT refused by a named [`JwtCheck`], with what was wrong. The reason never
/// quotes the token or a claim value that could identify the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtError {
    /// The check that failed.
    pub check: JwtCheck,
    /// What was wrong, for logs.
    pub reason: String,
}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "failed the {} check: {}", self.check, self.reason)
    }
}

impl Error for JwtError {}

/// Everything that can go wrong while getting or using a token.
///
/// Variants are grouped by the action they call for:
/// - fix the configuration: [`InvalidClient`](Self::InvalidClient),
///   [`UnauthorizedClient`](Self::UnauthorizedClient),
///   [`UnsupportedGrantType`](Self::UnsupportedGrantType),
///   [`InvalidScope`](Self::InvalidScope), [`InvalidRequest`](Self::InvalidRequest),
///   [`InvalidConfig`](Self::InvalidConfig);
/// - ask the user to sign in: [`InvalidGrant`](Self::InvalidGrant) (from `login`),
///   [`ReauthenticationRequired`](Self::ReauthenticationRequired);
/// - try again later: every error for which [`is_retryable`](Self::is_retryable) is true.
///
/// Messages never contain a secret: not the client secret, password, or any token.
///
/// ```
/// use tokenkeeper::AuthError;
/// fn message_for_user(error: &AuthError) -> &'static str {
///     match error {
///         AuthError::ReauthenticationRequired { .. } | AuthError::InvalidGrant(_) => "Please sign in again.",
///         e if e.is_retryable() => "The service is not available right now. Please try again later.",
///         _ => "Something is wrong with the app's configuration.",
///     }
/// }
/// ```
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// `invalid_client`: the server did not accept the client id or secret.
    #[error("the authorization server rejected the client credentials: {0}. Hint: check the client id and secret for typos or stray whitespace, that they belong to this environment (production vs test), and the client authentication method (Basic vs Post)")]
    InvalidClient(ServerError),
    /// `invalid_grant`: the password, refresh token or other grant is wrong, expired or revoked.
    #[error("the authorization server rejected the grant: {0}. Hint: the username or password is wrong, or the refresh token expired or was revoked; the user must sign in again")]
    InvalidGrant(ServerError),
    /// `invalid_scope`: a requested scope is unknown or not allowed for this client.
    #[error("the authorization server rejected the requested scope: {0}. Hint: check the scope names and that the client is allowed to request them")]
    InvalidScope(ServerError),
    /// `unauthorized_client`: this client may not use this grant type.
    #[error("the client is not authorized for this grant type: {0}. Hint: enable the grant type (client credentials, password, refresh token) for this client on the authorization server")]
    UnauthorizedClient(ServerError),
    /// `unsupported_grant_type`: the server does not support this grant type at all.
    #[error("the authorization server does not support this grant type: {0}. Hint: check the token endpoint URL and the server's supported grant types")]
    UnsupportedGrantType(ServerError),
    /// `invalid_request`: a parameter is missing, repeated or malformed.
    #[error("the authorization server rejected the request as malformed: {0}. Hint: check the token endpoint URL, the client authentication method and the audience/resource parameters")]
    InvalidRequest(ServerError),
    /// Any other error code the server sent (RFC 6749 §8.5 allows extensions).
    #[error("the authorization server returned an error: {0}")]
    OAuth(ServerError),
    /// A 401 whose Bearer challenge says `error="insufficient_scope"` (RFC 6750 §3.1):
    /// the token is valid but lacks permission. A new token would not help; the token
    /// is kept. (A 403 is not an error: [`Session::send`](crate::Session::send) returns
    /// the response, and [`insufficient_scope`](crate::insufficient_scope) reads it.)
    #[error("the resource server refused the request: the access token lacks the permission for it{}", required_scope.as_ref().map(|s| format!(" (required scope: {s})")).unwrap_or_default())]
    InsufficientScope {
        /// The scope the resource server says is needed, if it said so.
        required_scope: Option<String>,
    },
    /// No way is left to get a token silently: the user must sign in again.
    #[error("the user must sign in again: {reason}")]
    ReauthenticationRequired {
        /// Why silent recovery was not possible.
        reason: String,
    },
    /// The authorization server could not be reached (network failure, timeout, TLS
    /// error) or answered HTTP 5xx or 429: try again later.
    #[error("the authorization server is temporarily unavailable: {reason}{}", retry_after.map(|d| format!(" (retry after {} s)", d.as_secs())).unwrap_or_default())]
    TemporarilyUnavailable {
        /// What failed.
        reason: String,
        /// The HTTP status, when there was a response.
        status: Option<u16>,
        /// How long the server asked us to wait (`Retry-After`).
        retry_after: Option<Duration>,
        /// The I/O or TLS error, when there was no response.
        source: Option<ErrorSource>,
    },
    /// With [`RecoveryPolicy::ClearAndFail`](crate::RecoveryPolicy::ClearAndFail): the
    /// token was revoked and has been dropped; the next call signs in again.
    #[error("the resource server rejected the access token as revoked; the cached token was cleared, try again")]
    TokenRevoked,
    /// The token was rejected and has been renewed, but the request was not re-sent
    /// because replaying it is not known to be safe (e.g. a POST without an idempotency key).
    #[error("the resource server rejected the access token; it has been renewed, but the {method} request was not re-sent because it is not safe to replay; send it again if that is safe")]
    RequestNotReplayed {
        /// The HTTP method of the request that was not re-sent.
        method: String,
    },
    /// The server answered with something that is not a valid token response.
    #[error("invalid response from the authorization server (HTTP {status}): {reason}")]
    InvalidResponse {
        /// The HTTP status of the response.
        status: u16,
        /// What was wrong with it.
        reason: String,
        /// The JSON error, for a body that could not be parsed.
        source: Option<ErrorSource>,
    },
    /// The configuration is not usable (bad URL, http on a non-loopback host, …).
    #[error("invalid configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
    /// The token store failed to load, save or remove a refresh token.
    #[error("the token store failed: {reason}")]
    Storage {
        /// What failed.
        reason: String,
        /// The store's own error.
        source: Option<ErrorSource>,
    },
    /// The request [`Session::send`](crate::Session::send) made to the resource server
    /// (the app's API) failed without a response: connection refused, TLS failure,
    /// timeout, or the connection broke mid-response. The token is kept. Retryable, but
    /// a request that is not safe to replay (a POST) may have reached the server.
    #[error("the resource server could not be reached: {reason}")]
    ResourceServerUnavailable {
        /// What failed (never the URL: it may carry a query the app considers private).
        reason: String,
        /// The I/O, TLS or HTTP error.
        source: Option<ErrorSource>,
    },
    /// `access_denied` (RFC 6749 §4.1.2.1, RFC 8628 §3.5): the user (or the server's
    /// policy) refused the sign-in. Offer to start again.
    #[error("the sign-in was refused: {0}")]
    AccessDenied(ServerError),
    /// The redirect's `state` is not the one this sign-in sent (RFC 6749 §10.12): it
    /// belongs to another sign-in or was forged. Nothing was exchanged; start again.
    #[error("the redirect does not belong to this sign-in (state mismatch); start the sign-in again")]
    StateMismatch,
    /// The authorization response or server metadata names another issuer than
    /// expected (RFC 9207 §2.4, RFC 8414 §3.3): a possible mix-up attack or a
    /// misconfigured issuer URL. Nothing was exchanged.
    #[error("the authorization server identified itself as {} but {expected} was expected", actual.as_deref().unwrap_or("nobody (no iss parameter)"))]
    IssuerMismatch {
        /// The issuer configured or discovered.
        expected: String,
        /// The issuer the server named, if it named one.
        actual: Option<String>,
    },
    /// The redirect URL handed back to the SDK is not an authorization response.
    #[error("the redirect is not a usable authorization response: {reason}")]
    InvalidRedirect {
        /// What is wrong with it.
        reason: String,
    },
    /// `expired_token` (RFC 8628 §3.5): the device code expired before the user
    /// approved it. Start a new device authorization.
    #[error("the device code expired before the user approved the sign-in; start again")]
    DeviceCodeExpired,
    /// The app cancelled the sign-in, or the loopback listener's
    /// [`wait_for`](crate::signin::LoopbackRedirect::wait_for) ran out of time.
    #[error("the sign-in was cancelled")]
    Cancelled,
    /// A JWT from the authorization server (the ID token of a sign-in or refresh, a
    /// logout token) was refused; [`JwtError::check`] names the check. No token from
    /// that response was installed. A wrong `nonce`, `iss` or signature can mean an
    /// attack: start the sign-in again, and report it if it repeats.
    #[error("a JWT from the authorization server was refused: it {0}")]
    InvalidJwt(JwtError),
    /// A 401 whose Bearer challenge says `error="insufficient_user_authentication"`
    /// (RFC 9470 §3): the resource wants a stronger or more recent login than the
    /// token's. The token is kept. Start a sign-in with
    /// [`AuthorizationRequest::step_up`](crate::signin::AuthorizationRequest::step_up);
    /// its token replaces the session's, for the same user.
    #[error("the resource server asks for a stronger sign-in{}{}", acr_values.as_ref().map(|a| format!(" (acr_values: {a})")).unwrap_or_default(), max_age.map(|m| format!(" (max_age: {} s)", m.as_secs())).unwrap_or_default())]
    StepUpRequired {
        /// The authentication context classes the resource asks for.
        acr_values: Option<String>,
        /// How recent the login must be.
        max_age: Option<Duration>,
    },
    /// A saved sign-in ([`AuthClient::save_authorization`](crate::AuthClient::save_authorization))
    /// cannot be completed: expired, completed already (a replay), unreadable, or its
    /// key is gone. Nothing was sent to the server; start the sign-in again.
    #[error("the saved sign-in cannot be completed: {0}; start the sign-in again")]
    SavedSignInRefused(crate::signin::SavedSignInRefusal),
}

impl AuthError {
    /// True when "try again later" is the right message: network errors and timeouts
    /// (reaching either server), HTTP 5xx/429 from the authorization server, a revoked
    /// token under `ClearAndFail`, or a request that was not replayed after its token
    /// was renewed.
    ///
    /// ```
    /// # use tokenkeeper::AuthError;
    /// assert!(AuthError::TokenRevoked.is_retryable());
    /// assert!(!AuthError::InvalidConfig { reason: "x".into() }.is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::TemporarilyUnavailable { .. }
                | Self::ResourceServerUnavailable { .. }
                | Self::TokenRevoked
                | Self::RequestNotReplayed { .. }
        )
    }

    /// The server's error details, for the RFC 6749 §5.2 variants.
    pub fn server_error(&self) -> Option<&ServerError> {
        match self {
            Self::InvalidClient(e)
            | Self::InvalidGrant(e)
            | Self::InvalidScope(e)
            | Self::UnauthorizedClient(e)
            | Self::UnsupportedGrantType(e)
            | Self::InvalidRequest(e)
            | Self::OAuth(e)
            | Self::AccessDenied(e) => Some(e),
            _ => None,
        }
    }

    pub(crate) fn config(reason: impl Into<String>) -> Self {
        Self::InvalidConfig { reason: reason.into() }
    }

    pub(crate) fn reauthenticate(reason: impl Into<String>) -> Self {
        Self::ReauthenticationRequired { reason: reason.into() }
    }

    pub(crate) fn unavailable(reason: impl Into<String>) -> Self {
        Self::TemporarilyUnavailable {
            reason: reason.into(),
            status: None,
            retry_after: None,
            source: None,
        }
    }

    /// `Session::send`'s request failed without a response: described as for the
    /// authorization server, but naming the resource server, and never retried here.
    #[cfg(feature = "reqwest")]
    pub(crate) fn from_resource_request(error: reqwest::Error) -> Self {
        let host = error
            .url()
            .and_then(|u| u.host_str())
            .map(|h| format!(" ({h})"))
            .unwrap_or_default();
        let error = crate::transport::reqwest_transport_error(error);
        match crate::internal::transport::unavailable(error, &host) {
            Self::TemporarilyUnavailable { reason, source, .. } => Self::ResourceServerUnavailable { reason, source },
            other => other,
        }
    }
}
