//! How a session gets tokens: the cached read, the proactive and background refresh,
//! and the single flight every other caller joins (login, sign-in and restore run as
//! exclusive flights). The flight's body, the grant chain, is `grants.rs`.

use super::{Acquire, SessionCore, Standing};
use crate::config::CachePolicy;
use crate::error::AuthError;
use crate::internal::flight::{is_aborted_flight, FlightKind, FlightResult, Joined};
use crate::internal::protocol::token_response::IssuedToken;
use crate::internal::token_set::TokenSet;
use crate::token::AccessToken;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

impl SessionCore {
    /// The cached token `access_token()` serves without waiting, if there is one
    /// (never for `CachePolicy::PerRequest`).
    #[inline]
    pub(crate) fn hot_token(&self) -> Option<AccessToken> {
        if self.ctx.config.cache_policy == CachePolicy::PerRequest {
            return None;
        }
        self.fresh_token()
    }

    /// A valid token: the cached one, or one new token shared by all callers. The slow
    /// path's state (a flight, a store, a token request) is boxed, so a cached read
    /// never builds, moves or drops it.
    pub(crate) async fn access_token(self: &Arc<Self>) -> Result<AccessToken, AuthError> {
        match self.hot_token() {
            Some(token) => Ok(token),
            None => Box::pin(self.access_token_slow()).await,
        }
    }

    /// `access_token()` when [`hot_token`](Self::hot_token) had nothing: one new token
    /// shared by all callers (or the cached one, due for refresh, while a background
    /// refresh runs).
    pub(crate) async fn access_token_slow(self: &Arc<Self>) -> Result<AccessToken, AuthError> {
        self.token_valid_for(Duration::ZERO).await
    }

    /// A token valid for at least `min_validity`; a cached one that is due for
    /// refresh is served while a refresh runs in the background.
    pub(crate) async fn token_valid_for(self: &Arc<Self>, min_validity: Duration) -> Result<AccessToken, AuthError> {
        if self.ctx.config.cache_policy == CachePolicy::PerRequest {
            return self.uncached_token().await;
        }
        let now = self.now();
        let good_until = now.checked_add(min_validity).unwrap_or(now);
        if let Some(set) = self.token.load().as_ref() {
            if set.is_fresh(now) && set.expires_at > good_until {
                return Ok(set.to_access_token());
            }
            if set.is_valid(good_until) {
                // Due for refresh but still good: serve it and refresh behind the caller.
                self.refresh_in_background(now);
                return Ok(set.to_access_token());
            }
            if set.is_valid(now) && min_validity >= set.lifetime {
                // The ask cannot be met: a new token would live no longer than this one
                // did. Serve the best there is instead of a token request per call.
                if !set.is_fresh(now) {
                    self.refresh_in_background(now);
                }
                return Ok(set.to_access_token());
            }
        }
        let set = self
            .obtain(Acquire::Renew, false, move |set| set.is_valid(good_until))
            .await?;
        Ok(set.to_access_token())
    }

    fn refresh_in_background(self: &Arc<Self>, now: SystemTime) {
        {
            let state = self.state();
            if Self::active(&state).is_err()
                || state
                    .backoff()
                    .and_then(|backoff| backoff.not_before)
                    .is_some_and(|t| now < t)
            {
                return;
            }
        }
        // The flight runs in its own task; nobody needs to await it. Outside a runtime
        // there is nothing to refresh on, and the valid token is served regardless.
        let _ = self.join(Acquire::Renew, |set| set.is_fresh(now));
    }

    /// Forces a new token (refresh token first, then credentials), shared with any
    /// request already in flight. Ignores the failure backoff: the app asked.
    pub(crate) async fn refresh(self: &Arc<Self>) -> Result<AccessToken, AuthError> {
        let set = self.obtain(Acquire::Renew, true, |_| false).await?;
        Ok(set.to_access_token())
    }

    /// Runs `how` as a flight (or joins one, or reuses a token `reusable` accepts),
    /// retrying after exclusive flights it may not join.
    pub(crate) async fn obtain(
        self: &Arc<Self>,
        how: Acquire,
        explicit: bool,
        reusable: impl Fn(&TokenSet) -> bool,
    ) -> FlightResult {
        let mut how = Some(how);
        let mut retried_abort = false;
        loop {
            {
                let state = self.state();
                if !matches!(how, Some(Acquire::Login(_) | Acquire::SignIn(..))) {
                    Self::active(&state)?;
                    if !explicit {
                        if let Some(error) = self.backed_off(&state, self.now()) {
                            if let Some(set) = self.token.load_full().filter(|set| reusable(set)) {
                                return Ok(set);
                            }
                            return Err(error);
                        }
                    }
                }
            }
            let Some(acquire) = how.take() else {
                return Err(AuthError::unavailable("the token request could not be started"));
            };
            let kind = match acquire {
                Acquire::Login(_) | Acquire::SignIn(..) => FlightKind::Exclusive,
                Acquire::Renew | Acquire::Recover => FlightKind::Shared,
            };
            let attempt = self.clone_acquire(&acquire);
            match self.join_kind(kind, acquire, &reusable)? {
                Joined::Ready(set) => return Ok(set),
                Joined::Flight(flight) => {
                    let result = flight.await;
                    self.deliver_events();
                    match result {
                        // The flight died with its runtime or was aborted: its slot is
                        // free again, so one more try starts a fresh request.
                        Err(error) if is_aborted_flight(&error) && !retried_abort => {
                            retried_abort = true;
                            how = Some(attempt);
                        }
                        result => return result,
                    }
                }
                Joined::Busy(flight) => {
                    let _ = flight.await;
                    how = Some(attempt);
                }
            }
        }
    }

    /// A second handle on an `Acquire` for a retry after `Busy`.
    fn clone_acquire(&self, acquire: &Acquire) -> Acquire {
        match acquire {
            Acquire::Renew => Acquire::Renew,
            Acquire::Recover => Acquire::Recover,
            Acquire::Login(password) => Acquire::Login(SecretString::from(password.expose_secret())),
            Acquire::SignIn(issued, sent_at) => Acquire::SignIn(issued.duplicate(), *sent_at),
        }
    }

    fn join(self: &Arc<Self>, how: Acquire, reusable: impl Fn(&TokenSet) -> bool) -> Result<Joined, AuthError> {
        self.join_kind(FlightKind::Shared, how, &reusable)
    }

    fn join_kind(
        self: &Arc<Self>,
        kind: FlightKind,
        how: Acquire,
        reusable: &dyn Fn(&TokenSet) -> bool,
    ) -> Result<Joined, AuthError> {
        let this = Arc::clone(self);
        let after = Arc::clone(self);
        let exclusive = kind == FlightKind::Exclusive;
        self.flight.join_or_start(
            kind,
            || {
                if exclusive {
                    return None;
                }
                self.token.load_full().filter(|set| reusable(set))
            },
            move || {
                // Under the slot lock: a logout that has fenced the session waits for
                // the slot to empty, so no flight can start unseen after the fence.
                let epoch = {
                    let state = this.state();
                    if !exclusive {
                        Self::active(&state)?;
                    } else if matches!(state.standing, Standing::LoggedOut) {
                        return Err(AuthError::reauthenticate("the session was logged out"));
                    }
                    state.epoch
                };
                Ok(crate::internal::grants::run(this, how, epoch))
            },
            move || after.deliver_events(),
        )
    }

    /// Waits for the token request in flight, if any.
    pub(crate) async fn settle(&self) {
        while let Some(flight) = self.flight.current() {
            let _ = flight.await;
        }
        self.deliver_events();
    }

    /// `CachePolicy::PerRequest`: a brand-new token from the credentials, not kept.
    async fn uncached_token(self: &Arc<Self>) -> Result<AccessToken, AuthError> {
        let epoch = {
            let state = self.state();
            Self::active(&state)?;
            state.epoch
        };
        let result = crate::internal::grants::uncached(self, epoch).await;
        self.deliver_events();
        result.map(|set| set.to_access_token())
    }

    /// An explicit password login. The password replaces the one in memory only if the
    /// server accepts it, inside the flight: a login whose caller is dropped, or that
    /// fails, leaves the previous working password in place.
    pub(crate) async fn login(self: &Arc<Self>, password: SecretString) -> Result<(), AuthError> {
        self.obtain(Acquire::Login(password), true, |_| false).await.map(drop)
    }

    /// Installs tokens obtained elsewhere (authorization code, device grant, import)
    /// through the same fence, persistence and publication as any other token.
    pub(crate) async fn sign_in_with(
        self: &Arc<Self>,
        issued: IssuedToken,
        sent_at: SystemTime,
    ) -> Result<(), AuthError> {
        self.obtain(Acquire::SignIn(issued, sent_at), true, |_| false)
            .await
            .map(drop)
    }

    /// Resumes from the stored refresh token (no password needed). The read and the
    /// adoption (and a 0.1 entry's migration) run under the persist lock and in one
    /// epoch: a logout that lands meanwhile waits for them and then removes what was
    /// read, so the next start does not restore the user. A session that needs the
    /// user leaves that state when the store holds a sign-in saved by someone else
    /// since (an app extension, a second client).
    pub(crate) async fn restore(self: &Arc<Self>) -> Result<(), AuthError> {
        crate::internal::flight::runtime()?;
        let now = self.now();
        let (epoch, active, held) = {
            let state = self.state();
            Self::active(&state).or_else(|error| match state.standing {
                Standing::NeedsUser(_) => Ok(()),
                _ => Err(error),
            })?;
            let active = matches!(state.standing, Standing::Active);
            (state.epoch, active, state.refresh_token.is_some())
        };
        if active && self.token.load().as_ref().is_some_and(|set| set.is_valid(now)) {
            return Ok(());
        }
        if !active || !held {
            if !self.persistence().is_configured() {
                return Err(AuthError::reauthenticate("no token store is configured"));
            }
            // A revocation an earlier logout of this identity queued (offline) goes
            // first; still unreachable, it stays queued and the restore goes on.
            if let Err(error) = crate::internal::offline_logout::flush(&self.ctx, &self.identity).await {
                tracing::warn!(%error, "could not send a queued revocation");
            }
            let _persisting = self.persist_lock.lock().await;
            self.check_epoch(epoch)?;
            let mut stored = self
                .persistence()
                .load()
                .await?
                .ok_or_else(|| AuthError::reauthenticate("no refresh token is stored for this identity"))?;
            let (access, scope) = (stored.access.take(), stored.scope.take());
            // A record with a DPoP key holds tokens bound to it (only DPoP-typed answers
            // record one): its access token goes out as `DPoP`, never as `Bearer`.
            let token_type = if stored.dpop.is_some() {
                crate::token::TokenType::Dpop
            } else {
                crate::token::TokenType::Bearer
            };
            self.adopt_restored(epoch, stored)?;
            // Offline start: a still-valid stored access token is served as it is; it
            // is refreshed in the background when due, like any cached token.
            if let Some(access) = access {
                if self.resume_stored(&access.token, token_type, scope.as_deref(), access.expires_at) {
                    return Ok(());
                }
            }
        }
        self.obtain(Acquire::Renew, true, |set| set.is_valid(now))
            .await
            .map(drop)
    }
}
