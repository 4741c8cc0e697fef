//! The state of one session and every transition that changes it.
//!
//! Reading this file lists every way a token can enter or leave the cache:
//! - [`SessionCore::commit`]: a token-endpoint answer (login, refresh, client
//!   credentials, sign-in), persisted before it is published;
//! - [`SessionCore::adopt_rotated`]: a token handed out by a resource server (seed 001);
//! - [`SessionCore::discard`]: a token a resource server rejected;
//! - [`SessionCore::invalidate`] and [`SessionCore::fence`] (logout).
//!
//! All of them write the cache through [`SessionCore::publish`], which bumps the
//! generation and tells the observers, under the state lock, so observers see changes
//! in generation order. Events are queued in the [`Outbox`] and delivered only once no
//! lock is held and no flight occupies the slot.
//!
//! How the session asks for tokens (cache, background refresh, single flight) is
//! `acquire.rs`, and the recovery circuit breaker's bookkeeping `breaker.rs`; both
//! change the state only through the transitions here. The grant chain run inside a
//! flight lives in `grants.rs`, the 401 decision in `recovery.rs`.

mod acquire;
mod breaker;
mod dpop_key;

use crate::error::AuthError;
use crate::events::AuthEvent;
use crate::identity::Identity;
use crate::internal::context::ClientContext;
use crate::internal::flight::SingleFlight;
use crate::internal::id_token::OidcState;
use crate::internal::outbox::Outbox;
use crate::internal::persistence::{PersistSlot, Persistence, SaveMeta, Stored};
use crate::internal::protocol::token_response::IssuedToken;
use crate::internal::random;
use crate::internal::token_set::TokenSet;
use crate::state::{SessionState, TokenChange, TokenObserver};
use crate::storage::record::StoredAccess;
use crate::token::{AccessToken, Timestamp};
use arc_swap::ArcSwapOption;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use secrecy::{ExposeSecret, SecretString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

/// The credential request kept in memory (seed 002), never persisted.
pub(crate) enum Credentials {
    /// The client's own credentials (client-credentials grant).
    Client,
    /// The user's password (password grant).
    Password(SecretString),
    /// None: the session lives on its refresh token alone (restored, browser sign-in,
    /// device grant, imported tokens).
    None,
}

/// Why a flight is getting a token; decides the grant chain and the events.
pub(crate) enum Acquire {
    /// Cache empty, expired or due: refresh token first, then credentials.
    Renew,
    /// After a revocation: like `Renew`, and a success is announced as `Reauthenticated`.
    Recover,
    /// An explicit password login with this password, installed only if accepted.
    Login(SecretString),
    /// Tokens the app obtained elsewhere (code exchange, device grant, import).
    SignIn(IssuedToken, SystemTime),
}

/// Where a token-endpoint answer handed to [`SessionCore::commit`] comes from.
pub(crate) enum Origin {
    /// A refresh: the same grant (sign-in lineage) goes on.
    Refresh,
    /// A new sign-in (login, credentials, code, device, import): a new grant; with the
    /// password that obtained it, which then replaces the one in memory.
    SignIn(Option<SecretString>),
}

/// What became of a token-endpoint answer handed to [`SessionCore::commit`].
pub(crate) enum Committed {
    /// It (or a newer token the session already held) is the session's token now; the
    /// refresh token it replaced, if the answer brought a different one.
    Published(Arc<TokenSet>, Option<SecretString>),
    /// A logout fenced it off: the caller must revoke it.
    Fenced,
}

/// How many recoveries in a row that did not help, within [`BREAKER_WINDOW`], before
/// recovery pauses.
pub(crate) const BREAKER_LIMIT: u32 = 3;
/// The window in which recoveries are counted.
pub(crate) const BREAKER_WINDOW: Duration = Duration::from_secs(60);
/// How long recovery stays paused once the breaker opens.
pub(crate) const BREAKER_PAUSE: Duration = Duration::from_secs(60);
/// Longest backoff believed from a `Retry-After` header.
const MAX_SERVER_BACKOFF: Duration = Duration::from_secs(3600);

/// Whether the session can still get tokens, and if not, why.
enum Standing {
    Active,
    /// Every credential was rejected; only a new login helps.
    NeedsUser(String),
    LoggedOut,
}

/// Failed token requests: until `not_before`, calls that would start one fail at once
/// with `last_error` (explicit `refresh()` and `login()` excepted).
#[derive(Default)]
struct Backoff {
    failures: u32,
    not_before: Option<SystemTime>,
    last_error: Option<AuthError>,
}

/// Recoveries that did not help, counted for the circuit breaker. A recovery did not
/// help when the token it obtained was rejected before any request succeeded with it.
#[derive(Default)]
struct Breaker {
    window_start: Option<SystemTime>,
    unhelpful: u32,
    open_until: Option<SystemTime>,
    /// Origin of the last token obtained by a recovery, until a request succeeds with it.
    unproven_recovery: Option<u64>,
}

/// The failure bookkeeping of [`State`], at its defaults until a token request fails
/// or a recovery runs, the DPoP key and the OpenID Connect claims: behind one box
/// allocated on first use, so 100,000 idle sessions do not each carry it. `None` in
/// [`State::rare`] means all are at their defaults.
#[derive(Default)]
struct Rare {
    backoff: Backoff,
    breaker: Breaker,
    /// The last validated ID token and its claims (OpenID Connect sessions only),
    /// replaced with the access token it came with, under the same lock.
    oidc: Option<OidcState>,
    /// The session's DPoP key with its thumbprint, once it has one (`dpop_key.rs`):
    /// here, because most sessions never have one.
    dpop: Option<Arc<crate::internal::dpop::Binding>>,
    /// The logout under way or done: its removal and revocation run detached, and
    /// every `logout()` call awaits this one outcome.
    logout: Option<LogoutWork>,
}

/// The detached work of one logout, shared by every caller that awaits it.
type LogoutWork = Shared<BoxFuture<'static, Result<(), AuthError>>>;

/// Everything mutable about a session except the lock-free token cache. Guarded by
/// one mutex that is never held across an await.
struct State {
    /// Bumped by logout. A flight records the epoch it started in; an answer that
    /// comes back in a later epoch is fenced off: never published, stored or announced.
    epoch: u64,
    standing: Standing,
    credentials: Credentials,
    refresh_token: Option<SecretString>,
    /// A save failed: retry at the next change even if the refresh token is unchanged.
    persist_pending: bool,
    /// Generation of the cached token, for observers.
    generation: u64,
    /// Logical clock for [`TokenSet::origin_tick`].
    tick: u64,
    /// Backoff and breaker; `None` while both are at their defaults.
    rare: Option<Box<Rare>>,
    /// Not in `Rare`: every Kotlin and Swift session registers an observer for its
    /// token mirror and should not pay for the failure bookkeeping with it. Boxed, so
    /// a session without observers pays one pointer.
    // The extra allocation clippy warns of is the point: 8 bytes inline, not 24.
    #[allow(clippy::box_collection)]
    observers: Option<Box<Vec<Arc<dyn TokenObserver>>>>,
}

impl State {
    fn backoff(&self) -> Option<&Backoff> {
        self.rare.as_ref().map(|rare| &rare.backoff)
    }

    /// Sets the backoff; resetting it to the default allocates nothing.
    fn set_backoff(&mut self, backoff: Backoff) {
        match &mut self.rare {
            Some(rare) => rare.backoff = backoff,
            None if backoff.is_default() => {}
            None => self.rare_mut().backoff = backoff,
        }
    }

    fn rare_mut(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }
}

impl Backoff {
    fn is_default(&self) -> bool {
        self.failures == 0 && self.not_before.is_none() && self.last_error.is_none()
    }
}

pub(crate) struct SessionCore {
    pub identity: Identity,
    pub ctx: Arc<ClientContext>,
    /// What the session keeps for its store; see [`SessionCore::persistence`].
    persist: PersistSlot,
    /// The cached token. Read without locks on the hot path; written only by `publish`.
    token: ArcSwapOption<TokenSet>,
    state: Mutex<State>,
    flight: Arc<SingleFlight>,
    /// Held by a flight from its fence check through its save to its publish, and by
    /// logout around removing the stored entry, so a late save never lands after it.
    persist_lock: tokio::sync::Mutex<()>,
    pub(crate) outbox: Outbox,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SessionCore {
    pub(crate) fn new(identity: Identity, ctx: Arc<ClientContext>, credentials: Credentials) -> Self {
        Self {
            persist: PersistSlot::default(),
            identity,
            ctx,
            token: ArcSwapOption::empty(),
            state: Mutex::new(State {
                epoch: 0,
                standing: Standing::Active,
                credentials,
                refresh_token: None,
                persist_pending: false,
                generation: 0,
                tick: 0,
                rare: None,
                observers: None,
            }),
            flight: Arc::default(),
            persist_lock: tokio::sync::Mutex::new(()),
            outbox: Outbox::default(),
        }
    }

    /// The session's view of the token store.
    pub(crate) fn persistence(&self) -> Persistence<'_> {
        Persistence::new(&self.ctx, &self.identity, &self.persist)
    }

    #[inline]
    pub(crate) fn now(&self) -> SystemTime {
        self.ctx.now()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        locked(&self.state)
    }

    /// Delivers queued events; call when no lock is held and no flight is awaited.
    pub(crate) fn deliver_events(&self) {
        self.outbox.deliver(&self.ctx.events);
    }

    // ----- reads -------------------------------------------------------------------

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

    pub(crate) fn cached(&self) -> Option<Arc<TokenSet>> {
        self.token.load_full()
    }

    pub(crate) fn session_state(&self) -> SessionState {
        let state = self.state();
        self.state_of(&state)
    }

    fn state_of(&self, state: &State) -> SessionState {
        match state.standing {
            Standing::Active => SessionState::SignedIn {
                expires_at: self.token.load().as_ref().map(|set| Timestamp(set.expires_at)),
            },
            Standing::NeedsUser(_) => SessionState::ReauthenticationRequired,
            Standing::LoggedOut => SessionState::LoggedOut,
        }
    }

    /// Fails if the session cannot get tokens without the user.
    pub(crate) fn check_active(&self) -> Result<(), AuthError> {
        Self::active(&self.state())
    }

    /// Fails once a logout has fenced `epoch` off.
    pub(crate) fn check_epoch(&self, epoch: u64) -> Result<(), AuthError> {
        if self.state().epoch == epoch {
            Ok(())
        } else {
            Err(AuthError::reauthenticate("the session was logged out"))
        }
    }

    fn active(state: &State) -> Result<(), AuthError> {
        match &state.standing {
            Standing::Active => Ok(()),
            Standing::NeedsUser(reason) => Err(AuthError::reauthenticate(reason.clone())),
            Standing::LoggedOut => Err(AuthError::reauthenticate("the session was logged out")),
        }
    }

    /// Whether the session holds a token, a refresh token or a sign-in under way:
    /// something a registry must not drop.
    pub(crate) fn holds_anything(&self) -> bool {
        let state = self.state();
        state.refresh_token.is_some() || self.token.load().is_some() || self.flight.current().is_some()
    }

    pub(crate) fn is_logged_out(&self) -> bool {
        matches!(self.state().standing, Standing::LoggedOut)
    }

    /// The last error while a failing server is backed off, unless `explicit`.
    fn backed_off(&self, state: &State, now: SystemTime) -> Option<AuthError> {
        let backoff = state.backoff()?;
        match (backoff.not_before, &backoff.last_error) {
            (Some(not_before), Some(error)) if now < not_before => Some(error.clone()),
            _ => None,
        }
    }

    // ----- transitions -------------------------------------------------------------

    /// The one place the cache is written: bumps the generation and tells observers,
    /// in generation order because it runs under the state lock.
    fn publish(&self, state: &mut State, next: Option<Arc<TokenSet>>) {
        state.generation = state.generation.saturating_add(1);
        self.token.store(next);
        let change = self.change_of(state);
        for observer in state.observers.iter().flat_map(|observers| observers.iter()) {
            if catch_unwind(AssertUnwindSafe(|| observer.on_token_change(&change))).is_err() {
                tracing::error!("a TokenObserver panicked; change dropped for it");
            }
        }
    }

    fn change_of(&self, state: &State) -> TokenChange {
        let current = self.token.load_full();
        TokenChange {
            generation: state.generation,
            token: current.as_ref().map(|set| set.to_access_token()),
            fresh_until: current.as_ref().map(|set| Timestamp(set.refresh_at)),
            state: self.state_of(state),
        }
    }

    /// Registers an observer and hands it the current state at once.
    pub(crate) fn observe(&self, observer: Arc<dyn TokenObserver>) {
        let mut state = self.state();
        let change = self.change_of(&state);
        if catch_unwind(AssertUnwindSafe(|| observer.on_token_change(&change))).is_err() {
            tracing::error!("a TokenObserver panicked; change dropped for it");
        }
        state.observers.get_or_insert_with(Box::default).push(observer);
    }

    /// The next logical time, for ordering tokens by origin.
    pub(crate) fn tick(&self) -> u64 {
        let mut state = self.state();
        state.tick = state.tick.saturating_add(1);
        state.tick
    }

    /// Takes in a token-endpoint answer obtained in `epoch`.
    ///
    /// Order: fence check → keep the refresh token in memory → save it → fence check →
    /// publish → announce. The persist lock spans the save and the publish, and logout
    /// takes it before removing the stored entry, so a logout that lands during the
    /// save removes what the save wrote. A new refresh token is kept in memory before
    /// the save because the server may already have spent the old one.
    #[allow(clippy::too_many_arguments)] // the answer, its time, its origin and its ID token: one transition
    pub(crate) async fn commit(
        &self,
        epoch: u64,
        issued: &IssuedToken,
        sent_at: SystemTime,
        tick: u64,
        event: impl FnOnce(&Identity, Timestamp) -> AuthEvent,
        origin: Origin,
        oidc: Option<OidcState>,
    ) -> Committed {
        let (password, new_grant) = match origin {
            Origin::Refresh => (None, false),
            Origin::SignIn(password) => (password, true),
        };
        let set = Arc::new(TokenSet::issued(issued, sent_at, self.ctx.config.refresh_margin, tick));
        let _persisting = self.persist_lock.lock().await;
        let mut replaced = None;
        let to_save = {
            let mut state = self.state();
            if state.epoch != epoch {
                return Committed::Fenced;
            }
            if let Some(refresh_token) = &issued.refresh_token {
                // A refresh's new token is kept at once: the server may have spent the
                // old one already. A sign-in's waits for the second fence check: if a
                // logout fences it off, the sign-in goes to a fresh session with it, so
                // this session's logout must not revoke it.
                if !new_grant {
                    replaced = Self::keep_refresh_token(&mut state, refresh_token);
                }
                Some(SecretString::from(refresh_token.expose_secret()))
            } else if state.persist_pending || self.ctx.config.offline_start {
                // With offline start the record holds the access token too, so every
                // new access token is saved, not only a new refresh token.
                state
                    .refresh_token
                    .as_ref()
                    .map(|t| SecretString::from(t.expose_secret()))
            } else {
                None
            }
        };
        if let Some(refresh_token) = &to_save {
            // The claims the session holds once this commits (an answer without an ID
            // token keeps the ones it had), stored with the tokens they came with.
            let claims = oidc
                .as_ref()
                .map(|oidc| Arc::clone(&oidc.claims))
                .or_else(|| self.id_token_claims());
            self.save(refresh_token, issued, new_grant, set.expires_at, claims.as_deref())
                .await;
        }
        // No await between the last fence check and the publish; a fence that lands
        // after the first check sends the commit round to the clean-up once more.
        let mut state = loop {
            if self.state().epoch != epoch {
                if new_grant && to_save.is_some() {
                    // Still under the persist lock: the logout's removal comes after
                    // this, and finds the record of whoever installs the sign-in.
                    if let Err(error) = self.persistence().remove_stale().await {
                        tracing::warn!(%error, "could not remove a fenced sign-in's record");
                    }
                }
                return Committed::Fenced;
            }
            let state = self.state();
            if state.epoch == epoch {
                break state;
            }
        };
        if let (true, Some(refresh_token)) = (new_grant, &issued.refresh_token) {
            replaced = Self::keep_refresh_token(&mut state, refresh_token);
        }
        if let Some(password) = password {
            state.credentials = Credentials::Password(password);
        }
        state.standing = Standing::Active;
        state.set_backoff(Backoff::default());
        // An answer without an ID token (most refreshes) keeps the claims it had.
        if let Some(oidc) = oidc {
            state.rare_mut().oidc = Some(oidc);
        }
        let held = self.token.load_full();
        let winner = match held {
            Some(held) if held.is_valid(self.now()) && !set.supersedes(&held) => held,
            _ => {
                self.publish(&mut state, Some(Arc::clone(&set)));
                set
            }
        };
        drop(state);
        self.outbox.queue(event(&self.identity, Timestamp(winner.expires_at)));
        // The token endpoint answered: revocations queued by offline logouts can go.
        crate::internal::offline_logout::server_reachable(&self.ctx);
        Committed::Published(winner, replaced)
    }

    /// Puts `refresh_token` in memory; returns the different one it replaced.
    fn keep_refresh_token(state: &mut State, refresh_token: &SecretString) -> Option<SecretString> {
        state
            .refresh_token
            .replace(SecretString::from(refresh_token.expose_secret()))
            .filter(|old| old.expose_secret() != refresh_token.expose_secret())
    }

    /// Saves a refresh token; on failure the app hears of it, the stale entry (which
    /// may hold a spent refresh token) is removed if it can be, and the next change
    /// retries. Either way the stale entry is never adopted back: it is no news to
    /// this session (`internal::persistence`).
    async fn save(
        &self,
        refresh_token: &SecretString,
        issued: &IssuedToken,
        new_grant: bool,
        expires_at: SystemTime,
        claims: Option<&crate::oidc::IdTokenClaims>,
    ) {
        if !self.persistence().is_configured() {
            return;
        }
        // Only a DPoP-bound answer stores the key with it (RFC 9449 §5).
        let dpop = (issued.token_type == crate::token::TokenType::Dpop)
            .then(|| self.state().rare.as_ref().and_then(|rare| rare.dpop.clone()))
            .flatten();
        let meta = SaveMeta {
            scope: issued.scope.as_deref(),
            refresh_expires_at: issued.refresh_expires_at,
            new_grant,
            dpop: dpop.as_deref(),
            access: Some((&issued.access_token, expires_at)),
            claims,
        };
        match self.persistence().save(refresh_token, &meta).await {
            Ok(()) => self.state().persist_pending = false,
            Err(error) => {
                tracing::warn!(%error, "could not persist the refresh token");
                self.state().persist_pending = true;
                if let Err(error) = self.persistence().remove_stale().await {
                    tracing::warn!(%error, "could not remove the stale stored refresh token");
                }
                self.outbox.queue(AuthEvent::PersistFailed {
                    identity: self.identity.clone(),
                    reason: error.to_string(),
                });
            }
        }
    }

    /// The claims of the last validated ID token.
    pub(crate) fn id_token_claims(&self) -> Option<Arc<crate::oidc::IdTokenClaims>> {
        let state = self.state();
        state.rare.as_ref()?.oidc.as_ref().map(|oidc| Arc::clone(&oidc.claims))
    }

    /// The last validated ID token, for `id_token_hint`: only in the process that
    /// validated it (claims restored from the store come without it).
    pub(crate) fn id_token(&self) -> Option<SecretString> {
        let state = self.state();
        let oidc = state.rare.as_ref()?.oidc.as_ref()?;
        oidc.id_token
            .as_ref()
            .map(|token| SecretString::from(token.expose_secret()))
    }

    /// Takes the claims of a stored record whose refresh token the session adopts:
    /// they belong to those tokens. Claims equal to the held ones keep the held ID
    /// token (for `id_token_hint`); a record without claims (an older SDK wrote it)
    /// leaves the held ones.
    fn adopt_claims(state: &mut State, claims: Option<crate::oidc::IdTokenClaims>) {
        let Some(claims) = claims else { return };
        let rare = state.rare_mut();
        if rare.oidc.as_ref().is_some_and(|held| *held.claims == claims) {
            return;
        }
        rare.oidc = Some(OidcState {
            claims: Arc::new(claims),
            id_token: None,
        });
    }

    /// Records a failed token request for the backoff (`Retry-After` wins when longer).
    pub(crate) fn record_failure(&self, epoch: u64, error: &AuthError) {
        let mut state = self.state();
        if state.epoch != epoch {
            return;
        }
        let policy = &self.ctx.config.retry_policy;
        let failures = state.backoff().map_or(0, |backoff| backoff.failures).saturating_add(1);
        let exponential = policy
            .initial_backoff
            .saturating_mul(1u32 << (failures - 1).min(16))
            .min(policy.max_backoff);
        let server = match error {
            AuthError::TemporarilyUnavailable {
                retry_after: Some(wait),
                ..
            } => (*wait).min(MAX_SERVER_BACKOFF),
            _ => Duration::ZERO,
        };
        let wait = random::jittered(exponential).max(server);
        state.set_backoff(Backoff {
            failures,
            not_before: self.now().checked_add(wait),
            last_error: Some(error.clone()),
        });
    }

    /// The server rejected every credential held: only the user can help. Fires the
    /// event once per rejection.
    pub(crate) fn require_user(&self, epoch: u64, reason: String) -> AuthError {
        let mut state = self.state();
        if state.epoch == epoch && matches!(state.standing, Standing::Active) {
            state.standing = Standing::NeedsUser(reason.clone());
            state.credentials = Credentials::None;
            let token = self.token.load_full();
            self.publish(&mut state, token);
            self.outbox.queue(AuthEvent::ReauthenticationRequired {
                identity: self.identity.clone(),
                reason: reason.clone(),
            });
        }
        AuthError::reauthenticate(reason)
    }

    /// The credentials in memory (copied), and the epoch check, for a grant.
    pub(crate) fn credentials(&self, epoch: u64) -> Result<Credentials, AuthError> {
        let state = self.state();
        if state.epoch != epoch {
            return Err(AuthError::reauthenticate("the session was logged out"));
        }
        Ok(match &state.credentials {
            Credentials::Client => Credentials::Client,
            Credentials::Password(p) => Credentials::Password(SecretString::from(p.expose_secret())),
            Credentials::None => Credentials::None,
        })
    }

    pub(crate) fn refresh_token(&self) -> Option<SecretString> {
        self.state()
            .refresh_token
            .as_ref()
            .map(|t| SecretString::from(t.expose_secret()))
    }

    /// Adopts a stored record before a refresh: only one another holder wrote after
    /// the last one this session saw (another `AuthClient` or process rotated the
    /// same grant while this one was idle), or any record when the session holds no
    /// refresh token. A stale record a failed save left behind is no news, so the
    /// spent token in it is never sent (behaviour 1 of issue 24).
    pub(crate) fn adopt_stored_refresh_token(&self, epoch: u64, stored: Stored) {
        let mut state = self.state();
        if state.epoch != epoch || !matches!(state.standing, Standing::Active) {
            return;
        }
        if state.refresh_token.is_some() && !(stored.news && stored.same_grant) {
            return;
        }
        self.persistence().adopt(&stored);
        if let Some(binding) = stored.dpop {
            // The stored refresh token is bound to the stored key: sign with it.
            state.rare_mut().dpop = Some(binding);
        }
        Self::adopt_claims(&mut state, stored.claims);
        state.refresh_token = Some(stored.refresh_token);
    }

    /// Restore's adoption of the stored record (under the persist lock, in `epoch`):
    /// an active session without a refresh token takes it; a session that needs the
    /// user takes it when someone else saved it after what this session last saw (an
    /// app extension or another client signed the user in again), and is active again.
    fn adopt_restored(&self, epoch: u64, stored: Stored) -> Result<(), AuthError> {
        let mut state = self.state();
        if state.epoch != epoch {
            return Err(AuthError::reauthenticate("the session was logged out"));
        }
        match state.standing {
            Standing::LoggedOut => return Err(AuthError::reauthenticate("the session was logged out")),
            Standing::NeedsUser(_) if !stored.news => {
                return Self::active(&state);
            }
            Standing::NeedsUser(_) => {
                state.standing = Standing::Active;
                state.set_backoff(Backoff::default());
            }
            Standing::Active if state.refresh_token.is_some() && !(stored.news && stored.same_grant) => return Ok(()),
            Standing::Active => {}
        }
        self.persistence().adopt(&stored);
        if let Some(binding) = stored.dpop {
            state.rare_mut().dpop = Some(binding);
        }
        Self::adopt_claims(&mut state, stored.claims);
        state.refresh_token = Some(stored.refresh_token);
        Ok(())
    }

    /// Forgets a refresh token the server rejected, in memory and in the store.
    pub(crate) async fn forget_refresh_token(&self, epoch: u64, rejected: &SecretString) {
        let forgotten = {
            let mut state = self.state();
            let same = state
                .refresh_token
                .as_ref()
                .is_some_and(|t| t.expose_secret() == rejected.expose_secret());
            if same && state.epoch == epoch {
                state.refresh_token = None;
            }
            same
        };
        if forgotten {
            let _persisting = self.persist_lock.lock().await;
            match self.persistence().remove_if_holds(rejected).await {
                // No record names the session's key now: if the session ends without
                // saving another (the app exits while it needs the user), a platform
                // key goes with it instead of staying in the keystore unnamed.
                Ok(false) => {}
                Ok(true) => {
                    if let Some(binding) = self.state().rare.as_ref().and_then(|rare| rare.dpop.clone()) {
                        binding.disown();
                    }
                }
                Err(error) => tracing::warn!(%error, "could not remove the rejected refresh token"),
            }
        }
    }

    /// Adopts a token a resource server handed out (seed 001) if it is newer than the
    /// one held and than any token the session held before.
    pub(crate) fn adopt_rotated(&self, candidate: TokenSet) {
        let mut state = self.state();
        if !matches!(state.standing, Standing::Active) {
            return;
        }
        let held = self.token.load_full();
        if held
            .as_ref()
            .is_some_and(|held| held.holds(candidate.token.expose_secret()) || !candidate.supersedes(held))
        {
            return;
        }
        self.publish(&mut state, Some(Arc::new(candidate)));
    }

    /// Adopts a token another instance of a server fleet obtained (`SharedTokens`),
    /// from a flight of `epoch` that holds the refresh lock: only if no logout fenced
    /// the flight, and only if it expires later than the token held (the fleet never
    /// moves a session back). It counts as a success: the backoff is cleared. No event:
    /// this session requested nothing.
    pub(crate) fn adopt_shared(&self, epoch: u64, candidate: TokenSet) -> Option<Arc<TokenSet>> {
        let mut state = self.state();
        if state.epoch != epoch || !matches!(state.standing, Standing::Active) {
            return None;
        }
        let held = self.token.load_full();
        if held
            .as_ref()
            .is_some_and(|held| held.holds(candidate.token.expose_secret()) || candidate.expires_at <= held.expires_at)
        {
            return None;
        }
        state.set_backoff(Backoff::default());
        let candidate = Arc::new(candidate);
        self.publish(&mut state, Some(Arc::clone(&candidate)));
        Some(candidate)
    }

    /// Drops the cached token if it is `failed` and returns it (the revocation is
    /// announced once, however many requests failed with it).
    pub(crate) fn discard(&self, failed: &str) -> Option<Arc<TokenSet>> {
        let mut state = self.state();
        let held = self.token.load_full().filter(|set| set.holds(failed))?;
        self.publish(&mut state, None);
        drop(state);
        self.outbox.queue(AuthEvent::RevocationDetected {
            identity: self.identity.clone(),
        });
        Some(held)
    }

    /// Offline start: installs an access token read from the store by a restore, with
    /// no token request, if the session is active and holds no valid token. Its origin
    /// is older than any answer (tick 0), so a token-endpoint answer always replaces
    /// it. No event: nothing was issued. Returns whether it was installed.
    pub(crate) fn resume_stored(
        &self,
        token: &SecretString,
        token_type: crate::token::TokenType,
        scope: Option<&str>,
        expires_at: SystemTime,
    ) -> bool {
        let mut state = self.state();
        let now = self.now();
        if !matches!(state.standing, Standing::Active)
            || expires_at <= now
            || self.token.load().as_ref().is_some_and(|held| held.is_valid(now))
        {
            return false;
        }
        let mut set = TokenSet::new(
            token.expose_secret(),
            scope,
            now,
            expires_at,
            self.ctx.config.refresh_margin,
            None,
            0,
        );
        set.token = set.token.with_type(token_type);
        self.publish(&mut state, Some(Arc::new(set)));
        true
    }

    pub(crate) fn invalidate(&self) {
        let mut state = self.state();
        state.set_backoff(Backoff::default());
        self.publish(&mut state, None);
    }

    /// The logout fence: from here on nothing obtained by a flight started before is
    /// published, stored or announced. Returns what must be revoked.
    fn fence(&self, state: &mut State) -> (Option<SecretString>, Option<Arc<TokenSet>>) {
        state.epoch = state.epoch.saturating_add(1);
        state.standing = Standing::LoggedOut;
        state.credentials = Credentials::None;
        state.persist_pending = false;
        if let Some(rare) = state.rare.as_mut() {
            rare.oidc = None;
        }
        let refresh = state.refresh_token.take();
        let access = self.token.load_full();
        self.publish(state, None);
        (refresh, access)
    }

    /// Fences the session, then, detached (so a caller that goes away cannot stop it
    /// halfway): waits for the flight that may still bring tokens (it revokes them
    /// itself), removes the stored entry and revokes (RFC 7009) what the session held.
    /// Local state is gone even if revocation fails; the first failure is returned.
    /// A repeated `logout()` awaits the same work and returns its outcome; if that
    /// work could not remove the stored entry, it tries the removal again.
    pub(crate) async fn logout(self: &Arc<Self>) -> Result<(), AuthError> {
        self.end(true).await
    }

    /// [`logout`](Self::logout) without the revocation: the provider ended the session
    /// itself (a back-channel logout), so its tokens are dead there already, and
    /// every instance of a fleet ending it would otherwise revoke them once each.
    pub(crate) async fn end_by_provider(self: &Arc<Self>) -> Result<(), AuthError> {
        self.end(false).await
    }

    async fn end(self: &Arc<Self>, revoke: bool) -> Result<(), AuthError> {
        let runtime = crate::internal::flight::runtime()?;
        let work = {
            let mut state = self.state();
            match state.rare.as_ref().and_then(|rare| rare.logout.clone()) {
                Some(work) => work,
                None => {
                    let fenced = self.fence(&mut state);
                    let work = self.spawn_logout(&runtime, fenced, true, revoke);
                    state.rare_mut().logout = Some(work.clone());
                    work
                }
            }
        };
        let outcome = work.clone().await;
        if matches!(outcome, Err(AuthError::Storage { .. })) {
            // The store failed to forget the session: a repeated logout tries again,
            // so the user is not brought back at the next start.
            let retry = {
                let mut state = self.state();
                let current = state.rare.as_ref().and_then(|rare| rare.logout.clone());
                match current {
                    Some(current) if current.ptr_eq(&work) => {
                        let retry = self.spawn_logout(&runtime, (None, None), false, revoke);
                        state.rare_mut().logout = Some(retry.clone());
                        retry
                    }
                    Some(current) => current,
                    None => return outcome,
                }
            };
            return retry.await;
        }
        outcome
    }

    fn spawn_logout(
        self: &Arc<Self>,
        runtime: &tokio::runtime::Handle,
        (refresh, access): (Option<SecretString>, Option<Arc<TokenSet>>),
        announce: bool,
        revoke: bool,
    ) -> LogoutWork {
        let core = Arc::clone(self);
        let task = runtime.spawn(async move { core.finish_logout(refresh, access, announce, revoke).await });
        async move {
            task.await
                .unwrap_or_else(|_| Err(AuthError::unavailable("the logout task was stopped")))
        }
        .boxed()
        .shared()
    }

    /// Keeps a revocation the server could not be reached for (`offline_logout`); if
    /// even that fails, `error` is the logout's outcome.
    async fn queue_revocation(
        &self,
        refresh: Option<&SecretString>,
        access: Option<SecretString>,
        expires_at: Option<SystemTime>,
        error: AuthError,
        first_error: &mut Option<AuthError>,
    ) -> bool {
        let Some(refresh) = refresh else {
            first_error.get_or_insert(error);
            return false;
        };
        let access = access
            .zip(expires_at)
            .map(|(token, expires_at)| StoredAccess { token, expires_at });
        // The key itself, never a new one: `forget_dpop_key` runs after this.
        let dpop = self.state().rare.as_ref().and_then(|rare| rare.dpop.clone());
        match self
            .persistence()
            .queue_revocation(refresh, access, dpop.as_deref())
            .await
        {
            Ok(()) => {
                tracing::info!(%error, "revocation queued until the server can be reached");
                crate::internal::offline_logout::retry_later(Arc::clone(&self.ctx), self.identity.clone());
                true
            }
            Err(store_error) => {
                tracing::warn!(%store_error, "could not queue the revocation");
                first_error.get_or_insert(error);
                false
            }
        }
    }

    async fn finish_logout(
        &self,
        refresh: Option<SecretString>,
        access: Option<Arc<TokenSet>>,
        announce: bool,
        revoke: bool,
    ) -> Result<(), AuthError> {
        self.settle().await;
        let mut first_error = None;
        let stored = {
            // A restore or migration holds this lock across its read and write, so the
            // removal comes after whatever it wrote.
            let _persisting = self.persist_lock.lock().await;
            self.persistence()
                .remove_ours(refresh.as_ref())
                .await
                .unwrap_or_else(|error| {
                    first_error = Some(error);
                    None
                })
        };
        let mut queued = false;
        if revoke {
            // After the removal, so the other holders find the record gone; they end
            // their sessions of this key without revoking: one revocation fleet-wide.
            crate::internal::shared::announce_logout(self).await;
            queued = self
                .revoke_after_logout(refresh, access, stored, &mut first_error)
                .await;
        }
        // After the revocations, which needed it to sign their proofs: the key lives
        // exactly as long as the session (or, offline, as its queued revocation).
        self.forget_dpop_key(queued);
        if announce {
            self.outbox.queue(AuthEvent::LoggedOut {
                identity: self.identity.clone(),
            });
        }
        self.deliver_events();
        first_error.map_or(Ok(()), Err)
    }

    /// Revokes (RFC 7009) what a logged-out session held and what the store held for
    /// it; offline, queues the revocation in the store.
    async fn revoke_after_logout(
        &self,
        refresh: Option<SecretString>,
        access: Option<Arc<TokenSet>>,
        stored: Option<SecretString>,
        first_error: &mut Option<AuthError>,
    ) -> bool {
        let expires_at = access.as_ref().map(|set| set.expires_at);
        let mut queued = false;
        let access = access.map(|set| SecretString::from(set.token.expose_secret()));
        match crate::internal::grants::revoke_all(self, refresh.as_ref(), access.as_ref()).await {
            Ok(()) => {}
            // Offline: the logout stands; what it could not revoke waits in the store.
            Err(error) if error.is_retryable() && refresh.is_some() && self.persistence().is_configured() => {
                queued = self
                    .queue_revocation(refresh.as_ref(), access, expires_at, error, first_error)
                    .await;
            }
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
        // A stored refresh token this session did not hold (it never finished reading
        // the store, or another holder rotated the grant) would stay live, unowned.
        if let Err(error) = crate::internal::grants::revoke_all(self, stored.as_ref(), None).await {
            first_error.get_or_insert(error);
        }
        queued
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::size_of;

    /// The inline part of every session, idle or not. `bench/run` measures the whole
    /// footprint (target: ≤ 1 KiB per idle session at 100,000 sessions); this catches
    /// the part that grows silently when a field is added. A field most sessions leave
    /// empty belongs in `Rare`, or in a slot built on first use like the store key.
    #[test]
    fn the_per_session_structs_stay_small() {
        assert!(
            size_of::<SessionCore>() <= 328,
            "SessionCore is {} B",
            size_of::<SessionCore>()
        );
        assert!(size_of::<State>() <= 112, "State is {} B", size_of::<State>());
    }
}
