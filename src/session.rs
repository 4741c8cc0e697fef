//! [`Session`]: one identity's token, cached, refreshed, shared and recovered.

use crate::error::AuthError;
use crate::identity::Identity;
use crate::internal::context::{ClientContext, Registry};
use crate::internal::recovery;
use crate::internal::rotation;
use crate::internal::session_core::{Credentials, SessionCore};
use crate::token::AccessToken;
use secrecy::ExposeSecret;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

/// Whether [`Session::send_with`] may re-send a request after renewing its token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Replay {
    /// Idempotent methods (GET, HEAD, OPTIONS, PUT, DELETE) and requests carrying an
    /// `Idempotency-Key` header. The default.
    #[default]
    IfIdempotent,
    /// Any request whose body can be cloned: the app knows replaying is safe.
    Always,
    /// Never re-send; after renewing the token, fail with [`AuthError::RequestNotReplayed`].
    Never,
}

/// Whether a request may be re-sent after its token was renewed without asking the
/// app: idempotent methods (RFC 9110 §9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE)
/// and requests carrying an `Idempotency-Key`. The rule [`Session::send`] applies, for
/// apps with their own HTTP stack.
///
/// ```
/// assert!(tokenkeeper::is_replay_safe("GET", false));
/// assert!(!tokenkeeper::is_replay_safe("POST", false));
/// assert!(tokenkeeper::is_replay_safe("POST", true));
/// ```
pub fn is_replay_safe(method: &str, has_idempotency_key: bool) -> bool {
    const IDEMPOTENT: [&str; 6] = ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"];
    has_idempotency_key || IDEMPOTENT.iter().any(|m| m.eq_ignore_ascii_case(method))
}

/// One identity (the client itself, or one user) and its token.
///
/// Get one from [`AuthClient`](crate::AuthClient); the client keeps one session per
/// identity, so there is one active token per identity. Any number of tasks may call
/// [`access_token`](Self::access_token) at once: a valid cached token is a lock-free
/// read, and when a new token is needed exactly one token request is made for all.
///
/// ```no_run
/// # async fn demo(client: tokenkeeper::AuthClient) -> Result<(), tokenkeeper::AuthError> {
/// let session = client.client_credentials_session();
/// let response = session.send(client.http().get("https://api.example.com/orders")).await?;
/// # Ok(()) }
/// ```
pub struct Session {
    core: Arc<SessionCore>,
    registry: Weak<Registry>,
}

impl Session {
    pub(crate) fn new(
        identity: Identity,
        ctx: Arc<ClientContext>,
        credentials: Credentials,
        registry: Weak<Registry>,
    ) -> Self {
        Self {
            core: Arc::new(SessionCore::new(identity, ctx, credentials)),
            registry,
        }
    }

    pub(crate) fn core(&self) -> &Arc<SessionCore> {
        &self.core
    }

    /// Whose session this is.
    pub fn identity(&self) -> &Identity {
        &self.core.identity
    }

    /// The key under which this session's refresh token is kept in a
    /// [`TokenStore`](crate::TokenStore): stable across restarts, no secret in it.
    pub fn store_key(&self) -> &str {
        self.core.persistence().key()
    }

    /// A valid access token: the cached one while it is fresh; when it is due for
    /// refresh but still valid, the cached one while a refresh runs in the
    /// background; otherwise a new one (refresh token first, then the credentials in
    /// memory), requested once for all concurrent callers.
    ///
    /// Cancellation-safe: dropping the future never aborts a token request others wait on.
    ///
    /// The cache is read when the future is first polled (not when it is made), and a
    /// cached token is returned from that first poll: no executor, allocation or wait.
    #[inline]
    pub fn access_token(&self) -> AccessTokenFuture<'_> {
        AccessTokenFuture {
            core: &self.core,
            slow: None,
        }
    }

    /// The cached token if it is fresh, without waiting or any I/O; `None` means
    /// call [`access_token`](Self::access_token).
    pub fn cached_access_token(&self) -> Option<AccessToken> {
        self.core.fresh_token()
    }

    /// A token valid for at least `min_validity` (like Auth0's `minTtl`): the cached
    /// one if it lives long enough, otherwise a new one, requested once for all
    /// concurrent callers. If the server issues tokens shorter-lived than
    /// `min_validity`, the new token is returned anyway; check its
    /// [`expires_at`](AccessToken::expires_at).
    pub async fn access_token_valid_for(&self, min_validity: std::time::Duration) -> Result<AccessToken, AuthError> {
        self.core.token_valid_for(min_validity).await
    }

    /// Gets a new token now, whatever the cache holds (joining a request in flight).
    /// Unlike [`access_token`](Self::access_token), it does not wait out the backoff
    /// after failures: the app asked.
    pub async fn refresh(&self) -> Result<AccessToken, AuthError> {
        self.core.refresh().await
    }

    /// Where the session stands: signed in (with the cached token's expiry), in need
    /// of the user, or logged out.
    pub fn state(&self) -> crate::SessionState {
        self.core.session_state()
    }

    /// Registers `observer` for every change of the cached token; it gets the current
    /// state at once. See [`TokenObserver`](crate::TokenObserver).
    pub fn observe(&self, observer: Arc<dyn crate::TokenObserver>) {
        self.core.observe(observer)
    }

    /// Waits until the token request in flight (such as a background refresh), if
    /// any, has finished.
    pub async fn wait_for_refresh(&self) {
        self.core.settle().await
    }

    /// Sends `request` with the session's bearer token. After a 401 that says the
    /// token is invalid or revoked, recovers (see [`recover`](Self::recover)) and
    /// re-sends once if the method is idempotent; other 401s and all other statuses
    /// are returned as they are. A 403 is returned as the response itself; [`crate::insufficient_scope`] reads its challenge.
    /// (Feature `reqwest`, on by default.)
    #[cfg(feature = "reqwest")]
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, AuthError> {
        self.send_with(request, Replay::default()).await
    }

    /// [`send`](Self::send) with an explicit replay rule.
    #[cfg(feature = "reqwest")]
    pub async fn send_with(
        &self,
        request: reqwest::RequestBuilder,
        replay: Replay,
    ) -> Result<reqwest::Response, AuthError> {
        recovery::send(&self.core, request, replay).await
    }

    /// For apps with their own HTTP stack, after a 401: the same decision
    /// [`send`](Self::send) makes. `www_authenticate` holds the response's
    /// `WWW-Authenticate` header values (possibly none).
    ///
    /// - `Ok(Some(token))`: the token was invalid or revoked; retry (once) with this
    ///   one. If the session already holds a newer token than `failed`, it is returned
    ///   with no token request, so a storm of 401s costs one token request. Otherwise
    ///   the refresh token is tried first, then the credentials in memory.
    /// - `Ok(None)`: hand the 401 to the caller unchanged: the challenge is not about
    ///   the token (another scheme, `invalid_request`), or recovery is paused because
    ///   fresh tokens kept being rejected (see
    ///   [`AuthEvent::RecoveryPaused`](crate::AuthEvent::RecoveryPaused)).
    /// - `Err(InsufficientScope)`, `Err(TokenRevoked)` under `ClearAndFail`, or
    ///   `Err(ReauthenticationRequired)` when no token can be had silently.
    pub async fn handle_unauthorized<S: AsRef<str>>(
        &self,
        failed: &AccessToken,
        www_authenticate: &[S],
    ) -> Result<Option<AccessToken>, AuthError> {
        use secrecy::ExposeSecret;
        recovery::after_unauthorized(&self.core, failed.expose_secret(), www_authenticate).await
    }

    /// A thin alias of [`handle_unauthorized`](Self::handle_unauthorized) with one
    /// optional header, for code written against earlier versions. Where that returns
    /// `Ok(None)` (the 401 is not about the token, or recovery is paused), this
    /// returns the session's current token.
    pub async fn recover(
        &self,
        failed: &AccessToken,
        www_authenticate: Option<&str>,
    ) -> Result<AccessToken, AuthError> {
        let challenges: Vec<&str> = www_authenticate.into_iter().collect();
        match self.handle_unauthorized(failed, &challenges).await? {
            Some(token) => Ok(token),
            None => self.access_token().await,
        }
    }

    /// Drops the cached access token, e.g. after a push message "you were signed out
    /// elsewhere" or a back-channel logout. The next call gets a new token.
    ///
    /// With [`AuthClientBuilder::shared_tokens`](crate::AuthClientBuilder::shared_tokens)
    /// the token is also withdrawn from the fleet (in the background), so no other
    /// instance adopts it.
    pub fn invalidate(&self) {
        let held = self.core.cached();
        self.core.invalidate();
        self.core.deliver_events();
        if let (Some(held), true, Ok(runtime)) = (
            held,
            self.core.ctx.shared.is_some(),
            tokio::runtime::Handle::try_current(),
        ) {
            let core = Arc::clone(&self.core);
            runtime.spawn(async move {
                crate::internal::shared::withdraw(&core, held.token.expose_secret()).await;
            });
        }
    }

    /// For apps with their own HTTP stack and per-response token rotation: hands the
    /// session an API response's headers so it can adopt a rotated token.
    /// (Feature `reqwest`; [`observe_response_header_pairs`](Self::observe_response_header_pairs)
    /// takes plain pairs.)
    #[cfg(feature = "reqwest")]
    pub fn observe_response_headers(&self, headers: &reqwest::header::HeaderMap) {
        rotation::observe_map(&self.core, headers)
    }

    /// [`observe_response_headers`](Self::observe_response_headers) for headers as
    /// (name, value) pairs, names in any case: for apps whose HTTP stack is not reqwest.
    pub fn observe_response_header_pairs<N: AsRef<str>, V: AsRef<str>>(&self, headers: &[(N, V)]) {
        rotation::observe(&self.core, |name| {
            headers
                .iter()
                .find(|(n, _)| n.as_ref().eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_ref())
        })
    }

    /// Logs out: forgets the tokens and credentials locally (cache, registry, store)
    /// and revokes the refresh and access tokens (RFC 7009) if a revocation endpoint is
    /// configured. Emits [`AuthEvent::LoggedOut`](crate::AuthEvent::LoggedOut).
    ///
    /// Offline, it still succeeds: when the revocation endpoint cannot be reached (a
    /// retryable error) and a store is configured, the tokens to revoke are queued in
    /// the store (beside the session's entry, never restorable) and sent later: on a
    /// timer for about two hours, as soon as any session of the client gets a token
    /// answer, and at the next start's `restore` of this user. Local state is forgotten
    /// in every case; a refusal by the server (or a failure with no store to queue in)
    /// is returned.
    pub async fn logout(&self) -> Result<(), AuthError> {
        if let Some(registry) = self.registry.upgrade() {
            registry.remove(self);
        }
        self.core.logout().await
    }
}

/// The future [`Session::access_token`] returns: one layer, so that a cached token
/// goes from the session to the caller in a single step; the slow path (a refresh, a
/// flight to join) is built, boxed, only when the cache cannot serve.
#[must_use = "futures do nothing unless awaited"]
pub struct AccessTokenFuture<'a> {
    core: &'a Arc<SessionCore>,
    slow: Option<SlowPath<'a>>,
}

/// The boxed slow path of an [`AccessTokenFuture`].
type SlowPath<'a> = Pin<Box<dyn Future<Output = Result<AccessToken, AuthError>> + Send + 'a>>;

impl Future for AccessTokenFuture<'_> {
    type Output = Result<AccessToken, AuthError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let slow = match &mut this.slow {
            Some(slow) => slow,
            None => {
                if let Some(token) = this.core.hot_token() {
                    return Poll::Ready(Ok(token));
                }
                this.slow.insert(slow_path(this.core))
            }
        };
        slow.as_mut().poll(cx)
    }
}

/// Builds the slow path out of line: its state machine is large, and building it
/// inside `poll` would give every cached read a frame of that size.
#[cold]
#[inline(never)]
fn slow_path(core: &Arc<SessionCore>) -> SlowPath<'_> {
    Box::pin(core.access_token_slow())
}

impl fmt::Debug for AccessTokenFuture<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessTokenFuture")
            .field("waiting", &self.slow.is_some())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("identity", &self.core.identity.to_string())
            .finish_non_exhaustive()
    }
}
