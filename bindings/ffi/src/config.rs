//! [`AuthConfig`] as a record with defaults, and the policy enums it names.
//!
//! The core builds its config with a builder; foreign languages prefer one
//! constructor with named, defaulted arguments (`AuthConfig(tokenEndpoint = …,
//! clientId = …, scopes = listOf("read"))`). Every optional field is `null`/`nil` by
//! default, which means "the core's default": the defaults themselves live only in
//! `tokenkeeper::AuthConfig::new`, never duplicated here.

use super::units::TimeSpan;
use secrecy::SecretString;
use std::fmt;
use std::sync::Arc;

/// One authorization server and one OAuth client. See `tokenkeeper::AuthConfig` for each
/// setting's meaning; validation happens in `AuthClient(config)`.
///
/// Kotlin durations are `kotlin.time.Duration` (no `java.time`, so minSdk 24 needs no
/// desugaring); Swift durations are `TimeInterval`.
/// Its `toString()` / description redacts the client secret.
#[derive(Clone, uniffi::Record)]
#[uniffi::export(Debug)]
pub struct AuthConfig {
    /// The token endpoint URL (https, or http on a loopback host).
    pub token_endpoint: String,
    /// The OAuth client id.
    pub client_id: String,
    /// The client secret; `null` for a public client (an app should rarely embed one).
    #[uniffi(default = None)]
    pub client_secret: Option<String>,
    /// How the client authenticates at the token endpoint (default: Basic).
    #[uniffi(default = None)]
    pub client_auth_method: Option<ClientAuthMethod>,
    /// The RFC 7009 revocation endpoint used by `logout()`, if the server has one.
    #[uniffi(default = None)]
    pub revocation_endpoint: Option<String>,
    /// Scopes to request (default: none, the server's default).
    #[uniffi(default = [])]
    pub scopes: Vec<String>,
    /// The `audience` parameter to request, if the server needs one.
    #[uniffi(default = None)]
    pub audience: Option<String>,
    /// The RFC 8707 `resource` parameter to request.
    #[uniffi(default = None)]
    pub resource: Option<String>,
    /// How long before expiry a token is refreshed proactively (default: 5 minutes).
    #[uniffi(default = None)]
    pub refresh_margin: Option<TimeSpan>,
    /// The lifetime assumed when the server sends no `expires_in` (default: 1 hour).
    #[uniffi(default = None)]
    pub default_token_lifetime: Option<TimeSpan>,
    /// Whether tokens are cached (default) or fetched per request.
    #[uniffi(default = None)]
    pub cache_policy: Option<CachePolicy>,
    /// What happens when a resource server rejects a token (default: silent recovery).
    #[uniffi(default = None)]
    pub recovery_policy: Option<RecoveryPolicy>,
    /// Retries of token requests on transient failures (default: 3 attempts, backoff).
    #[uniffi(default = None)]
    pub retry_policy: Option<RetryPolicy>,
    /// TCP/TLS connect timeout (default: 10 s).
    #[uniffi(default = None)]
    pub connect_timeout: Option<TimeSpan>,
    /// Whole-request timeout (default: 30 s).
    #[uniffi(default = None)]
    pub request_timeout: Option<TimeSpan>,
    /// A directory every process of the app shares (iOS: the app group container;
    /// Android: `context.filesDir`), where refreshes of one stored session take an OS
    /// file lock, so an app and its extension never spend one rotating refresh token
    /// twice (default: none, refreshes are serialised within the process only).
    #[uniffi(default = None)]
    pub store_lock_directory: Option<String>,
    /// How long one `TokenStore` call may take before it counts as failed (default: 30 s).
    #[uniffi(default = None)]
    pub store_timeout: Option<TimeSpan>,
    /// **Development only**: hosts (such as `10.0.2.2`, the Android emulator's address
    /// of the development machine) reached over plain http. Logged loudly as a warning;
    /// https stays mandatory for every other host. Never ship it in a release build.
    #[uniffi(default = [])]
    pub development_http_hosts: Vec<String>,
    /// DPoP (RFC 9449): off (default), when the server supports it, or required.
    #[uniffi(default = None)]
    pub dpop: Option<super::dpop::DpopMode>,
    /// The authorization endpoint, for the browser sign-in (PKCE).
    #[uniffi(default = None)]
    pub authorization_endpoint: Option<String>,
    /// The RFC 8628 device authorization endpoint, for the device sign-in.
    #[uniffi(default = None)]
    pub device_authorization_endpoint: Option<String>,
    /// The server's issuer identifier: a redirect's `iss` must equal it (RFC 9207).
    #[uniffi(default = None)]
    pub issuer: Option<String>,
    /// With `issuer`: reject redirects that carry no `iss` at all.
    #[uniffi(default = false)]
    pub require_iss: bool,
    /// Per-response token rotation: the API returns the token for the next request in
    /// a response header (default: none).
    #[uniffi(default = None)]
    pub token_rotation: Option<TokenRotation>,
    /// Extra trusted root certificate authorities, each PEM (one or more `CERTIFICATE`
    /// blocks) or DER: a private CA or a TLS-inspecting corporate proxy. The built-in
    /// roots stay trusted. An unreadable certificate makes `AuthClient(config)` throw
    /// `InvalidConfig`.
    #[uniffi(default = [])]
    pub root_certificates: Vec<Vec<u8>>,
    /// The provider's OpenID Connect endpoints (key set, UserInfo, end session, PAR).
    #[uniffi(default = None)]
    pub oidc: Option<super::oidc::OidcEndpoints>,
    /// Where DPoP private keys live: the Kotlin package's `AndroidKeystoreDpopKeys`,
    /// the Swift package's `SecureEnclaveDpopKeys`, or the app's own. `null`/`nil`: a
    /// software key in each session record (desktop JVM, tests).
    #[uniffi(default = None)]
    pub dpop_keys: Option<Arc<dyn super::dpop_keys::PlatformDpopKeys>>,
}

/// Per-response token rotation: which response headers carry the new access token
/// and its expiry (seconds since the Unix epoch). See `tokenkeeper::TokenRotation`.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct TokenRotation {
    /// The header with the new access token, e.g. `access-token`.
    pub token_header: String,
    /// The header with its expiry in seconds since the Unix epoch, e.g. `expiry`.
    pub expiry_header: String,
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The core's Debug already redacts the secret and prints the effective values.
        fmt::Debug::fmt(&sdk::AuthConfig::from(self.clone()), f)
    }
}

impl From<AuthConfig> for sdk::AuthConfig {
    fn from(c: AuthConfig) -> Self {
        let mut config = sdk::AuthConfig::new(c.token_endpoint.clone(), c.client_id.clone());
        if let Some(url) = c.revocation_endpoint.clone() {
            config = config.revocation_endpoint(url);
        }
        if let Some(url) = c.authorization_endpoint.clone() {
            config = config.authorization_endpoint(url);
        }
        if let Some(url) = c.device_authorization_endpoint.clone() {
            config = config.device_authorization_endpoint(url);
        }
        if let Some(issuer) = c.issuer.clone() {
            config = config.issuer(issuer, c.require_iss);
        }
        c.settings_onto(config)
    }
}

impl AuthConfig {
    /// Everything but the endpoints, the issuer and the client id, applied to `config`:
    /// a typed config's own, or one discovered from the server's metadata.
    pub(crate) fn settings_onto(self, config: sdk::AuthConfig) -> sdk::AuthConfig {
        let c = self;
        let mut config = config.scopes(c.scopes);
        if let Some(secret) = c.client_secret {
            config = config.client_secret(SecretString::from(secret));
        }
        if let Some(method) = c.client_auth_method {
            config = config.client_auth_method(method.into());
        }
        if let Some(audience) = c.audience {
            config = config.audience(audience);
        }
        if let Some(resource) = c.resource {
            config = config.resource(resource);
        }
        if let Some(margin) = c.refresh_margin {
            config = config.refresh_margin(margin.into());
        }
        if let Some(lifetime) = c.default_token_lifetime {
            config = config.default_token_lifetime(lifetime.into());
        }
        if let Some(policy) = c.cache_policy {
            config = config.cache_policy(policy.into());
        }
        if let Some(mode) = c.dpop {
            config = config.dpop(mode.into());
        }
        if let Some(keys) = c.dpop_keys {
            config = config.dpop_key_store(Arc::new(super::dpop_keys::ForeignDpopKeys(keys)));
        }
        if let Some(policy) = c.recovery_policy {
            config = config.recovery_policy(policy.into());
        }
        if let Some(policy) = c.retry_policy {
            config = config.retry_policy(policy.into());
        }
        if let Some(timeout) = c.connect_timeout {
            config = config.connect_timeout(timeout.into());
        }
        if let Some(timeout) = c.request_timeout {
            config = config.request_timeout(timeout.into());
        }
        if !c.development_http_hosts.is_empty() {
            config = config.allow_http_for_development_hosts(c.development_http_hosts);
        }
        if let Some(directory) = c.store_lock_directory {
            config = config.store_lock_directory(directory);
        }
        if let Some(timeout) = c.store_timeout {
            config = config.store_timeout(timeout.into());
        }
        if let Some(rotation) = c.token_rotation {
            config = config.token_rotation(sdk::TokenRotation::headers(
                rotation.token_header,
                rotation.expiry_header,
            ));
        }
        for certificate in c.root_certificates {
            config = config.add_root_certificate(certificate);
        }
        if let Some(oidc) = c.oidc {
            config = oidc.apply(config);
        }
        config
    }
}

/// How the client authenticates at the token endpoint (RFC 6749 §2.3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum ClientAuthMethod {
    /// HTTP Basic (`client_secret_basic`).
    Basic,
    /// Form parameters (`client_secret_post`).
    Post,
}

impl From<ClientAuthMethod> for sdk::ClientAuthMethod {
    fn from(m: ClientAuthMethod) -> Self {
        match m {
            ClientAuthMethod::Basic => Self::Basic,
            ClientAuthMethod::Post => Self::Post,
        }
    }
}

/// Whether a session caches its token. See `tokenkeeper::CachePolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum CachePolicy {
    /// Reuse the token until shortly before it expires.
    Cached,
    /// Fetch a new token for every request.
    PerRequest,
}

impl From<CachePolicy> for sdk::CachePolicy {
    fn from(p: CachePolicy) -> Self {
        match p {
            CachePolicy::Cached => Self::Cached,
            CachePolicy::PerRequest => Self::PerRequest,
        }
    }
}

/// What a session does when a resource server rejects its token. See
/// `tokenkeeper::RecoveryPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum RecoveryPolicy {
    /// Get a new token without bothering the caller (once per revocation).
    Silent,
    /// Drop the token and fail with `TokenRevoked`; the next call gets a new one.
    ClearAndFail,
}

impl From<RecoveryPolicy> for sdk::RecoveryPolicy {
    fn from(p: RecoveryPolicy) -> Self {
        match p {
            RecoveryPolicy::Silent => Self::Silent,
            RecoveryPolicy::ClearAndFail => Self::ClearAndFail,
        }
    }
}

/// Retries of token requests on network errors, 5xx and 429. See `tokenkeeper::RetryPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Record)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1). Signed, so Kotlin sees an
    /// `Int`, not a `UInt`; zero or less is rejected with `InvalidConfig`.
    pub max_attempts: i32,
    /// The first backoff; it doubles up to `max_backoff`.
    pub initial_backoff: TimeSpan,
    /// The longest backoff.
    pub max_backoff: TimeSpan,
    /// No retry starts after this much time since the first attempt.
    pub deadline: TimeSpan,
}

impl From<RetryPolicy> for sdk::RetryPolicy {
    fn from(p: RetryPolicy) -> Self {
        Self {
            // Zero fails the core's validation with a clear message.
            max_attempts: u32::try_from(p.max_attempts).unwrap_or(0),
            initial_backoff: p.initial_backoff.into(),
            max_backoff: p.max_backoff.into(),
            deadline: p.deadline.into(),
        }
    }
}
