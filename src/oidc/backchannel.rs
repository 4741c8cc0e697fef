//! [`BackChannelLogout`]: the receiver of OpenID Connect Back-Channel Logout 1.0.
//! The app mounts it at its own route (the client's `backchannel_logout_uri`); it
//! takes the request's content type and body and answers with the status to send:
//! 200 when a valid logout token ended its sessions, 400 otherwise (§2.8), with the
//! typed [`LogoutRejection`] for the app's log.
//!
//! The order of §2.6: the token is validated first ([`LogoutTokenValidator`]), then
//! its `jti` is remembered ([`LogoutReplayCache`]; a forged token never spends a
//! `jti`), then the matching sessions end ([`EndSessions`]: this client's, or the
//! whole fleet's through `tokenkeeper-redis`). Not here: the token's claim checks
//! (`logout_token`) and how a session ends (`AuthClient::end_sessions`).
//!
//! With axum (any framework works the same way: bytes in, status out):
//!
//! ```no_run
//! use axum::body::Bytes;
//! use axum::extract::State;
//! use axum::http::{header, HeaderMap, StatusCode};
//! use axum::{routing::post, Router};
//! use std::sync::Arc;
//! use tokenkeeper::oidc::BackChannelLogout;
//!
//! async fn backchannel(
//!     State(receiver): State<Arc<BackChannelLogout>>,
//!     headers: HeaderMap,
//!     body: Bytes,
//! ) -> (StatusCode, [(header::HeaderName, &'static str); 1]) {
//!     let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
//!     let outcome = receiver.handle(content_type, &body).await;
//!     if let Err(rejection) = &outcome.result {
//!         eprintln!("back-channel logout refused: {rejection}");
//!     }
//!     let status = StatusCode::from_u16(outcome.status).unwrap_or(StatusCode::BAD_REQUEST);
//!     // §2.8: the answer must not be cached.
//!     (status, [(header::CACHE_CONTROL, "no-store")])
//! }
//!
//! fn routes(client: &tokenkeeper::AuthClient) -> Result<Router, tokenkeeper::AuthError> {
//!     // A fleet: `fleet.backchannel_logout(client)?` (tokenkeeper-redis) instead.
//!     let receiver = Arc::new(client.backchannel_logout()?);
//!     Ok(Router::new()
//!         .route("/oidc/backchannel-logout", post(backchannel))
//!         .with_state(receiver))
//! }
//! ```

use crate::error::{AuthError, JwtError};
use crate::oidc::{LogoutToken, LogoutTokenValidator};
use crate::storage::{StoreError, StoreFuture};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The largest request body read: a logout token is a few KiB.
pub const MAX_LOGOUT_REQUEST_BYTES: usize = 64 * 1024;

/// What ends the sessions a valid logout token names: an [`AuthClient`](crate::AuthClient)
/// (its own sessions), or a fleet that tells every instance.
pub trait EndSessions: Send + Sync {
    /// Ends the sessions `token` matches; the number ended (or, for a fleet, the
    /// number of instances told).
    fn end_sessions<'a>(&'a self, token: &'a LogoutToken) -> StoreFuture<'a, usize>;
}

/// Where seen `jti`s are remembered (§2.6 step 7). A fleet shares one (Redis
/// `SET NX EX` in `tokenkeeper-redis`), so a token replayed to another instance is
/// refused too.
pub trait LogoutReplayCache: Send + Sync {
    /// Remembers `jti` of `issuer` for `keep_for`, atomically; `true` if it was not
    /// remembered already (the first sighting).
    fn first_sighting<'a>(&'a self, issuer: &'a str, jti: &'a str, keep_for: Duration) -> StoreFuture<'a, bool>;
}

/// The in-process [`LogoutReplayCache`]: enough for one instance. Expired entries are
/// dropped as new ones arrive; at [`capacity`](Self::with_capacity) it refuses
/// (fails closed) rather than grow.
pub struct MemoryReplayCache {
    clock: Arc<dyn crate::Clock>,
    capacity: usize,
    seen: Mutex<HashMap<(String, String), SystemTime>>,
}

impl MemoryReplayCache {
    /// A cache on `clock`, holding up to 100,000 `jti`s.
    pub fn new(clock: Arc<dyn crate::Clock>) -> Self {
        Self::with_capacity(clock, 100_000)
    }

    /// A cache holding up to `capacity` `jti`s at once.
    pub fn with_capacity(clock: Arc<dyn crate::Clock>, capacity: usize) -> Self {
        Self {
            clock,
            capacity,
            seen: Mutex::new(HashMap::new()),
        }
    }
}

impl fmt::Debug for MemoryReplayCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryReplayCache")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl LogoutReplayCache for MemoryReplayCache {
    fn first_sighting<'a>(&'a self, issuer: &'a str, jti: &'a str, keep_for: Duration) -> StoreFuture<'a, bool> {
        let now = self.clock.now();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let key = (issuer.to_owned(), jti.to_owned());
        let outcome = match seen.get(&key) {
            Some(until) if *until > now => Ok(false),
            _ => {
                if seen.len() >= self.capacity {
                    seen.retain(|_, until| *until > now);
                }
                if seen.len() >= self.capacity {
                    Err(StoreError("the logout replay cache is full".to_owned()))
                } else {
                    seen.insert(key, now.checked_add(keep_for).unwrap_or(now));
                    Ok(true)
                }
            }
        };
        Box::pin(std::future::ready(outcome))
    }
}

/// Why a back-channel logout request ended nothing (always answered with 400).
#[derive(Debug)]
#[non_exhaustive]
pub enum LogoutRejection {
    /// The body is not `application/x-www-form-urlencoded`, too large, or has no
    /// (or more than one) `logout_token`.
    BadRequest(&'static str),
    /// The token failed a named check (signature, `aud`, `events`, `nonce`, a replayed `jti`…).
    InvalidToken(JwtError),
    /// The issuer's key set could not be fetched, so nothing could be verified.
    KeySetUnavailable(AuthError),
    /// The replay cache or the fleet could not be reached: nothing was ended.
    Unavailable(StoreError),
}

impl fmt::Display for LogoutRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadRequest(why) => write!(f, "not a back-channel logout request: {why}"),
            Self::InvalidToken(error) => write!(f, "the logout token {error}"),
            Self::KeySetUnavailable(error) => write!(f, "the logout token could not be verified: {error}"),
            Self::Unavailable(error) => write!(f, "the logout could not be carried out: {error}"),
        }
    }
}

impl std::error::Error for LogoutRejection {}

/// A valid logout token and what it ended.
#[derive(Clone, Debug)]
pub struct LogoutAccepted {
    /// The validated token.
    pub token: LogoutToken,
    /// What [`EndSessions::end_sessions`] returned.
    pub ended: usize,
}

/// The answer to one back-channel logout request.
#[derive(Debug)]
pub struct LogoutOutcome {
    /// The HTTP status to answer with: 200 or 400 (send `Cache-Control: no-store`).
    pub status: u16,
    /// What happened, for the app's log.
    pub result: Result<LogoutAccepted, LogoutRejection>,
}

/// The back-channel logout receiver; see the module docs. Cheap to share (`Arc`).
pub struct BackChannelLogout {
    validator: LogoutTokenValidator,
    replay: Arc<dyn LogoutReplayCache>,
    ender: Arc<dyn EndSessions>,
}

impl fmt::Debug for BackChannelLogout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackChannelLogout")
            .field("validator", &self.validator)
            .finish_non_exhaustive()
    }
}

impl BackChannelLogout {
    /// A receiver validating with `validator`, ending sessions through `ender`, with
    /// an in-process [`MemoryReplayCache`] on the system clock.
    pub fn new(validator: LogoutTokenValidator, ender: Arc<dyn EndSessions>) -> Self {
        Self {
            validator,
            replay: Arc::new(MemoryReplayCache::new(Arc::new(crate::SystemClock))),
            ender,
        }
    }

    /// Remembers `jti`s in `replay` (a fleet's shared memory) instead.
    pub fn replay_cache(mut self, replay: Arc<dyn LogoutReplayCache>) -> Self {
        self.replay = replay;
        self
    }

    /// Ends sessions through `ender` (a fleet) instead.
    pub fn end_sessions_with(mut self, ender: Arc<dyn EndSessions>) -> Self {
        self.ender = ender;
        self
    }

    /// Handles one POST: `content_type` is the request's `Content-Type` header,
    /// `body` its body. Never panics, whatever the bytes.
    pub async fn handle(&self, content_type: Option<&str>, body: &[u8]) -> LogoutOutcome {
        let result = self.accept(content_type, body).await;
        LogoutOutcome {
            status: if result.is_ok() { 200 } else { 400 },
            result,
        }
    }

    async fn accept(&self, content_type: Option<&str>, body: &[u8]) -> Result<LogoutAccepted, LogoutRejection> {
        let token = logout_token_of(content_type, body)?;
        let token = self.validator.validate(&token).await.map_err(|error| match error {
            AuthError::InvalidJwt(jwt) => LogoutRejection::InvalidToken(jwt),
            other => LogoutRejection::KeySetUnavailable(other),
        })?;
        let first = self
            .replay
            .first_sighting(&token.issuer, &token.jti, self.validator.replay_window())
            .await
            .map_err(LogoutRejection::Unavailable)?;
        if !first {
            return Err(LogoutRejection::InvalidToken(crate::internal::jose::reject(
                crate::JwtCheck::Replayed,
                "this jti was seen before",
            )));
        }
        let ended = self
            .ender
            .end_sessions(&token)
            .await
            .map_err(LogoutRejection::Unavailable)?;
        tracing::info!(ended, "back-channel logout: sessions ended");
        Ok(LogoutAccepted { token, ended })
    }
}

impl crate::AuthClient {
    /// A back-channel logout receiver for this client: logout tokens verified against
    /// the configured `jwks_uri` (the same cached [`JwksVerifier`](crate::oidc::JwksVerifier)
    /// as ID tokens), from the configured issuer, for this client id; `jti`s remembered
    /// in process; sessions ended by [`end_sessions`](Self::end_sessions). A fleet
    /// swaps in its shared replay cache and fan-out (`tokenkeeper-redis`).
    /// [`AuthError::InvalidConfig`] without a `jwks_uri` and issuer
    /// ([`AuthConfig::discover`](crate::AuthConfig::discover) sets both).
    pub fn backchannel_logout(&self) -> Result<BackChannelLogout, AuthError> {
        let ctx = self.context();
        let id_tokens = ctx.id_tokens.as_ref().ok_or_else(|| {
            AuthError::config("back-channel logout needs the issuer's jwks_uri and issuer (AuthConfig::discover)")
        })?;
        let validator =
            LogoutTokenValidator::new(id_tokens.verifier().clone(), id_tokens.issuer(), id_tokens.client_id());
        Ok(BackChannelLogout {
            validator,
            replay: Arc::new(MemoryReplayCache::new(ctx.config.shared_clock())),
            ender: Arc::new(self.clone()),
        })
    }

    /// Ends, without revoking, this client's signed-in sessions that `token` names
    /// (same issuer; the same `sub` and `sid` where it names them, read from each
    /// session's ID token claims): each is logged out locally and its stored record
    /// removed, as [`Session::logout`](crate::Session::logout) does, and
    /// [`AuthEvent::LoggedOut`](crate::AuthEvent::LoggedOut) is emitted. The
    /// provider ended them itself, so their tokens are not revoked again. Returns how
    /// many ended. A session whose sign-in is still in flight has no claims yet and is
    /// not matched.
    pub async fn end_sessions(&self, token: &LogoutToken) -> usize {
        let ended = self
            .registry()
            // The claims' Arc, not a copy: this looks at every session of the client.
            .matching(|session| {
                session
                    .core()
                    .id_token_claims()
                    .is_some_and(|claims| token.matches(&claims))
            });
        for session in &ended {
            self.registry().remove(session);
            if let Err(error) = session.core().end_by_provider().await {
                // Local state is gone whatever happened; the store may still hold the record.
                tracing::warn!(%error, "back-channel logout: the session's stored record was not removed");
            }
        }
        ended.len()
    }
}

impl EndSessions for crate::AuthClient {
    fn end_sessions<'a>(&'a self, token: &'a LogoutToken) -> StoreFuture<'a, usize> {
        Box::pin(async move { Ok(crate::AuthClient::end_sessions(self, token).await) })
    }
}

/// The one `logout_token` of an `application/x-www-form-urlencoded` body (§2.5).
fn logout_token_of(content_type: Option<&str>, body: &[u8]) -> Result<String, LogoutRejection> {
    let media_type = content_type
        .and_then(|ct| ct.split(';').next())
        .map(str::trim)
        .unwrap_or_default();
    if !media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(LogoutRejection::BadRequest(
            "the content type is not application/x-www-form-urlencoded",
        ));
    }
    if body.len() > MAX_LOGOUT_REQUEST_BYTES {
        return Err(LogoutRejection::BadRequest("the body is too large"));
    }
    let mut tokens = url::form_urlencoded::parse(body).filter(|(name, _)| name == "logout_token");
    match (tokens.next(), tokens.next()) {
        (Some((_, token)), None) if !token.is_empty() => Ok(token.into_owned()),
        (Some(_), Some(_)) => Err(LogoutRejection::BadRequest("more than one logout_token")),
        _ => Err(LogoutRejection::BadRequest("no logout_token")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;

    #[test]
    fn the_form_must_carry_exactly_one_token() {
        let form = Some("application/x-www-form-urlencoded; charset=UTF-8");
        assert_eq!(logout_token_of(form, b"logout_token=a.b.c").unwrap(), "a.b.c");
        for (content_type, body) in [
            (Some("application/json"), &b"logout_token=a.b.c"[..]),
            (None, b"logout_token=a.b.c"),
            (form, b"other=1"),
            (form, b"logout_token="),
            (form, b"logout_token=a&logout_token=b"),
        ] {
            assert!(
                matches!(logout_token_of(content_type, body), Err(LogoutRejection::BadRequest(_))),
                "{content_type:?} {body:?}"
            );
        }
        let huge = vec![b'a'; MAX_LOGOUT_REQUEST_BYTES + 1];
        assert!(logout_token_of(form, &huge).is_err());
    }

    #[tokio::test]
    async fn the_memory_cache_refuses_a_jti_twice_until_it_ages_out_and_fails_closed_when_full() {
        let clock = Arc::new(ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000)));
        let cache = MemoryReplayCache::with_capacity(clock.clone(), 2);
        let window = Duration::from_secs(60);
        assert!(cache.first_sighting("iss", "a", window).await.unwrap());
        assert!(!cache.first_sighting("iss", "a", window).await.unwrap());
        assert!(cache.first_sighting("other-iss", "a", window).await.unwrap());
        assert!(cache.first_sighting("iss", "b", window).await.is_err(), "full");
        clock.advance(Duration::from_secs(61));
        assert!(cache.first_sighting("iss", "a", window).await.unwrap(), "aged out");
    }
}
