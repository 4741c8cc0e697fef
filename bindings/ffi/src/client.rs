//! [`AuthClient`] and [`Session`] as UniFFI objects: thin handles over the core's.

use super::clock::ManualClock;
use super::config::AuthConfig;
use super::error::AuthError;
use super::events::{AuthEventListener, ForeignListener};
use super::runtime::{run, runtime};
use super::state::{ForeignObserver, SessionState, TokenObserver};
use super::store::{ForeignTokenStore, TokenStore};
use super::token::AccessToken;
use super::transport::{ForeignTransport, HttpTransport};
use super::units::TimeSpan;
use secrecy::SecretString;
use std::collections::HashMap;
use std::sync::Arc;

/// One authorization server and one OAuth client, with its registry of sessions: at
/// most one active token per identity. Create one per server and share it.
///
/// ```kotlin
/// val client = AuthClient(AuthConfig(tokenEndpoint = "https://as.example.com/oauth2/token",
///                                    clientId = "my-app", scopes = listOf("read")),
///                         store = MyKeystoreStore(context), listener = MyMetrics())
/// ```
#[derive(uniffi::Object)]
pub struct AuthClient {
    inner: sdk::AuthClient,
}

#[uniffi::export]
impl AuthClient {
    /// Validates `config` and creates the client (no network traffic yet).
    ///
    /// `store` keeps refresh tokens across restarts (see [`TokenStore`]); `listener`
    /// observes events; `clock` replaces the device clock, in tests only (see
    /// [`ManualClock`]); `transport` is the app's HTTP stack for every request the SDK
    /// sends (see [`HttpTransport`]; required by the `mobile` build, which has no HTTP
    /// stack of its own). Throws `AuthException.InvalidConfig` for an unusable config.
    #[uniffi::constructor(default(store = None, listener = None, clock = None, transport = None))]
    pub fn new(
        config: AuthConfig,
        store: Option<Arc<dyn TokenStore>>,
        listener: Option<Arc<dyn AuthEventListener>>,
        clock: Option<Arc<ManualClock>>,
        transport: Option<Arc<dyn HttpTransport>>,
    ) -> Result<Arc<Self>, AuthError> {
        Self::build(sdk::AuthConfig::from(config), store, listener, clock, transport)
    }

    /// The client's own session (client-credentials grant, RFC 6749 §4.4). Always
    /// the same session for this client.
    pub fn client_credentials_session(&self) -> Arc<Session> {
        Session::wrap(self.inner.client_credentials_session())
    }

    /// Signs `username` in with the password grant (RFC 6749 §4.3). The password is
    /// kept in memory only, to sign in again silently after a revocation.
    ///
    /// Throws `AuthException.InvalidGrant` for a wrong password.
    pub async fn login(&self, username: String, password: String) -> Result<Arc<Session>, AuthError> {
        let client = self.inner.clone();
        let password = SecretString::from(password);
        run(async move { client.login(&username, password).await })
            .await
            .map(Session::wrap)
    }

    /// The signed-in session of `username`, if any: the same session `login` returned.
    pub fn session(&self, username: String) -> Option<Arc<Session>> {
        self.inner.session(&username).map(Session::wrap)
    }

    /// After a restart: the session of `username` from the refresh token in the
    /// client's `TokenStore`, without a password.
    ///
    /// Throws `AuthException.ReauthenticationRequired` when no usable refresh token is
    /// stored: show the login screen.
    pub async fn restore(&self, username: String) -> Result<Arc<Session>, AuthError> {
        let client = self.inner.clone();
        run(async move { client.restore(&username).await })
            .await
            .map(Session::wrap)
    }
}

impl AuthClient {
    /// The client of a core config, with the app's callbacks: shared by the constructor
    /// and discovery (`discovery.rs`).
    pub(crate) fn build(
        mut config: sdk::AuthConfig,
        store: Option<Arc<dyn TokenStore>>,
        listener: Option<Arc<dyn AuthEventListener>>,
        clock: Option<Arc<ManualClock>>,
        transport: Option<Arc<dyn HttpTransport>>,
    ) -> Result<Arc<Self>, AuthError> {
        // The core may build timers or HTTP pools that look for a tokio context.
        let _context = runtime().enter();
        if let Some(clock) = clock {
            config = config.clock(Arc::clone(&clock.inner) as Arc<dyn sdk::Clock>);
        }
        let mut builder = sdk::AuthClient::builder(config);
        if let Some(store) = store {
            builder = builder.store(Arc::new(ForeignTokenStore(store)));
        }
        if let Some(listener) = listener {
            builder = builder.event_listener(Arc::new(ForeignListener(listener)));
        }
        if let Some(transport) = transport {
            builder = builder.transport(Arc::new(ForeignTransport(transport)));
        }
        Ok(Arc::new(Self {
            inner: builder.build()?,
        }))
    }

    /// The core client, for the exports in `signin.rs`.
    pub(crate) fn core(&self) -> &sdk::AuthClient {
        &self.inner
    }
}

/// One identity (the client, or one user) and its token. Cheap to hold; all methods
/// are safe to call concurrently, and concurrent callers share one token request.
///
/// The Kotlin and Swift packages wrap it in their own `Session` class, one object per
/// core session (see [`Session::instance_id`]), so `==` there is object identity.
#[derive(uniffi::Object)]
pub struct Session {
    pub(crate) inner: Arc<sdk::Session>,
}

impl Session {
    pub(crate) fn wrap(inner: Arc<sdk::Session>) -> Arc<Self> {
        Arc::new(Self { inner })
    }

    /// The core session, for the methods other modules export (`oidc`).
    pub(crate) fn core(&self) -> &Arc<sdk::Session> {
        &self.inner
    }
}

#[uniffi::export]
impl Session {
    /// A valid access token: the cached one, or a new one if it is missing or about
    /// to expire (one token request however many callers are waiting).
    pub async fn access_token(&self) -> Result<AccessToken, AuthError> {
        // Fast path: a valid cached token is a plain read, with no task to spawn.
        if let Some(token) = self.inner.cached_access_token() {
            return Ok(token.into());
        }
        let session = Arc::clone(&self.inner);
        run(async move { session.access_token().await })
            .await
            .map(AccessToken::from)
    }

    /// A token valid for at least `min_validity` (as Auth0's `minTtl`): the cached one
    /// if it lasts that long, otherwise a new one first.
    pub async fn access_token_valid_for(&self, min_validity: TimeSpan) -> Result<AccessToken, AuthError> {
        let session = Arc::clone(&self.inner);
        run(async move { session.access_token_valid_for(min_validity.into()).await })
            .await
            .map(AccessToken::from)
    }

    /// Identifies the core session this handle points at: equal for two handles of
    /// the same session, and never reused while a handle is alive. The wrappers use it
    /// to keep one mirror per session.
    pub fn instance_id(&self) -> i64 {
        // The address of the core session, which this handle keeps alive.
        Arc::as_ptr(&self.inner) as usize as i64
    }

    /// Where the session stands now.
    pub fn state(&self) -> SessionState {
        self.inner.state().into()
    }

    /// Registers `observer` for every change of this session's token. It is called
    /// at once with the current state, then synchronously at each change. The
    /// Kotlin and Swift `Session` classes register one to keep their token mirror.
    pub fn observe(&self, observer: Arc<dyn TokenObserver>) {
        self.inner.observe(Arc::new(ForeignObserver(observer)));
    }

    /// The cached token if it is fresh, without waiting, I/O or a coroutine; `null`/`nil`
    /// means call `accessToken()`. For blocking callers such as OkHttp interceptors.
    pub fn cached_access_token(&self) -> Option<AccessToken> {
        self.inner.cached_access_token().map(AccessToken::from)
    }

    /// After a resource server rejected `failed_token` (HTTP 401): a token to retry
    /// with. Pass the response's `WWW-Authenticate` header. Concurrent callers with
    /// the same failed token share one renewal (one re-authentication per revocation).
    pub async fn recover(
        &self,
        failed_token: AccessToken,
        www_authenticate: Option<String>,
    ) -> Result<AccessToken, AuthError> {
        let session = Arc::clone(&self.inner);
        let failed = sdk::AccessToken::from(failed_token);
        run(async move { session.recover(&failed, www_authenticate.as_deref()).await })
            .await
            .map(AccessToken::from)
    }

    /// After a resource server answered 401 to a request made with `failed_token`: the
    /// decision `Session::send` makes in Rust. Pass every `WWW-Authenticate` header
    /// value (possibly none). Returns the token to retry with (once), or `null`/`nil`
    /// when the 401 is not about the token and goes back to the caller unchanged.
    /// Throws `InsufficientScope`, `TokenRevoked` (with `RecoveryPolicy.CLEAR_AND_FAIL`)
    /// or `ReauthenticationRequired`.
    pub async fn handle_unauthorized(
        &self,
        failed_token: AccessToken,
        www_authenticate: Vec<String>,
    ) -> Result<Option<AccessToken>, AuthError> {
        let session = Arc::clone(&self.inner);
        let failed = sdk::AccessToken::from(failed_token);
        run(async move { session.handle_unauthorized(&failed, &www_authenticate).await })
            .await
            .map(|token| token.map(AccessToken::from))
    }

    /// Like `handleUnauthorized(failedToken, …)`, for a caller that kept only the
    /// token's value (the string it put in `Authorization: Bearer …`).
    pub async fn handle_unauthorized_value(
        &self,
        failed_token: String,
        www_authenticate: Vec<String>,
    ) -> Result<Option<AccessToken>, AuthError> {
        let session = Arc::clone(&self.inner);
        // Recovery compares token values only; the expiry of this stand-in is unused.
        let failed = sdk::AccessToken::from_parts(&failed_token, None, std::time::UNIX_EPOCH);
        run(async move { session.handle_unauthorized(&failed, &www_authenticate).await })
            .await
            .map(|token| token.map(AccessToken::from))
    }

    /// Gets a new token now, whatever the cache holds (joining a request in flight):
    /// for example after the app learned that the user's permissions changed.
    pub async fn refresh(&self) -> Result<AccessToken, AuthError> {
        let session = Arc::clone(&self.inner);
        run(async move { session.refresh().await }).await.map(AccessToken::from)
    }

    /// Waits until the token request in flight (such as a background refresh started by
    /// `accessToken()` inside the refresh margin), if any, has finished.
    pub async fn wait_for_refresh(&self) {
        let session = Arc::clone(&self.inner);
        // Outside a runtime `run` reports an error instead of waiting; nothing to wait for then.
        let _ = run(async move {
            session.wait_for_refresh().await;
            Ok(())
        })
        .await;
    }

    /// For per-response token rotation (`AuthConfig.tokenRotation`): hands the session
    /// an API response's headers (name → value; names in any case) so it adopts the
    /// rotated token they carry, if it is newer than the one it holds. The Kotlin
    /// interceptor and the Swift URLSession helper call it for the hosts they authorize.
    /// Headers that are not valid HTTP are ignored.
    pub fn observe_response_headers(&self, headers: HashMap<String, String>) {
        let pairs: Vec<(String, String)> = headers.into_iter().collect();
        self.inner.observe_response_header_pairs(&pairs);
    }

    /// Drops the cached access token (told out of band that it is no longer good);
    /// the next `accessToken()` gets a new one.
    pub fn invalidate(&self) {
        self.inner.invalidate();
    }

    /// Revokes the tokens at the server (RFC 7009), forgets them and removes the
    /// refresh token from the store.
    pub async fn logout(&self) -> Result<(), AuthError> {
        let session = Arc::clone(&self.inner);
        run(async move { session.logout().await }).await
    }

    /// Who this session is: `client` or `user:alice`, then any non-default scope,
    /// audience or resource.
    pub fn identity(&self) -> String {
        self.inner.identity().to_string()
    }

    /// The account name the app gave this user session (at sign-in, `login`,
    /// `restore`); `null`/`nil` for the client's own session.
    pub fn account(&self) -> Option<String> {
        self.inner.identity().account().map(str::to_owned)
    }

    /// Deprecated: the old name of `account()` (the Kotlin and Swift wrappers mark it so).
    pub fn username(&self) -> Option<String> {
        self.account()
    }
}

/// Whether a request may be re-sent after its token was renewed: idempotent methods
/// and requests carrying an `Idempotency-Key` (the rule `Session::send` applies).
#[uniffi::export]
pub fn is_replay_safe(method: String, has_idempotency_key: bool) -> bool {
    sdk::is_replay_safe(&method, has_idempotency_key)
}
