//! [`AuthConfig`]: one authorization server and one OAuth client, plus the policies
//! that shape caching, recovery and retries. Validation happens in
//! [`AuthClient::new`](crate::AuthClient::new), so building a config never fails.

use crate::clock::{Clock, SystemClock};
use crate::dpop::{DpopKeyStore, DpopMode};
use crate::error::AuthError;
use crate::identity::TokenParams;
use secrecy::SecretString;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// The default proactive refresh margin: five minutes, the buffer commonly recommended.
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// How long a [`TokenStore`](crate::TokenStore) call may take by default: long enough
/// for a keychain's "allow access" prompt, short enough that a hung keychain is noticed.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(30);
/// Lifetime assumed when the server sends neither `expires_in` nor a JWT `exp`.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// Longest lifetime believed from a server; longer (absurd) values are capped.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// How the client authenticates to the token endpoint (RFC 6749 §2.3.1).
/// Ignored for public clients (no secret): they send only `client_id`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientAuthMethod {
    /// `client_secret_basic`: HTTP Basic with the form-urlencoded id and secret.
    #[default]
    Basic,
    /// `client_secret_post`: `client_id` and `client_secret` in the request body.
    Post,
}

/// Whether access tokens are cached (see the README's "two caching strategies").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CachePolicy {
    /// One token per identity, reused until shortly before it expires. Fewer
    /// credential round-trips, fewer tokens in existence, lower latency.
    #[default]
    Cached,
    /// A new token for every call, thrown away after use. Simpler to reason about
    /// but sends the credentials over the network for every request, adds a token
    /// round-trip to each call and multiplies the tokens in existence.
    PerRequest,
}

/// What a session does when a request fails because its token was revoked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RecoveryPolicy {
    /// Get a new token (refresh token first, then the in-memory
    /// credentials) and retry the request once, without bothering the user.
    #[default]
    Silent,
    /// The strict strategy: drop the cached token and fail with the retryable
    /// [`AuthError::TokenRevoked`]; the next call starts over with a new login.
    ClearAndFail,
}

/// Retries of token requests after transient failures (network errors, timeouts,
/// HTTP 5xx and 429). OAuth error responses are never retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, including the first (1 disables retries).
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubled after each failure, with jitter.
    pub initial_backoff: Duration,
    /// Upper bound of one backoff.
    pub max_backoff: Duration,
    /// No retry starts after this much time since the first attempt.
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
            deadline: Duration::from_secs(30),
        }
    }
}

/// Per-response token rotation: the resource server returns a new access
/// token in a response header, to be used for the next requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRotation {
    /// Header carrying the new access token, e.g. `access-token`.
    pub token_header: String,
    /// Header carrying its expiry in seconds since the Unix epoch, e.g. `expiry`.
    pub expiry_header: String,
}

impl TokenRotation {
    /// Rotation with the given header names.
    pub fn headers(token_header: impl Into<String>, expiry_header: impl Into<String>) -> Self {
        Self {
            token_header: token_header.into(),
            expiry_header: expiry_header.into(),
        }
    }
}

/// Configuration of an [`AuthClient`](crate::AuthClient).
///
/// ```
/// use tokenkeeper::{AuthConfig, ClientAuthMethod};
/// use secrecy::SecretString;
/// use std::time::Duration;
/// let config = AuthConfig::new("https://as.example.com/oauth2/token", "my-client")
///     .client_secret(SecretString::from("s3cret"))
///     .client_auth_method(ClientAuthMethod::Post)
///     .scopes(["read", "write"])
///     .refresh_margin(Duration::from_secs(120));
/// assert!(!format!("{config:?}").contains("s3cret"));
/// ```
#[derive(Clone)]
pub struct AuthConfig {
    pub(crate) token_endpoint: String,
    pub(crate) client_id: String,
    pub(crate) client_secret: Option<SecretString>,
    pub(crate) client_auth_method: ClientAuthMethod,
    pub(crate) revocation_endpoint: Option<String>,
    /// Scopes, audience and resource requested when a session names none.
    pub(crate) default_params: TokenParams,
    pub(crate) refresh_margin: Duration,
    pub(crate) default_token_lifetime: Duration,
    pub(crate) cache_policy: CachePolicy,
    pub(crate) recovery_policy: RecoveryPolicy,
    pub(crate) retry_policy: RetryPolicy,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) token_rotation: Option<TokenRotation>,
    /// `None` is the system clock, which the cached read then calls without a vtable.
    pub(crate) clock: Option<Arc<dyn Clock>>,
    /// Extra trusted roots (PEM or DER) for the default HTTP client.
    pub(crate) root_certificates: Vec<Vec<u8>>,
    pub(crate) store_lock_directory: Option<PathBuf>,
    pub(crate) store_timeout: Duration,
    pub(crate) offline_start: bool,
    /// Hosts reached over plain http during development (emulator, simulator, LAN).
    pub(crate) development_http_hosts: Vec<String>,
    /// Sign-in endpoints and issuer (see [`crate::signin`]).
    pub(crate) authorization_endpoint: Option<String>,
    pub(crate) device_authorization_endpoint: Option<String>,
    pub(crate) issuer: Option<String>,
    pub(crate) require_iss: bool,
    /// OpenID Connect endpoints (see [`crate::oidc`]).
    pub(crate) oidc: crate::oidc::OidcConfig,
    /// Sender-constrained tokens (RFC 9449).
    pub(crate) dpop: DpopMode,
    /// What discovery read from `dpop_signing_alg_values_supported`: `Some(false)`
    /// when the metadata was read and ES256 is not in it (or the member is absent).
    pub(crate) dpop_advertised: Option<bool>,
    /// Where DPoP keys live when not in the session record (a platform keystore).
    pub(crate) dpop_keys: Option<Arc<dyn DpopKeyStore>>,
}

impl AuthConfig {
    /// A configuration for `client_id` at `token_endpoint`, with every policy at its default.
    pub fn new(token_endpoint: impl Into<String>, client_id: impl Into<String>) -> Self {
        Self {
            token_endpoint: token_endpoint.into(),
            client_id: client_id.into(),
            client_secret: None,
            client_auth_method: ClientAuthMethod::default(),
            revocation_endpoint: None,
            default_params: TokenParams::default(),
            refresh_margin: DEFAULT_REFRESH_MARGIN,
            default_token_lifetime: DEFAULT_TOKEN_LIFETIME,
            cache_policy: CachePolicy::default(),
            recovery_policy: RecoveryPolicy::default(),
            retry_policy: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            token_rotation: None,
            clock: None,
            root_certificates: Vec::new(),
            store_lock_directory: None,
            store_timeout: DEFAULT_STORE_TIMEOUT,
            offline_start: true,
            development_http_hosts: Vec::new(),
            authorization_endpoint: None,
            device_authorization_endpoint: None,
            issuer: None,
            require_iss: false,
            oidc: crate::oidc::OidcConfig::default(),
            dpop: DpopMode::Off,
            dpop_advertised: None,
            dpop_keys: None,
        }
    }

    /// The client secret of a confidential client. Kept in memory only.
    pub fn client_secret(mut self, secret: SecretString) -> Self {
        self.client_secret = Some(secret);
        self
    }

    /// How the client authenticates (default [`ClientAuthMethod::Basic`]).
    pub fn client_auth_method(mut self, method: ClientAuthMethod) -> Self {
        self.client_auth_method = method;
        self
    }

    /// The RFC 7009 revocation endpoint used by [`Session::logout`](crate::Session::logout).
    pub fn revocation_endpoint(mut self, url: impl Into<String>) -> Self {
        self.revocation_endpoint = Some(url.into());
        self
    }

    /// Default scopes requested for every session.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.default_params = self.default_params.scopes(scopes);
        self
    }

    /// Default `audience` parameter (used by Auth0 and others).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.default_params = self.default_params.audience(audience);
        self
    }

    /// Default RFC 8707 `resource` parameter.
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.default_params = self.default_params.resource(resource);
        self
    }

    /// How long before expiry a token is refreshed (default 5 minutes). For short-lived
    /// tokens the margin is capped at half the token's lifetime.
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    /// Lifetime assumed when the server gives neither `expires_in` nor a JWT `exp` (default 1 hour).
    pub fn default_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.default_token_lifetime = lifetime;
        self
    }

    /// Caching strategy (default [`CachePolicy::Cached`]).
    pub fn cache_policy(mut self, policy: CachePolicy) -> Self {
        self.cache_policy = policy;
        self
    }

    /// Behaviour after a revoked token (default [`RecoveryPolicy::Silent`]).
    pub fn recovery_policy(mut self, policy: RecoveryPolicy) -> Self {
        self.recovery_policy = policy;
        self
    }

    /// Retries of token requests after transient failures.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry_policy = policy;
        self
    }

    /// TCP/TLS connect timeout (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Timeout of one whole HTTP exchange (default 30 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Enables per-response token rotation.
    pub fn token_rotation(mut self, rotation: TokenRotation) -> Self {
        self.token_rotation = Some(rotation);
        self
    }

    /// The clock used for expiry and backoff (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The clock [`clock`](Self::clock) set, or the system clock, for a part that keeps
    /// one of its own.
    pub(crate) fn shared_clock(&self) -> Arc<dyn Clock> {
        self.clock.clone().unwrap_or_else(|| Arc::new(SystemClock))
    }

    /// Trusts one more root certificate authority, given as PEM (one or more
    /// `CERTIFICATE` blocks) or DER: for a private CA, or a corporate proxy that
    /// inspects TLS. The roots compiled into the SDK (the Mozilla bundle) stay trusted.
    /// Applies to the default HTTP client only, not to one passed to
    /// [`AuthClientBuilder::http_client`](crate::AuthClientBuilder::http_client). A
    /// certificate that cannot be read makes `build()` fail with `InvalidConfig`.
    pub fn add_root_certificate(mut self, pem_or_der: impl Into<Vec<u8>>) -> Self {
        self.root_certificates.push(pem_or_der.into());
        self
    }

    /// A directory shared by every process of the app (an app group container on
    /// iOS, the app's data directory on desktops) where sessions take an OS file lock
    /// per store key for the duration of a refresh. With it, two processes sharing a
    /// store (an app and its widget or share extension, two desktop windows) never
    /// spend the same rotating refresh token twice: the second re-reads the store and
    /// adopts the token the first saved. Without it (the default) refreshes are
    /// serialised only within this process, across all its `AuthClient`s.
    pub fn store_lock_directory(mut self, directory: impl Into<PathBuf>) -> Self {
        self.store_lock_directory = Some(directory.into());
        self
    }

    /// How long one [`TokenStore`](crate::TokenStore) call (or the wait for another
    /// holder's refresh lock) may take before it counts as failed (default 30 s). A
    /// slow keychain then never stalls token delivery past this bound.
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeout = timeout;
        self
    }

    /// Offline start (default on): the stored session record also holds the current
    /// access token and its expiry, so [`AuthClient::restore`](crate::AuthClient::restore)
    /// serves a still-valid token at once, with no token request and with the server
    /// unreachable; it is refreshed in the background when due, like any cached token.
    ///
    /// The access token then sits in the app's [`TokenStore`](crate::TokenStore) next
    /// to the refresh token, which is the more powerful secret of the two (it mints
    /// access tokens for weeks; an access token lives minutes to an hour and is
    /// replaced at every refresh). In an OS keychain both are encrypted at rest and
    /// readable by this app only, so the access token adds little exposure; in a
    /// [`FileStore`](crate::FileStore) both are as weak as the file permissions.
    /// The record is rewritten at every refresh (not only at rotations), and a store
    /// too small for the access token (Windows Credential Manager caps a credential
    /// at 2,560 bytes) gets the record without it. `false` stores the refresh token
    /// alone, and every cold start costs a refresh.
    pub fn offline_start(mut self, enabled: bool) -> Self {
        self.offline_start = enabled;
        self
    }

    /// **Development only**: allows plain http to these hosts (exact host names or IP
    /// literals, such as `10.0.2.2`, the Android emulator's address of the host
    /// machine). Every other host still needs https, and loopback is always allowed.
    /// Building a client with this set logs a warning naming the hosts: tokens and
    /// secrets to them travel in clear text, so never ship it in a release build.
    pub fn allow_http_for_development_hosts<I, S>(mut self, hosts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.development_http_hosts = hosts.into_iter().map(Into::into).collect();
        self
    }

    /// The authorization endpoint (RFC 6749 §3.1) for
    /// [`AuthClient::authorization_request`](crate::AuthClient::authorization_request).
    pub fn authorization_endpoint(mut self, url: impl Into<String>) -> Self {
        self.authorization_endpoint = Some(url.into());
        self
    }

    /// The device authorization endpoint (RFC 8628 §3.1) for
    /// [`AuthClient::start_device_authorization`](crate::AuthClient::start_device_authorization).
    pub fn device_authorization_endpoint(mut self, url: impl Into<String>) -> Self {
        self.device_authorization_endpoint = Some(url.into());
        self
    }

    /// The authorization server's issuer identifier (RFC 8414 §2). When set, an
    /// `iss` parameter in an authorization response must equal it (RFC 9207 §2.4);
    /// with `require_iss`, a response without `iss` is rejected too (set by
    /// [`AuthConfig::discover`] when the server advertises
    /// `authorization_response_iss_parameter_supported`).
    pub fn issuer(mut self, issuer: impl Into<String>, require_iss: bool) -> Self {
        self.issuer = Some(issuer.into());
        self.require_iss = require_iss;
        self
    }

    /// Sender-constrained tokens with DPoP (RFC 9449): off by default. With
    /// [`DpopMode::Required`] every token request and every request
    /// [`Session::send`](crate::Session::send) makes carries a proof signed by the
    /// session's key, and a server that answers with a bearer token is an error.
    pub fn dpop(mut self, mode: DpopMode) -> Self {
        self.dpop = mode;
        self
    }

    /// Keeps the sessions' DPoP keys in `keys` (the Android Keystore, the Secure
    /// Enclave, an HSM) instead of a [`SoftwareDpopKey`](crate::SoftwareDpopKey) in
    /// each session record: the record then holds the key's alias and thumbprint, never
    /// private material. See [`DpopKeyStore`] for when keys are made and deleted.
    pub fn dpop_key_store(mut self, keys: Arc<dyn DpopKeyStore>) -> Self {
        self.dpop_keys = Some(keys);
        self
    }

    /// Whether proofs are sent: `Required` always, `IfSupported` unless discovery read
    /// metadata that does not offer ES256.
    pub(crate) fn sends_dpop(&self) -> bool {
        match self.dpop {
            DpopMode::Off => false,
            DpopMode::IfSupported => self.dpop_advertised != Some(false),
            DpopMode::Required => true,
        }
    }

    /// Checks URLs, the https-only rule and the numbers; returns the parsed endpoints.
    pub(crate) fn validate(&self) -> Result<ValidatedEndpoints, AuthError> {
        if self.client_id.trim().is_empty() {
            return Err(AuthError::config("client_id is empty"));
        }
        if self.client_id.trim() != self.client_id {
            return Err(AuthError::config("client_id has leading or trailing whitespace"));
        }
        if self.retry_policy.max_attempts == 0 {
            return Err(AuthError::config("retry_policy.max_attempts must be at least 1"));
        }
        if self.request_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(AuthError::config("timeouts must be greater than zero"));
        }
        if self.store_timeout.is_zero() {
            return Err(AuthError::config("store_timeout must be greater than zero"));
        }
        if self.default_token_lifetime.is_zero() {
            return Err(AuthError::config("default_token_lifetime must be greater than zero"));
        }
        if let Some(rotation) = &self.token_rotation {
            for (what, name) in [
                ("token_header", &rotation.token_header),
                ("expiry_header", &rotation.expiry_header),
            ] {
                if !is_header_name(name) {
                    return Err(AuthError::config(format!(
                        "token_rotation.{what} {name:?} is not an HTTP header name"
                    )));
                }
            }
        }
        let dev_hosts = &self.development_http_hosts;
        let token = checked_endpoint("token endpoint", &self.token_endpoint, dev_hosts)?;
        let revocation = self
            .revocation_endpoint
            .as_deref()
            .map(|url| checked_endpoint("revocation endpoint", url, dev_hosts))
            .transpose()?;
        if !dev_hosts.is_empty() {
            tracing::warn!(
                hosts = ?dev_hosts,
                "tokenkeeper: plain http is ALLOWED for these development hosts; \
                 tokens and secrets sent to them are not encrypted. Never ship this setting."
            );
        }
        Ok(ValidatedEndpoints { token, revocation })
    }
}

pub(crate) struct ValidatedEndpoints {
    pub token: Url,
    pub revocation: Option<Url>,
}

/// Endpoints must use https, except on loopback where development servers live:
/// tokens and secrets never cross a network in clear text.
pub(crate) fn checked_endpoint(name: &str, raw: &str, development_http_hosts: &[String]) -> Result<Url, AuthError> {
    let url = Url::parse(raw).map_err(|e| AuthError::config(format!("{name} is not a valid URL: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(AuthError::config(format!("{name} must not contain credentials")));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) || is_development_host(&url, development_http_hosts) => Ok(url),
        "http" => Err(AuthError::config(format!(
            "{name} must use https (http is allowed only for loopback hosts and the hosts named \
             in allow_http_for_development_hosts)"
        ))),
        other => Err(AuthError::config(format!("{name} has unsupported scheme {other:?}"))),
    }
}

fn is_development_host(url: &Url, hosts: &[String]) -> bool {
    // `host_str` is normalised by the URL parser (lower case, IPv6 in brackets).
    url.host_str()
        .is_some_and(|host| hosts.iter().any(|allowed| allowed.trim().eq_ignore_ascii_case(host)))
}

pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("token_endpoint", &self.token_endpoint)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "[redacted]"))
            .field("client_auth_method", &self.client_auth_method)
            .field("revocation_endpoint", &self.revocation_endpoint)
            .field("authorization_endpoint", &self.authorization_endpoint)
            .field("device_authorization_endpoint", &self.device_authorization_endpoint)
            .field("issuer", &self.issuer)
            .field("dpop", &self.dpop)
            .field("dpop_key_store", &self.dpop_keys)
            .field("default_params", &self.default_params)
            .field("refresh_margin", &self.refresh_margin)
            .field("cache_policy", &self.cache_policy)
            .field("recovery_policy", &self.recovery_policy)
            .field("retry_policy", &self.retry_policy)
            .field("store_lock_directory", &self.store_lock_directory)
            .field("offline_start", &self.offline_start)
            .field("development_http_hosts", &self.development_http_hosts)
            .finish_non_exhaustive()
    }
}

/// RFC 9110 §5.1: a field name is a non-empty token (`tchar`s only).
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
