//! The state of one session and how it gets tokens: the lock-free cached read, the
//! proactive refresh, and the grant chain (refresh token first, then the in-memory
//! credentials) run as a single flight.

use crate::config::CachePolicy;
use crate::error::AuthError;
use crate::events::AuthEvent;
use crate::identity::{Identity, Subject};
use crate::internal::context::ClientContext;
use crate::internal::flight::{FlightResult, Joined, SingleFlight};
use crate::internal::protocol::request::{self, Grant};
use crate::internal::protocol::{error_response, token_response};
use crate::internal::random;
use crate::internal::token_set::TokenSet;
use crate::internal::transport;
use crate::token::{AccessToken, Timestamp};
use arc_swap::ArcSwapOption;
use secrecy::{ExposeSecret, SecretString};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

/// The credential request kept in memory (seed 002), never persisted.
pub(crate) enum Credentials {
    /// The client's own credentials (client-credentials grant).
    Client,
    /// The user's password (password grant).
    Password(SecretString),
    /// None: a restored session lives on its refresh token alone.
    None,
}

/// Why a flight is getting a token; decides the grant chain and the events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Acquire {
    /// Cache empty, expired or due: refresh token first, then credentials.
    Renew,
    /// After a revocation: like `Renew`, and a success is announced as `Reauthenticated`.
    Recover,
    /// An explicit login: the password grant, errors reported as the server said them.
    Login,
}

pub(crate) struct SessionCore {
    pub identity: Identity,
    pub store_key: String,
    pub ctx: Arc<ClientContext>,
    /// The cached token. Read without locks on the hot path.
    pub token: ArcSwapOption<TokenSet>,
    credentials: Mutex<Credentials>,
    refresh_token: Mutex<Option<SecretString>>,
    flight: Arc<SingleFlight>,
    /// After a failed proactive refresh, the next one waits until then (backoff).
    retry_not_before: Mutex<Option<SystemTime>>,
    refresh_failures: AtomicU32,
    logged_out: AtomicBool,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SessionCore {
    pub(crate) fn new(identity: Identity, ctx: Arc<ClientContext>, credentials: Credentials) -> Self {
        Self {
            store_key: identity.store_key(&ctx.config.client_id),
            identity,
            ctx,
            token: ArcSwapOption::empty(),
            credentials: Mutex::new(credentials),
            refresh_token: Mutex::new(None),
            flight: Arc::default(),
            retry_not_before: Mutex::new(None),
            refresh_failures: AtomicU32::new(0),
            logged_out: AtomicBool::new(false),
        }
    }

    fn now(&self) -> SystemTime {
        self.ctx.clock().now()
    }

    /// The cached token if it is fresh: one atomic load, one clock read, one copy.
    #[inline]
    pub(crate) fn fresh_token(&self) -> Option<AccessToken> {
        let now = self.now();
        let guard = self.token.load();
        guard
            .as_ref()
            .filter(|set| set.is_fresh(now))
            .map(|set| set.to_access_token())
    }

    pub(crate) async fn access_token(self: &Arc<Self>) -> Result<AccessToken, AuthError> {
        if self.ctx.config.cache_policy == CachePolicy::PerRequest {
            return self.uncached_token().await;
        }
        let now = self.now();
        if let Some(set) = self.token.load().as_ref() {
            if set.is_fresh(now) {
                return Ok(set.to_access_token());
            }
            if set.is_valid(now) {
                // Due for refresh but still good: serve it and refresh behind the caller.
                self.refresh_in_background(now);
                return Ok(set.to_access_token());
            }
        }
        self.check_active()?;
        let set = self.join(Acquire::Renew, |set| set.is_valid(now)).outcome().await?;
        Ok(set.to_access_token())
    }

    fn refresh_in_background(self: &Arc<Self>, now: SystemTime) {
        if locked(&self.retry_not_before).is_some_and(|not_before| now < not_before) {
            return;
        }
        // The flight runs in its own task; nobody needs to await it.
        drop(self.join(Acquire::Renew, |set| set.is_fresh(now)));
    }

    /// Forces a new token (refresh token first, then credentials), shared with any
    /// request already in flight.
    pub(crate) async fn refresh(self: &Arc<Self>) -> Result<AccessToken, AuthError> {
        self.check_active()?;
        let set = self.join(Acquire::Renew, |_| false).outcome().await?;
        Ok(set.to_access_token())
    }

    /// Waits for the token request in flight, if any.
    pub(crate) async fn settle(&self) {
        if let Some(flight) = self.flight.current() {
            let _ = flight.await;
        }
    }

    pub(crate) fn join(self: &Arc<Self>, how: Acquire, reusable: impl FnOnce(&TokenSet) -> bool) -> Joined {
        let this = Arc::clone(self);
        self.flight.join_or_start(
            || self.token.load_full().filter(|set| reusable(set)),
            move || this.acquire(how),
        )
    }

    /// The body of a flight: get a token, publish it, keep the backoff state.
    async fn acquire(self: Arc<Self>, how: Acquire) -> FlightResult {
        let result = match how {
            Acquire::Login => self.with_credentials(true).await,
            Acquire::Renew | Acquire::Recover => self.renew_grant().await,
        };
        match &result {
            Ok(set) => {
                if self.logged_out.load(Ordering::SeqCst) {
                    return Err(AuthError::reauthenticate(
                        "the session logged out while a token was being requested",
                    ));
                }
                if self.ctx.config.cache_policy == CachePolicy::Cached {
                    self.token.store(Some(Arc::clone(set)));
                }
                self.refresh_failures.store(0, Ordering::Relaxed);
                *locked(&self.retry_not_before) = None;
                if how == Acquire::Recover {
                    self.ctx.events.emit(AuthEvent::Reauthenticated {
                        identity: self.identity.clone(),
                    });
                }
            }
            Err(error) => {
                let failures = self.refresh_failures.fetch_add(1, Ordering::Relaxed).saturating_add(1);
                let policy = &self.ctx.config.retry_policy;
                let backoff = policy
                    .initial_backoff
                    .saturating_mul(1 << (failures - 1).min(16))
                    .min(policy.max_backoff);
                *locked(&self.retry_not_before) = self.now().checked_add(random::jittered(backoff));
                tracing::warn!(identity = %self.identity, %error, "token request failed");
            }
        }
        result
    }

    /// RFC 6749 §6 with the stored refresh token; if the server rejects it, fall back
    /// to the credentials held in memory (seed 002).
    async fn renew_grant(&self) -> FlightResult {
        let refresh_token = locked(&self.refresh_token)
            .as_ref()
            .map(|t| SecretString::from(t.expose_secret()));
        if let Some(refresh_token) = refresh_token {
            match self.request(&Grant::RefreshToken(&refresh_token)).await {
                Ok((issued, sent_at)) => {
                    let set = self.adopt(&issued, sent_at);
                    self.ctx.events.emit(AuthEvent::TokenRefreshed {
                        identity: self.identity.clone(),
                        expires_at: Timestamp(set.expires_at),
                    });
                    return Ok(set);
                }
                Err(AuthError::InvalidGrant(_)) => {
                    tracing::info!(identity = %self.identity, "refresh token rejected; using the credentials in memory");
                    self.forget_refresh_token(&refresh_token);
                }
                Err(error) => return Err(error),
            }
        }
        self.with_credentials(false).await
    }

    /// The client-credentials or password grant. Outside an explicit login, rejected
    /// credentials mean only the user can help: `ReauthenticationRequired`.
    async fn with_credentials(&self, explicit_login: bool) -> FlightResult {
        let password = match &*locked(&self.credentials) {
            Credentials::Client => None,
            Credentials::Password(p) => Some(SecretString::from(p.expose_secret())),
            Credentials::None => {
                return Err(AuthError::reauthenticate(
                    "the refresh token is missing or was rejected and no credentials are held in memory",
                ))
            }
        };
        let grant = match (&self.identity.subject, &password) {
            (Subject::User(username), Some(password)) => Grant::Password { username, password },
            _ => Grant::ClientCredentials,
        };
        match self.request(&grant).await {
            Ok((issued, sent_at)) => {
                let set = self.adopt(&issued, sent_at);
                self.ctx.events.emit(AuthEvent::TokenIssued {
                    identity: self.identity.clone(),
                    expires_at: Timestamp(set.expires_at),
                });
                Ok(set)
            }
            Err(error) => {
                self.ctx.events.emit(AuthEvent::LoginFailed {
                    identity: self.identity.clone(),
                    reason: error.to_string(),
                });
                match error {
                    AuthError::InvalidGrant(details) if !explicit_login && self.identity.username().is_some() => Err(
                        AuthError::reauthenticate(format!("the credentials held in memory were rejected ({details})")),
                    ),
                    error => Err(error),
                }
            }
        }
    }

    /// One token request with retries; returns the response and when it was sent.
    async fn request(&self, grant: &Grant<'_>) -> Result<(token_response::IssuedToken, SystemTime), AuthError> {
        let ctx = &self.ctx;
        let result = transport::with_retries(ctx.clock(), &ctx.config.retry_policy, || {
            let request = request::token_request(ctx, &self.identity, grant);
            let sent_at = ctx.clock().now();
            let default_lifetime = ctx.config.default_token_lifetime;
            async move {
                let response = transport::exchange(request, sent_at).await?;
                token_response::parse(&response, sent_at, default_lifetime).map(|issued| (issued, sent_at))
            }
        })
        .await;
        match &result {
            Ok((issued, _)) => {
                tracing::info!(identity = %self.identity, grant = grant.name(), lifetime_s = issued.lifetime.as_secs(), "token issued")
            }
            Err(error) => {
                tracing::debug!(identity = %self.identity, grant = grant.name(), %error, "token request failed")
            }
        }
        result
    }

    /// Keeps a new refresh token (RFC 6749 §6: a rotated one replaces the old; when the
    /// server sends none, the old one stays valid) and builds the cached token.
    fn adopt(&self, issued: &token_response::IssuedToken, sent_at: SystemTime) -> Arc<TokenSet> {
        if let Some(refresh_token) = &issued.refresh_token {
            if self.ctx.config.cache_policy == CachePolicy::Cached {
                *locked(&self.refresh_token) = Some(SecretString::from(refresh_token.expose_secret()));
                if let Some(store) = &self.ctx.store {
                    if let Err(error) = store.save(&self.store_key, refresh_token) {
                        tracing::warn!(identity = %self.identity, %error, "could not persist the refresh token");
                    }
                }
            }
        }
        Arc::new(TokenSet::issued(issued, sent_at, self.ctx.config.refresh_margin))
    }

    fn forget_refresh_token(&self, rejected: &SecretString) {
        let mut current = locked(&self.refresh_token);
        if current
            .as_ref()
            .is_some_and(|t| t.expose_secret() == rejected.expose_secret())
        {
            *current = None;
            if let Some(store) = &self.ctx.store {
                if let Err(error) = store.remove(&self.store_key) {
                    tracing::warn!(identity = %self.identity, %error, "could not remove the rejected refresh token");
                }
            }
        }
    }

    /// `CachePolicy::PerRequest`: a brand-new token from the credentials, not kept.
    async fn uncached_token(&self) -> Result<AccessToken, AuthError> {
        self.check_active()?;
        let set = self.with_credentials(false).await?;
        Ok(set.to_access_token())
    }

    /// An explicit password login. A rejected password does not replace the
    /// credentials that were working (a typo must not break silent recovery).
    pub(crate) async fn login(self: &Arc<Self>, password: SecretString) -> Result<(), AuthError> {
        let now = self.now();
        let previous = {
            let mut credentials = locked(&self.credentials);
            let same =
                matches!(&*credentials, Credentials::Password(p) if p.expose_secret() == password.expose_secret());
            if same && self.token.load().as_ref().is_some_and(|set| set.is_valid(now)) {
                return Ok(());
            }
            std::mem::replace(
                &mut *credentials,
                Credentials::Password(SecretString::from(password.expose_secret())),
            )
        };
        self.settle().await;
        let result = self.join(Acquire::Login, |_| false).outcome().await.map(drop);
        if result.is_err() {
            let mut credentials = locked(&self.credentials);
            if matches!(&*credentials, Credentials::Password(p) if p.expose_secret() == password.expose_secret()) {
                *credentials = previous;
            }
        }
        result
    }

    /// Resumes from a stored refresh token (no password needed).
    pub(crate) async fn restore(self: &Arc<Self>) -> Result<(), AuthError> {
        let now = self.now();
        if self.token.load().as_ref().is_some_and(|set| set.is_valid(now)) {
            return Ok(());
        }
        if locked(&self.refresh_token).is_none() {
            let store = self
                .ctx
                .store
                .as_ref()
                .ok_or_else(|| AuthError::reauthenticate("no token store is configured"))?;
            let stored = store
                .load(&self.store_key)
                .map_err(|e| AuthError::Storage { reason: e.to_string() })?;
            let stored =
                stored.ok_or_else(|| AuthError::reauthenticate("no refresh token is stored for this identity"))?;
            *locked(&self.refresh_token) = Some(stored);
        }
        self.join(Acquire::Renew, |set| set.is_valid(now))
            .outcome()
            .await
            .map(drop)
    }

    /// After a resource server rejected `failed`: hand out a newer token if there is
    /// one (Bitwarden's rule), else drop `failed` and get one new token for everyone.
    pub(crate) async fn recover(self: &Arc<Self>, failed: &str) -> Result<AccessToken, AuthError> {
        if self.ctx.config.cache_policy == CachePolicy::PerRequest {
            return self.uncached_token().await;
        }
        self.check_active()?;
        let now = self.now();
        self.discard(failed);
        if self.ctx.config.recovery_policy == crate::config::RecoveryPolicy::ClearAndFail {
            return match self.token.load_full().filter(|set| set.is_valid(now)) {
                Some(newer) => Ok(newer.to_access_token()),
                None => Err(AuthError::TokenRevoked),
            };
        }
        let set = self
            .join(Acquire::Recover, |set| !set.holds(failed) && set.is_valid(now))
            .outcome()
            .await?;
        Ok(set.to_access_token())
    }

    /// Drops the cached token if it is `failed`; announces the revocation once.
    pub(crate) fn discard(&self, failed: &str) -> bool {
        let previous = self.token.rcu(|current| match current {
            Some(set) if set.holds(failed) => None,
            other => other.clone(),
        });
        let discarded = previous.as_ref().is_some_and(|set| set.holds(failed));
        if discarded {
            self.ctx.events.emit(AuthEvent::RevocationDetected {
                identity: self.identity.clone(),
            });
        }
        discarded
    }

    pub(crate) fn invalidate(&self) {
        self.token.store(None);
        *locked(&self.retry_not_before) = None;
    }

    pub(crate) fn is_logged_out(&self) -> bool {
        self.logged_out.load(Ordering::SeqCst)
    }

    fn check_active(&self) -> Result<(), AuthError> {
        if self.is_logged_out() {
            return Err(AuthError::reauthenticate("the session was logged out"));
        }
        Ok(())
    }

    /// Forgets everything locally, then revokes (RFC 7009) what it can. Local state is
    /// gone even if revocation fails; the first failure is returned.
    pub(crate) async fn logout(&self) -> Result<(), AuthError> {
        self.logged_out.store(true, Ordering::SeqCst);
        let access = self.token.swap(None);
        let refresh = locked(&self.refresh_token).take();
        *locked(&self.credentials) = Credentials::None;
        let mut first_error = None;
        if let Some(store) = &self.ctx.store {
            if let Err(error) = store.remove(&self.store_key) {
                first_error = Some(AuthError::Storage {
                    reason: error.to_string(),
                });
            }
        }
        if let Some(url) = &self.ctx.revocation_url {
            // The refresh token first: revoking it usually revokes its access tokens too.
            let tokens = [
                refresh.as_ref().map(|t| (t.expose_secret(), "refresh_token")),
                access.as_ref().map(|set| (set.token.expose_secret(), "access_token")),
            ];
            for (token, hint) in tokens.into_iter().flatten() {
                if let Err(error) = self.revoke(url, &SecretString::from(token), hint).await {
                    tracing::warn!(identity = %self.identity, hint, %error, "token revocation failed");
                    first_error.get_or_insert(error);
                }
            }
        }
        self.ctx.events.emit(AuthEvent::LoggedOut {
            identity: self.identity.clone(),
        });
        first_error.map_or(Ok(()), Err)
    }

    async fn revoke(&self, url: &reqwest::Url, token: &SecretString, hint: &str) -> Result<(), AuthError> {
        let ctx = &self.ctx;
        let request = request::revocation_request(ctx, url, token, hint);
        let response = transport::exchange(request, self.now()).await?;
        if (200..300).contains(&response.status) {
            Ok(())
        } else {
            Err(error_response::error_for(&response))
        }
    }
}
