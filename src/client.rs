//! [`AuthClient`]: one authorization server and OAuth client, and the registry of
//! its sessions (one per identity).

use crate::config::AuthConfig;
use crate::error::AuthError;
use crate::events::{AuthEventListener, EventSink};
use crate::identity::{Identity, Subject, TokenParams};
use crate::internal::context::{ClientContext, HttpChoice, Registry};
use crate::internal::session_core::Credentials;
use crate::session::Session;
use crate::store::{RecordStore, RefreshLock, SharedTokens, TokenStore, TokenStoreRecords};
use crate::transport::HttpTransport;
use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::sync::Arc;

/// The entry point: an OAuth client of one authorization server.
///
/// Cheap to clone (clones share sessions and the connection pool). Asking twice for
/// the same identity returns the same [`Session`], so each identity has one token.
///
/// ```no_run
/// use tokenkeeper::{AuthClient, AuthConfig};
/// use secrecy::{ExposeSecret, SecretString};
/// # async fn run() -> Result<(), tokenkeeper::AuthError> {
/// let client = AuthClient::new(
///     AuthConfig::new("https://as.example.com/oauth2/token", "my-client")
///         .client_secret(SecretString::from("…")),
/// )?;
/// let alice = client.login("alice", SecretString::from("…")).await?;
/// let token = alice.access_token().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AuthClient {
    ctx: Arc<ClientContext>,
    registry: Arc<Registry>,
}

impl AuthClient {
    /// Starts building a client for `config`. Everything that shapes sessions (the
    /// store, the event listener, the HTTP client) is set on the builder, before the
    /// first session can exist.
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use tokenkeeper::{AuthClient, AuthConfig, MemoryStore};
    /// # fn run() -> Result<(), tokenkeeper::AuthError> {
    /// let client = AuthClient::builder(AuthConfig::new("https://as.example.com/oauth2/token", "my-app"))
    ///     .store(Arc::new(MemoryStore::new()))
    ///     .build()?;
    /// # let _ = client; Ok(()) }
    /// ```
    ///
    /// A client cannot be reconfigured once built, so no session can see a store or
    /// listener other than the one it was created with:
    ///
    /// ```compile_fail
    /// # use std::sync::Arc;
    /// # use tokenkeeper::{AuthClient, AuthConfig, MemoryStore};
    /// let client = AuthClient::new(AuthConfig::new("https://as.example.com/token", "app")).unwrap();
    /// let _session = client.client_credentials_session();
    /// let client = client.store(Arc::new(MemoryStore::new())); // no such method
    /// ```
    pub fn builder(config: AuthConfig) -> AuthClientBuilder {
        AuthClientBuilder {
            config,
            store: None,
            refresh_lock: None,
            shared: None,
            listener: None,
            http: HttpChoice::default(),
        }
    }

    /// Shorthand for `AuthClient::builder(config).build()`: no store, no listener,
    /// the SDK's own HTTP client.
    pub fn new(config: AuthConfig) -> Result<Self, AuthError> {
        Self::builder(config).build()
    }

    /// The HTTP client (and connection pool) the SDK uses, for [`Session::send`].
    /// It never follows redirects, so a bearer token is never forwarded to a host
    /// the app did not name. (Feature `reqwest`, on by default.)
    #[cfg(feature = "reqwest")]
    pub fn http(&self) -> &reqwest::Client {
        &self.ctx.http
    }

    /// The client's own session (client-credentials grant) with the config's scopes.
    /// No request is made until a token is needed.
    pub fn client_credentials_session(&self) -> Arc<Session> {
        self.client_credentials_session_with(TokenParams::default())
    }

    /// The client's own session for other scopes, audience or resource.
    pub fn client_credentials_session_with(&self, params: TokenParams) -> Arc<Session> {
        let identity = self.identity(Subject::Client, params);
        self.registry
            .get_or_insert_with(&identity, || self.new_session(identity.clone(), Credentials::Client))
            .0
    }

    /// Signs `username` in with the password grant. The password stays in memory
    /// (never persisted) so a revoked token can be replaced without asking the user.
    /// A wrong password is [`AuthError::InvalidGrant`].
    pub async fn login(&self, username: &str, password: SecretString) -> Result<Arc<Session>, AuthError> {
        self.login_with(username, password, TokenParams::default()).await
    }

    /// [`login`](Self::login) for other scopes, audience or resource.
    pub async fn login_with(
        &self,
        username: &str,
        password: SecretString,
        params: TokenParams,
    ) -> Result<Arc<Session>, AuthError> {
        let identity = self.user_identity(username, params)?;
        let (session, created) = self
            .registry
            .get_or_insert_with(&identity, || self.new_session(identity.clone(), Credentials::None));
        let result = session.core().login(password).await;
        self.settle_registration(&session, created, result.is_ok());
        result.map(|()| session)
    }

    /// The session of a signed-in user, if there is one.
    pub fn session(&self, username: &str) -> Option<Arc<Session>> {
        self.session_with(username, TokenParams::default())
    }

    /// [`session`](Self::session) for other scopes, audience or resource.
    pub fn session_with(&self, username: &str, params: TokenParams) -> Option<Arc<Session>> {
        self.registry
            .get(&self.identity(Subject::User(username.to_owned()), params))
    }

    /// Resumes a user's session after a restart from the refresh token in the store,
    /// without a password. [`AuthError::ReauthenticationRequired`] if nothing usable
    /// is stored.
    ///
    /// With offline start ([`AuthConfig::offline_start`](crate::AuthConfig::offline_start),
    /// on by default) a still-valid stored access token is served at once, without a
    /// token request: the app starts signed in with the server unreachable. When a
    /// refresh is needed and fails with a retryable error (the server is unreachable),
    /// the error is returned but the session stays registered with its refresh token:
    /// [`session`](Self::session) returns it, to try again later or to
    /// [`logout`](Session::logout) offline.
    pub async fn restore(&self, username: &str) -> Result<Arc<Session>, AuthError> {
        self.restore_with(username, TokenParams::default()).await
    }

    /// [`restore`](Self::restore) for other scopes, audience or resource.
    pub async fn restore_with(&self, username: &str, params: TokenParams) -> Result<Arc<Session>, AuthError> {
        let identity = self.user_identity(username, params)?;
        let (session, created) = self
            .registry
            .get_or_insert_with(&identity, || self.new_session(identity.clone(), Credentials::None));
        let result = session.core().restore().await;
        self.settle_registration(&session, created, result.is_ok());
        result.map(|()| session)
    }

    /// After a login or restore on `session`: a session that got signed in stays (or
    /// is again) the registered one; one this call created that holds nothing (its
    /// sign-in failed, and no concurrent login of the same identity succeeded on it)
    /// is unregistered. A failing login never unregisters a session a concurrent
    /// correct login signed in, before or after the failure (behaviour 8 of issue 24).
    fn settle_registration(&self, session: &Arc<Session>, created: bool, succeeded: bool) {
        if succeeded {
            self.registry.keep(session);
        } else if created && !session.core().holds_anything() {
            self.registry.remove_if(session, |s| !s.core().holds_anything());
        }
    }

    /// The users with a stored session for this client (token endpoint and client
    /// id), by the account name they were signed in under, sorted: what a
    /// multi-account app shows before it calls [`restore`](Self::restore) for one.
    /// `Ok(None)` if the store cannot enumerate its keys (a
    /// [`TokenStore`](crate::TokenStore) whose [`keys`](crate::TokenStore::keys) is
    /// the default, such as [`KeyringStore`](crate::KeyringStore)); `Ok(Some([]))`
    /// without a store. [`MemoryStore`](crate::MemoryStore) and
    /// [`FileStore`](crate::FileStore) can. Entries whose refresh token is known to
    /// have expired are left out.
    pub async fn accounts(&self) -> Result<Option<Vec<String>>, AuthError> {
        crate::internal::persistence::accounts(&self.ctx).await
    }

    /// The signed-in session whose [`Session::store_key`] is `key`, if this client
    /// holds one: for a fleet store that names sessions by their key. It compares the
    /// key of every session (about 1 ms per 100,000): meant for a fleet's logout and
    /// invalidation messages, not for a per-request lookup.
    pub fn session_stored_at(&self, key: &str) -> Option<Arc<Session>> {
        self.registry
            .matching(|session| session.store_key() == key)
            .into_iter()
            .next()
    }

    /// Ends, without revoking, the session stored at `key`: another instance of a
    /// fleet logged it out (and revoked its tokens once, for the fleet). Local state
    /// is forgotten, the record removed if still there, and
    /// [`AuthEvent::LoggedOut`](crate::AuthEvent::LoggedOut) emitted. `false` if this
    /// client holds no session at `key`.
    pub async fn end_session_stored_at(&self, key: &str) -> bool {
        let Some(session) = self.session_stored_at(key) else {
            return false;
        };
        self.registry.remove(&session);
        if let Err(error) = session.core().end_by_provider().await {
            tracing::warn!(%error, "the stored record of a session logged out elsewhere was not removed");
        }
        true
    }

    /// The shared context, for the sign-in flows in [`crate::signin`].
    pub(crate) fn context(&self) -> &Arc<ClientContext> {
        &self.ctx
    }

    /// The registry of sessions, for back-channel logout (`oidc::backchannel`).
    pub(crate) fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The identity of a user session named `account`, for the sign-in flows.
    pub(crate) fn account_identity(&self, account: &str, params: TokenParams) -> Result<Identity, AuthError> {
        self.user_identity(account, params)
    }

    /// Registers `identity`'s session, signed in with `issued` (a code exchange,
    /// device grant or import). It holds no credentials: after a revocation it
    /// recovers with its refresh token alone.
    pub(crate) async fn install_signed_in(
        &self,
        identity: Identity,
        issued: crate::internal::protocol::token_response::IssuedToken,
        sent_at: std::time::SystemTime,
        dpop: Option<Arc<crate::internal::dpop::Binding>>,
    ) -> Result<Arc<Session>, AuthError> {
        // A logout of the identity's session may land before or during the install: the
        // sign-in then goes into a fresh session (the user just signed in again). If it
        // cannot be installed, what it obtained is revoked: never live and unowned.
        let mut failure = None;
        for _ in 0..SIGN_IN_ATTEMPTS {
            let (session, created) = self
                .registry
                .get_or_insert_with(&identity, || self.new_session(identity.clone(), Credentials::None));
            if session.core().is_logged_out() {
                self.registry.remove(&session);
                continue;
            }
            // The new tokens are bound to the sign-in's key: the session signs with it.
            let replaced = dpop
                .as_ref()
                .and_then(|binding| session.core().install_dpop_binding(Arc::clone(binding)));
            match session.core().sign_in_with(issued.duplicate(), sent_at).await {
                Ok(()) => {
                    self.registry.keep(&session);
                    // The tokens bound to the replaced key are gone with the install;
                    // nothing will sign with it again.
                    if let Some(replaced) = replaced {
                        replaced.retire();
                    }
                    return Ok(session);
                }
                Err(error) if session.core().is_logged_out() => {
                    self.registry.remove(&session);
                    failure = Some(error);
                }
                Err(error) => {
                    self.settle_registration(&session, created, false);
                    failure = Some(error);
                    break;
                }
            }
        }
        self.revoke_unowned(identity, &issued).await;
        // No session holds what the sign-in obtained, so nothing needs its key.
        if let Some(binding) = &dpop {
            binding.retire();
        }
        Err(failure.unwrap_or_else(|| AuthError::reauthenticate("the session was logged out during the sign-in")))
    }

    /// Revokes what a sign-in obtained that no session will own (it was refused or
    /// could not be installed): left alone it would stay live at the server.
    pub(crate) async fn revoke_unowned(
        &self,
        identity: Identity,
        issued: &crate::internal::protocol::token_response::IssuedToken,
    ) {
        // An unregistered session only lends its context and identity to the revocation.
        let session = self.new_session(identity, Credentials::None);
        let access = SecretString::from(issued.access_token.expose_secret());
        if let Err(error) =
            crate::internal::grants::revoke_all(session.core(), issued.refresh_token.as_ref(), Some(&access)).await
        {
            tracing::warn!(%error, "could not revoke the tokens of a sign-in that was not installed");
        }
    }

    fn user_identity(&self, username: &str, params: TokenParams) -> Result<Identity, AuthError> {
        if username.trim().is_empty() {
            return Err(AuthError::config("the username is empty"));
        }
        Ok(self.identity(Subject::User(username.to_owned()), params))
    }

    fn identity(&self, subject: Subject, params: TokenParams) -> Identity {
        let defaults = &self.ctx.config.default_params;
        Identity {
            subject,
            scopes: params
                .scopes
                .or_else(|| defaults.scopes.clone())
                .unwrap_or_default()
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect(),
            audience: params.audience.or_else(|| defaults.audience.clone()),
            resource: params.resource.or_else(|| defaults.resource.clone()),
        }
    }

    fn new_session(&self, identity: Identity, credentials: Credentials) -> Session {
        Session::new(
            identity,
            Arc::clone(&self.ctx),
            credentials,
            Arc::downgrade(&self.registry),
        )
    }
}

impl fmt::Debug for AuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthClient")
            .field("config", &self.ctx.config)
            .finish_non_exhaustive()
    }
}

/// How often a sign-in moves to a fresh session when logouts keep landing on it.
const SIGN_IN_ATTEMPTS: usize = 3;

/// Builds an [`AuthClient`]; see [`AuthClient::builder`].
#[must_use = "call .build() to get the client"]
pub struct AuthClientBuilder {
    config: AuthConfig,
    store: Option<StoreChoice>,
    refresh_lock: Option<Arc<dyn RefreshLock>>,
    shared: Option<Arc<dyn SharedTokens>>,
    listener: Option<Arc<dyn AuthEventListener>>,
    http: HttpChoice,
}

/// The app's plain store (adapted at `build`, once the lock directory is known) or a
/// native record store.
enum StoreChoice {
    Plain(Arc<dyn TokenStore>),
    Records(Arc<dyn RecordStore>),
}

impl AuthClientBuilder {
    /// Persists refresh tokens in `store` so a user stays signed in across restarts.
    ///
    /// The store is seen through [`TokenStoreRecords`]: revisions inside the record,
    /// compare-and-set under the key's write lock (in-process, and across processes
    /// through `AuthConfig::store_lock_directory`).
    pub fn store(mut self, store: Arc<dyn TokenStore>) -> Self {
        self.store = Some(StoreChoice::Plain(store));
        self
    }

    /// Persists sessions in a store with native revisions and compare-and-set (a
    /// server fleet's Redis, a database); replaces any [`store`](Self::store).
    pub fn record_store(mut self, store: Arc<dyn RecordStore>) -> Self {
        self.store = Some(StoreChoice::Records(store));
        self
    }

    /// The lock each refresh of a stored session takes (default:
    /// [`LocalRefreshLock`](crate::LocalRefreshLock) on
    /// `AuthConfig::store_lock_directory`). A fleet store brings its own lease.
    pub fn refresh_lock(mut self, lock: Arc<dyn RefreshLock>) -> Self {
        self.refresh_lock = Some(lock);
        self
    }

    /// Shares each identity's access token with the other instances of a server fleet
    /// (`tokenkeeper-redis`): a token request first takes the
    /// [`refresh_lock`](Self::refresh_lock), then adopts a newer shared token if there
    /// is one, and shares what it obtains. The cached path never touches it.
    pub fn shared_tokens(mut self, shared: Arc<dyn SharedTokens>) -> Self {
        self.shared = Some(shared);
        self
    }

    /// Delivers [`AuthEvent`](crate::AuthEvent)s to `listener`.
    pub fn event_listener(mut self, listener: Arc<dyn AuthEventListener>) -> Self {
        self.listener = Some(listener);
        self
    }

    /// Uses the app's own `reqwest::Client` (its proxy, roots and pool) for token
    /// requests and [`Session::send`]. The SDK's default client never follows
    /// redirects, so a bearer token cannot be forwarded to a host the app did not
    /// name; give yours `redirect::Policy::none()` to keep that guarantee.
    ///
    /// Token requests go through [`transport`](Self::transport) instead when one is given.
    #[cfg(feature = "reqwest")]
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http.reqwest = Some(http);
        self
    }

    /// Sends every request the SDK itself makes (token, revocation, device
    /// authorization) through `transport`: the app's own HTTP stack, so its trust
    /// store, proxy, pinning and network tools apply. The core still applies the
    /// timeout and the 64 KiB cap and refuses redirects; see [`crate::transport`].
    ///
    /// Without the `reqwest` feature (the `mobile` build) a transport is required;
    /// with it, the default is a [`ReqwestTransport`](crate::transport::ReqwestTransport)
    /// over [`http`](AuthClient::http).
    pub fn transport(mut self, transport: Arc<dyn HttpTransport>) -> Self {
        self.http.transport = Some(transport);
        self
    }

    /// Validates the configuration (URLs parse; https unless the host is loopback;
    /// sane numbers) and builds the client. No network traffic happens here.
    pub fn build(self) -> Result<AuthClient, AuthError> {
        let store = self.store.map(|choice| match choice {
            StoreChoice::Plain(store) => {
                Arc::new(TokenStoreRecords::new(store, self.config.store_lock_directory.clone()))
                    as Arc<dyn RecordStore>
            }
            StoreChoice::Records(store) => store,
        });
        let mut ctx = ClientContext::new(
            self.config,
            self.http,
            store,
            self.refresh_lock,
            EventSink::new(self.listener),
        )?;
        ctx.shared = self.shared;
        Ok(AuthClient {
            ctx: Arc::new(ctx),
            registry: Arc::default(),
        })
    }
}

impl fmt::Debug for AuthClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("AuthClientBuilder");
        out.field("config", &self.config)
            .field("store", &self.store.is_some())
            .field("refresh_lock", &self.refresh_lock.is_some())
            .field("shared_tokens", &self.shared.is_some())
            .field("event_listener", &self.listener.is_some())
            .field("transport", &self.http.transport.is_some());
        #[cfg(feature = "reqwest")]
        out.field("http_client", &self.http.reqwest.is_some());
        out.finish()
    }
}
