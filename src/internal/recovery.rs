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
    crate::internal::dpop,
    crate::internal::rotation,
    crate::internal::secrets::{BufKind, SecretBuf},
    crate::internal::www_authenticate::parse_challenges,
    crate::session::{is_replay_safe, Replay},
    crate::token::TokenType,
    reqwest::header::{HeaderValue, AUTHORIZATION, DATE, WWW_AUTHENTICATE},
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
    // RFC 9449 §9: a resource that wants a nonce refuses the request before acting on
    // it, so it is sent once more with the nonce unless the app forbade any re-send.
    let nonce_backup = match (token.token_type(), replay) {
        (TokenType::Dpop, Replay::IfIdempotent | Replay::Always) => request.try_clone(),
        _ => None,
    };
    let (mut response, fixable) = execute(core, &http, request, &token).await?;
    if let Some(again) = nonce_backup.filter(|_| fixable) {
        tracing::debug!("the resource server refused the DPoP proof for its nonce or clock; sending once more");
        response = execute(core, &http, again, &token).await?.0;
    }

    // A 403 (and every other status but 401) is the resource server's answer, not a
    // token problem: the app gets it whole; `crate::insufficient_scope` reads it.
    if response.status() != StatusCode::UNAUTHORIZED {
        core.note_accepted(token.expose_secret());
        return Ok(response);
    }
    // A second nonce refusal, or one that could not be re-sent: not a revocation.
    if wants_nonce(&response) {
        return Ok(response);
    }
    let challenges = challenges(&response);
    let Some(renewed) = after_unauthorized(core, token.expose_secret(), &challenges).await? else {
        return Ok(response);
    };
    let Some(request) = backup else {
        return Err(AuthError::RequestNotReplayed { method });
    };
    let (replayed, _) = execute(core, &http, request, &renewed).await?;
    if replayed.status() != StatusCode::UNAUTHORIZED {
        core.note_accepted(renewed.expose_secret());
    }
    Ok(replayed)
}

#[cfg(feature = "reqwest")]
fn challenges(response: &Response) -> Vec<String> {
    response
        .headers()
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect()
}

#[cfg(feature = "reqwest")]
/// A 401 whose `DPoP` challenge says `use_dpop_nonce` (RFC 9449 §9).
fn wants_nonce(response: &Response) -> bool {
    response.status() == StatusCode::UNAUTHORIZED
        && bearer_verdict(challenges(response).iter().map(String::as_str)) == BearerVerdict::UseDpopNonce
}

#[cfg(feature = "reqwest")]
/// A 401 whose `DPoP` challenge says `invalid_dpop_proof`: with a clock correction
/// learned from the same answer, the proof's `iat` was the likely cause.
fn proof_refused(response: &Response) -> bool {
    response.status() == StatusCode::UNAUTHORIZED
        && challenges(response).iter().any(|value| {
            parse_challenges(value)
                .iter()
                .any(|c| c.is_scheme("DPoP") && c.param("error") == Some(dpop::INVALID_DPOP_PROOF))
        })
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
        } => return Err(AuthError::step_up(acr_values, max_age)),
        // RFC 6750 §3.1: a malformed request; a new token would not fix it.
        BearerVerdict::InvalidRequest { .. } => return Ok(None),
        // RFC 9449 §9: the token is fine, the proof lacked the nonce; retry with the
        // same token (the nonce is remembered), no recovery and no breaker count.
        BearerVerdict::UseDpopNonce => {
            return Ok(core
                .cached()
                .filter(|set| set.holds(failed))
                .map(|set| set.to_access_token()))
        }
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
    // A fleet must not adopt the revoked token again (`SharedTokens`).
    crate::internal::shared::withdraw(core, failed).await;
    // Bitwarden's rule: a newer token than the one that failed is reused as it is.
    let set = core
        .obtain(Acquire::Recover, false, |set| !set.holds(failed) && set.is_valid(now))
        .await;
    core.deliver_events();
    Ok(Some(set?.to_access_token()))
}

/// Sends `request` with `token`; also says whether a refused DPoP proof can be fixed
/// by sending once more (a new nonce, or a clock correction learned from the answer).
#[cfg(feature = "reqwest")]
async fn execute(
    core: &SessionCore,
    http: &reqwest::Client,
    mut request: Request,
    token: &AccessToken,
) -> Result<(Response, bool), AuthError> {
    let scheme = token.token_type().scheme();
    let token = token.expose_secret();
    // Built in a pre-sized buffer that is wiped once hyper has sent the request.
    let mut authorization = SecretBuf::with_capacity(BufKind::Authorization, scheme.len() + 1 + token.len());
    authorization.extend(scheme.as_bytes());
    authorization.extend(b" ");
    authorization.extend(token.as_bytes());
    let value = authorization
        .into_header_value()
        .ok_or_else(|| AuthError::InvalidResponse {
            status: 200,
            reason: "the access token cannot be sent in a header".into(),
            source: None,
        })?;
    request.headers_mut().insert(AUTHORIZATION, value);
    // The clock correction this request's proof is built with (see `corrected_since`).
    let offset_used = core.ctx.dpop.as_ref().map(|state| state.offset());
    if scheme == TokenType::Dpop.scheme() {
        let proof = dpop::resource_proof(core, request.method().as_str(), request.url(), token)?;
        let mut proof = HeaderValue::try_from(proof.expose_secret()).map_err(|_| AuthError::Storage {
            reason: "the DPoP proof is not a valid header value".into(),
            source: None,
        })?;
        // A proof can be replayed at the same URL for a while: hyper must not log it.
        proof.set_sensitive(true);
        request.headers_mut().insert(dpop::PROOF_HEADER, proof);
    }
    let url = request.url().clone();
    let response = http.execute(request).await.map_err(AuthError::from_resource_request)?;
    let mut fixable = false;
    if let Some(state) = &core.ctx.dpop {
        state.observe_headers(&url, response.headers());
        let date = response
            .headers()
            .get(DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|d| httpdate::parse_http_date(d).ok());
        state.observe_date(date, core.now());
        let clock_moved = offset_used.is_some_and(|used| state.corrected_since(used));
        fixable =
            scheme == TokenType::Dpop.scheme() && (wants_nonce(&response) || (clock_moved && proof_refused(&response)));
    }
    rotation::observe_map(core, response.headers());
    Ok((response, fixable))
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
