//! The body of a flight: which grant to send (refresh token first, then the
//! credentials held in memory, seed 002), and what each answer means for the session.
//! Every token obtained goes to [`SessionCore::commit`]; an answer that a logout fenced
//! off is revoked here (RFC 7009) and never reaches the cache, the store or a caller.

use crate::error::AuthError;
use crate::events::AuthEvent;
use crate::identity::{Identity, Subject};
use crate::internal::context::ClientContext;
use crate::internal::dpop;
use crate::internal::flight::FlightResult;
use crate::internal::protocol::error_response;
use crate::internal::protocol::request::{self, Grant};
use crate::internal::protocol::token_response::{self, IssuedToken};
use crate::internal::session_core::{Acquire, Committed, Credentials, Origin, SessionCore};
use crate::internal::token_set::TokenSet;
use crate::internal::transport;
use crate::token::Timestamp;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::time::SystemTime;

/// How often a flight takes the refresh lock again after a fleet lock woke it without
/// the lease (see `renew`) before it goes on with what it holds.
const MAX_LOOKS: u32 = 8;

/// The future a flight runs for `how`, in the session's `epoch`.
pub(crate) async fn run(core: Arc<SessionCore>, how: Acquire, epoch: u64) -> FlightResult {
    match how {
        Acquire::Renew => renewed(&core, epoch, false).await,
        Acquire::Recover => renewed(&core, epoch, true).await,
        Acquire::Login(password) => logged_in(&core, epoch, password).await,
        Acquire::SignIn(issued, sent_at) => {
            let tick = core.tick();
            finish(&core, epoch, issued, sent_at, tick, Announce::SignedIn, None).await
        }
    }
}

/// What a successful grant is announced as.
#[derive(Clone, Copy)]
enum Announce {
    Issued,
    /// Tokens the app obtained elsewhere (code, device, import): announced as issued;
    /// if a logout fences them off they are handed back to the sign-in
    /// (`AuthClient::install_signed_in`), which installs them in a fresh session or
    /// revokes them.
    SignedIn,
    Refreshed,
    Recovered(&'static str),
}

/// Renew or recover; failures feed the backoff.
async fn renewed(core: &Arc<SessionCore>, epoch: u64, recovering: bool) -> FlightResult {
    let result = renew(core, epoch, recovering).await;
    if let Err(error) = &result {
        if !matches!(error, AuthError::ReauthenticationRequired { .. }) {
            core.record_failure(epoch, error);
        }
        tracing::warn!(%error, "token request failed");
    }
    result
}

/// RFC 6749 §6 with the refresh token; if the server rejects it, the credentials in
/// memory; if there are none, the user.
async fn renew(core: &Arc<SessionCore>, epoch: u64, recovering: bool) -> FlightResult {
    // Another AuthClient or process sharing the store may rotate the same refresh
    // token: hold the key's guard for the whole refresh, and start from what is stored.
    // A server fleet shares access tokens too (`SharedTokens`): under the same guard,
    // a token another instance just obtained is adopted instead of requesting one.
    // First without the guard: an instance that refreshed moments ago has usually
    // shared its token already, and adopting it costs one read instead of a lease.
    if let Some(set) = crate::internal::shared::adopt(core, epoch).await {
        return Ok(set);
    }
    let _guard = if core.persistence().is_configured() || core.ctx.shared.is_some() {
        let mut looks = 0;
        let guard = loop {
            let guard = core.persistence().refresh_guard().await?;
            if let Some(set) = crate::internal::shared::adopt(core, epoch).await {
                return Ok(set);
            }
            looks += 1;
            // A fleet lock hands back a lease that is not held when it woke this
            // waiter because another holder finished (tokenkeeper-redis): having looked,
            // ask for the lock again instead of requesting unguarded. Only the waiters
            // that find nothing to adopt race for the lease again, not all of them.
            if guard.is_held() || looks >= MAX_LOOKS {
                break guard;
            }
        };
        if core.persistence().is_configured() {
            match core.persistence().load().await {
                Ok(Some(stored)) => core.adopt_stored_refresh_token(epoch, stored),
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "could not re-read the stored refresh token"),
            }
        }
        Some(guard)
    } else {
        None
    };
    if let Some(refresh_token) = core.refresh_token() {
        let tick = core.tick();
        match token_request(core, epoch, &Grant::RefreshToken(&refresh_token)).await {
            Ok((issued, sent_at)) => {
                let announce = if recovering {
                    Announce::Recovered("refresh_token")
                } else {
                    Announce::Refreshed
                };
                return finish(core, epoch, issued, sent_at, tick, announce, None).await;
            }
            Err(AuthError::InvalidGrant(_)) => {
                tracing::info!("refresh token rejected; using the credentials in memory");
                core.forget_refresh_token(epoch, &refresh_token).await;
            }
            Err(error) => return Err(error),
        }
    }
    with_credentials(core, epoch, recovering).await
}

/// The client-credentials or password grant with what is held in memory. A rejected
/// password is dropped and never sent again: identity providers lock accounts.
async fn with_credentials(core: &Arc<SessionCore>, epoch: u64, recovering: bool) -> FlightResult {
    let credentials = core.credentials(epoch)?;
    let grant = match (&core.identity.subject, &credentials) {
        (_, Credentials::None) => {
            return Err(core.require_user(
                epoch,
                "the refresh token is missing or was rejected and no credentials are held in memory".into(),
            ))
        }
        (Subject::User(username), Credentials::Password(password)) => Grant::Password { username, password },
        _ => Grant::ClientCredentials,
    };
    let tick = core.tick();
    match token_request(core, epoch, &grant).await {
        Ok((issued, sent_at)) => {
            let announce = if recovering {
                Announce::Recovered(grant.name())
            } else {
                Announce::Issued
            };
            finish(core, epoch, issued, sent_at, tick, announce, None).await
        }
        Err(error) => {
            core.outbox.queue(AuthEvent::LoginFailed {
                identity: core.identity.clone(),
                reason: error.to_string(),
            });
            match error {
                AuthError::InvalidGrant(details) if matches!(credentials, Credentials::Password(_)) => {
                    Err(core.require_user(epoch, format!("the password held in memory was rejected ({details})")))
                }
                error => Err(error),
            }
        }
    }
}

/// An explicit login: the password grant with the password given, whatever else the
/// session holds. Its failure does not touch the session's backoff or state.
async fn logged_in(core: &Arc<SessionCore>, epoch: u64, password: SecretString) -> FlightResult {
    let Some(username) = core.identity.account() else {
        return Err(AuthError::config("a password login needs a user session"));
    };
    let tick = core.tick();
    match token_request(
        core,
        epoch,
        &Grant::Password {
            username,
            password: &password,
        },
    )
    .await
    {
        Ok((issued, sent_at)) => finish(core, epoch, issued, sent_at, tick, Announce::Issued, Some(password)).await,
        Err(error) => {
            core.outbox.queue(AuthEvent::LoginFailed {
                identity: core.identity.clone(),
                reason: error.to_string(),
            });
            Err(error)
        }
    }
}

/// Commits an answer; one that a logout fenced off is revoked instead.
async fn finish(
    core: &Arc<SessionCore>,
    epoch: u64,
    issued: IssuedToken,
    sent_at: SystemTime,
    tick: u64,
    announce: Announce,
    password: Option<SecretString>,
) -> FlightResult {
    let event = move |identity: &Identity, expires_at: Timestamp| match announce {
        Announce::Refreshed | Announce::Recovered("refresh_token") => AuthEvent::TokenRefreshed {
            identity: identity.clone(),
            expires_at,
        },
        Announce::Issued | Announce::SignedIn | Announce::Recovered(_) => AuthEvent::TokenIssued {
            identity: identity.clone(),
            expires_at,
        },
    };
    // OIDC: the ID token is validated before anything of the answer is kept.
    let previous = core.id_token_claims();
    let checks = crate::internal::id_token::SignInChecks::default();
    let checked = crate::internal::id_token::check_issued(
        &core.ctx,
        &core.identity,
        &issued,
        sent_at,
        checks,
        previous.as_deref(),
    )
    .await;
    // A refresh keeps the grant; anything else is a new sign-in.
    let refresh_grant = matches!(announce, Announce::Refreshed | Announce::Recovered("refresh_token"));
    let oidc = match checked {
        Ok(oidc) => oidc,
        Err(error) => {
            tracing::warn!(%error, "the ID token was refused; no token was installed");
            // A refused answer to a new grant (a login, a recovery by password or client
            // credentials) is owned by nobody: revoked, not left live. A refused refresh
            // keeps the session's grant, whose refresh token may be the one returned; a
            // sign-in's installer revokes what it obtained itself.
            if !refresh_grant && !matches!(announce, Announce::SignedIn) {
                let access = SecretString::from(issued.access_token.expose_secret());
                if let Err(error) = revoke_all(core, issued.refresh_token.as_ref(), Some(&access)).await {
                    tracing::warn!(%error, "could not revoke the tokens of a refused answer");
                }
            }
            return Err(error);
        }
    };
    let origin = if refresh_grant {
        Origin::Refresh
    } else {
        Origin::SignIn(password)
    };
    match core.commit(epoch, &issued, sent_at, tick, event, origin, oidc).await {
        Committed::Published(set, replaced) => {
            crate::internal::shared::publish(core, &set).await;
            // A refresh grant's old token is the server's to retire (RFC 6749 §6); one
            // a new login or sign-in replaced would otherwise stay live, unheld.
            if let Some(replaced) = replaced.filter(|_| !refresh_grant) {
                if let Err(error) = revoke_all(core, Some(&replaced), None).await {
                    tracing::warn!(%error, "could not revoke the refresh token a new sign-in replaced");
                }
            }
            if let Announce::Recovered(grant) = announce {
                tracing::info!(grant, "recovered from a revoked token");
                core.note_recovered(&set);
                core.outbox.queue(AuthEvent::Reauthenticated {
                    identity: core.identity.clone(),
                });
            }
            Ok(set)
        }
        Committed::Fenced if matches!(announce, Announce::SignedIn) => Err(AuthError::reauthenticate(
            "the session was logged out while the sign-in was being installed",
        )),
        Committed::Fenced => {
            let access = SecretString::from(issued.access_token.expose_secret());
            if let Err(error) = revoke_all(core, issued.refresh_token.as_ref(), Some(&access)).await {
                tracing::warn!(%error, "could not revoke a token that arrived after logout");
            }
            Err(AuthError::reauthenticate(
                "the session was logged out while a token was being requested",
            ))
        }
    }
}

/// `CachePolicy::PerRequest`: a new token from the credentials, never cached.
pub(crate) async fn uncached(core: &Arc<SessionCore>, epoch: u64) -> FlightResult {
    let credentials = core.credentials(epoch)?;
    let grant = match (&core.identity.subject, &credentials) {
        (Subject::User(username), Credentials::Password(password)) => Grant::Password { username, password },
        (Subject::Client, Credentials::Client) => Grant::ClientCredentials,
        _ => return Err(core.require_user(epoch, "no credentials are held in memory".into())),
    };
    let tick = core.tick();
    let (issued, sent_at) = token_request(core, epoch, &grant).await?;
    // Nobody keeps a per-request answer's refresh token: left alone it would stay live
    // at the server, owned by no session and no store.
    if let Some(refresh) = &issued.refresh_token {
        if let Err(error) = revoke_all(core, Some(refresh), None).await {
            tracing::warn!(%error, "could not revoke the refresh token of a per-request answer");
        }
    }
    // The logout fence holds here too: an answer that comes back after logout() is
    // revoked, never handed out.
    if let Err(fenced) = core.credentials(epoch) {
        let access = SecretString::from(issued.access_token.expose_secret());
        if let Err(error) = revoke_all(core, None, Some(&access)).await {
            tracing::warn!(%error, "could not revoke a token that arrived after logout");
        }
        return Err(fenced);
    }
    Ok(Arc::new(TokenSet::issued(
        &issued,
        sent_at,
        core.ctx.config.refresh_margin,
        tick,
    )))
}

/// One token request with retries; returns the answer and when it was sent. Stops
/// retrying once a logout has fenced `epoch` off.
async fn token_request(
    core: &SessionCore,
    epoch: u64,
    grant: &Grant<'_>,
) -> Result<(IssuedToken, SystemTime), AuthError> {
    let ctx = &core.ctx;
    let binding = core.dpop_binding()?;
    let result = transport::with_retries(ctx.clock(), &ctx.config.retry_policy, || {
        let fenced = core.credentials(epoch).err();
        let default_lifetime = ctx.config.default_token_lifetime;
        let binding = binding.as_deref();
        async move {
            if let Some(fenced) = fenced {
                return Err(fenced);
            }
            let build = || request::token_request(ctx, &core.identity, grant);
            let (response, sent_at) = dpop::authorization_server_exchange(ctx, binding, &ctx.token_url, build).await?;
            let issued = token_response::parse(&response, sent_at, default_lifetime)?;
            dpop::check_token_type(ctx, binding.is_some(), issued.token_type)?;
            Ok((issued, sent_at))
        }
    })
    .await;
    match &result {
        Ok((issued, _)) => tracing::info!(
            grant = grant.name(),
            lifetime_s = issued.lifetime.as_secs(),
            "token issued"
        ),
        Err(error) => tracing::debug!(identity = %core.identity, grant = grant.name(), %error, "token request failed"),
    }
    result
}

/// RFC 7009: the refresh token first (revoking it usually revokes its access tokens
/// too), then the access token. A server that cannot revoke access tokens
/// (`unsupported_token_type`, §2.2.1; common for JWTs) is not an error.
pub(crate) async fn revoke_all(
    core: &SessionCore,
    refresh: Option<&SecretString>,
    access: Option<&SecretString>,
) -> Result<(), AuthError> {
    let binding = core.dpop_binding()?;
    revoke_with(&core.ctx, binding.as_deref(), refresh, access).await
}

/// [`revoke_all`] with only the client context, for revocations sent after their
/// session is gone (the offline-logout queue).
pub(crate) async fn revoke_with(
    ctx: &ClientContext,
    binding: Option<&dpop::Binding>,
    refresh: Option<&SecretString>,
    access: Option<&SecretString>,
) -> Result<(), AuthError> {
    let Some(url) = &ctx.revocation_url else {
        return Ok(());
    };
    let mut first_error = None;
    let tokens = [(refresh, "refresh_token"), (access, "access_token")];
    for (token, hint) in tokens {
        let Some(token) = token else { continue };
        match revoke(ctx, binding, url, token, hint).await {
            Ok(()) => {}
            Err(AuthError::OAuth(details)) if hint == "access_token" && details.code == "unsupported_token_type" => {
                tracing::debug!("the server does not revoke access tokens; the refresh token was revoked");
            }
            Err(error) => {
                tracing::warn!(hint, %error, "token revocation failed");
                first_error.get_or_insert(error);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

async fn revoke(
    ctx: &ClientContext,
    binding: Option<&dpop::Binding>,
    url: &url::Url,
    token: &SecretString,
    hint: &str,
) -> Result<(), AuthError> {
    let build = || request::revocation_request(ctx, url, token, hint);
    let (response, _) = dpop::authorization_server_exchange(ctx, binding, url, build).await?;
    if (200..300).contains(&response.status) {
        Ok(())
    } else {
        Err(error_response::error_for(&response))
    }
}
