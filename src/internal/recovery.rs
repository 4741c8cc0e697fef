//! `Session::send`: attaches the bearer token, and after a 401 caused by a revoked or
//! invalid token (RFC 6750 §3.1) recovers once and replays the request once, if
//! replaying is safe. Never loops.

use crate::config::{CachePolicy, RecoveryPolicy};
use crate::error::AuthError;
use crate::internal::session_core::{Acquire, SessionCore};
use crate::internal::www_authenticate::{bearer_verdict, BearerVerdict};
use crate::token::AccessToken;
use std::sync::Arc;
#[cfg(feature = "reqwest")]
use {
    crate::internal::rotation,
    crate::internal::secrets::{BufKind, SecretBuf},
    crate::session::{is_replay_safe, Replay},
    reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE},
    reqwest::{Request, RequestBuilder, Response, StatusCode},
    secrecy::ExposeSecret,
};

#[cfg(feature = "reqwest")]
pub(crate) async fn send(
    core: &Arc<SessionCore>,
    request: RequestBuilder,
    replay: Replay,
) -> Result<Response, AuthError> {
    crate::internal::flight::runtime()?;
    let (http, request) = request.build_split();
    let request =
        request.map_err(|_| AuthError::config("the request could not be built (check its URL and headers)"))?;
    let token = core.access_token().await?;
    let method = request.method().to_string();
    let replayable = is_replayable(&request, replay);
    let backup = if replayable { request.try_clone() } else { None };
    let response = execute(core, &http, request, token.expose_secret()).await?;

    // A 403 (and every other status but 401) is the resource server's answer, not a
    // token problem: the app gets it whole; `crate::insufficient_scope` reads it.
    if response.status() != StatusCode::UNAUTHORIZED {
        core.note_accepted(token.expose_secret());
        return Ok(response);
    }
    let challenges: Vec<String> = response
        .headers()
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect();
    let Some(renewed) = after_unauthorized(core, token.expose_secret(), &challenges).await? else {
        return Ok(response);
    };
    let Some(request) = backup else {
        return Err(AuthError::RequestNotReplayed { method });
    };
    let replayed = execute(core, &http, request, renewed.expose_secret()).await?;
    if replayed.status() != StatusCode::UNAUTHORIZED {
        core.note_accepted(renewed.expose_secret());
    }
    Ok(replayed)
}

/// The one decision after a 401, shared by `send` and by apps with their own HTTP
/// stack: `Some(token)` to retry with, `None` to hand the 401 back unchanged (the
/// challenge is not about our token), or an error.
pub(crate) async fn after_unauthorized<S: AsRef<str>>(
    core: &Arc<SessionCore>,
    failed: &str,
    challenges: &[S],
) -> Result<Option<AccessToken>, AuthError> {
    match bearer_verdict(challenges.iter().map(AsRef::as_ref)) {
        BearerVerdict::InsufficientScope { scope, .. } => {
            return Err(AuthError::InsufficientScope { required_scope: scope })
        }
        // RFC 9470 §3: only the user can give a stronger login; the token is kept.
        BearerVerdict::StepUp {
            acr_values, max_age, ..
        } => {
            return Err(AuthError::StepUpRequired {
                acr_values,
                max_age: max_age.map(std::time::Duration::from_secs),
            })
        }
        // RFC 6750 §3.1: a malformed request; a new token would not fix it.
        BearerVerdict::InvalidRequest { .. } => return Ok(None),
        // Another scheme's challenge: not ours to answer.
        BearerVerdict::NotBearer if !challenges.is_empty() => return Ok(None),
        BearerVerdict::NotBearer | BearerVerdict::InvalidToken { .. } => {}
    }
    if core.ctx.config.recovery_policy == RecoveryPolicy::ClearAndFail {
        core.discard(failed);
        core.deliver_events();
        return Err(AuthError::TokenRevoked);
    }
    if core.ctx.config.cache_policy == CachePolicy::PerRequest {
        return core.access_token().await.map(Some);
    }
    core.check_active()?;
    let now = core.now();
    // Only a 401 for the token held counts for the circuit breaker: a storm of 401s
    // for one token is one recovery.
    if core.admit_recovery(failed).is_err() {
        core.deliver_events();
        return Ok(None);
    }
    core.discard(failed);
    // Bitwarden's rule: a newer token than the one that failed is reused as it is.
    let set = core
        .obtain(Acquire::Recover, false, |set| !set.holds(failed) && set.is_valid(now))
        .await;
    core.deliver_events();
    Ok(Some(set?.to_access_token()))
}

#[cfg(feature = "reqwest")]
async fn execute(
    core: &SessionCore,
    http: &reqwest::Client,
    mut request: Request,
    token: &str,
) -> Result<Response, AuthError> {
    // Built in a pre-sized buffer that is wiped once hyper has sent the request.
    let mut bearer = SecretBuf::with_capacity(BufKind::Authorization, "Bearer ".len() + token.len());
    bearer.extend(b"Bearer ");
    bearer.extend(token.as_bytes());
    let value = bearer.into_header_value().ok_or_else(|| AuthError::InvalidResponse {
        status: 200,
        reason: "the access token cannot be sent in a header".into(),
        source: None,
    })?;
    request.headers_mut().insert(AUTHORIZATION, value);
    let response = http.execute(request).await.map_err(AuthError::from_resource_request)?;
    rotation::observe_map(core, response.headers());
    Ok(response)
}

#[cfg(feature = "reqwest")]
fn is_replayable(request: &Request, replay: Replay) -> bool {
    let allowed = match replay {
        Replay::Always => true,
        Replay::Never => false,
        Replay::IfIdempotent => is_replay_safe(
            request.method().as_str(),
            request.headers().contains_key("idempotency-key"),
        ),
    };
    // A body that cannot be cloned (a stream) was consumed by the first attempt.
    allowed && request.try_clone().is_some()
}
