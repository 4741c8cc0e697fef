//! Where proofs meet requests to the authorization server: every token, revocation
//! and device-authorization request goes through [`authorization_server_exchange`],
//! which signs a fresh proof per attempt, remembers the server's nonce and clock, and
//! answers `use_dpop_nonce` (RFC 9449 §8) by sending once more with the new nonce.
//! [`check_token_type`] holds a token response to what was sent (§5, §7.1).

use super::proof::Binding;
use super::{INVALID_DPOP_PROOF, NONCE_HEADER, PROOF_HEADER, USE_DPOP_NONCE};
use crate::dpop::DpopMode;
use crate::error::AuthError;
use crate::internal::context::ClientContext;
use crate::internal::protocol::request::Outgoing;
use crate::internal::secrets::{BufKind, SecretBuf};
use crate::internal::session_core::SessionCore;
use crate::internal::transport::{self, HttpResponse};
use crate::token::TokenType;
use bytes::Bytes;
use secrecy::{ExposeSecret, SecretString};
use std::time::SystemTime;
use url::Url;

/// Sends the request `build` makes to `url`, with a proof when `binding` is set; the
/// response and when the request that got it left. A `use_dpop_nonce` answer is
/// retried exactly once, at once, as is an `invalid_dpop_proof` that came with a `Date`
/// showing our clock is off: the server refused the proof before looking at the grant
/// (§8), so even a one-time code is still unspent, and the retry is neither a
/// transient failure for the backoff nor a rejection of the grant.
pub(crate) async fn authorization_server_exchange<'a>(
    ctx: &ClientContext,
    binding: Option<&Binding>,
    url: &Url,
    build: impl Fn() -> Outgoing<'a>,
) -> Result<(HttpResponse<'a>, SystemTime), AuthError> {
    let mut retry_left = true;
    loop {
        let mut outgoing = build();
        let sent_at = ctx.clock().now();
        let state = ctx.dpop.as_ref();
        let offset_used = state.map(|state| state.offset());
        if let (Some(binding), Some(state)) = (binding, state) {
            let proof = binding.proof("POST", url, state.iat(sent_at), state.nonce(url).as_deref(), None)?;
            outgoing.request = outgoing.request.sensitive_header(PROOF_HEADER, wiped(&proof));
        }
        let response = transport::exchange(ctx.transport.as_ref(), outgoing, sent_at).await?;
        if let Some(state) = state {
            state.observe_date(response.date, ctx.clock().now());
            let clock_moved = offset_used.is_some_and(|used| state.corrected_since(used));
            state.observe(url, response.header(NONCE_HEADER));
            let retry = match error_code(&response) {
                Some(USE_DPOP_NONCE) => state.nonce(url).is_some(),
                // A proof refused while our clock was found to be off: its `iat` was
                // outside the server's window (§11.1); the next one is on its clock.
                Some(INVALID_DPOP_PROOF) => clock_moved,
                _ => false,
            };
            if binding.is_some() && retry_left && retry {
                tracing::debug!(
                    "the authorization server refused the DPoP proof for its nonce or clock; sending once more"
                );
                retry_left = false;
                continue;
            }
        }
        return Ok((response, sent_at));
    }
}

/// The `DPoP` header for a request to a resource server carrying the session's
/// DPoP-bound `token` (RFC 9449 §7.1): `ath` binds the proof to the token, and the
/// nonce is the one that server's origin sent last.
pub(crate) fn resource_proof(
    core: &SessionCore,
    method: &str,
    url: &Url,
    token: &str,
) -> Result<SecretString, AuthError> {
    let (Some(state), Some(binding)) = (core.ctx.dpop.as_ref(), core.dpop_binding()?) else {
        return Err(AuthError::config(
            "the session holds a DPoP-bound token but the client does not send DPoP proofs",
        ));
    };
    let iat = state.iat(core.now());
    binding.proof(method, url, iat, state.nonce(url).as_deref(), Some(token))
}

/// A proof in a buffer that is wiped once the transport drops the request: it can be
/// replayed at the same URL for a while (RFC 9449 §11.1).
fn wiped(proof: &SecretString) -> Bytes {
    let proof = proof.expose_secret().as_bytes();
    let mut buf = SecretBuf::with_capacity(BufKind::Authorization, proof.len());
    buf.extend(proof);
    buf.into_bytes()
}

/// The `error` of a 400 answer (RFC 6749 §5.2), for the DPoP codes (RFC 9449 §8, §12.2).
fn error_code(response: &HttpResponse<'_>) -> Option<&'static str> {
    #[derive(serde::Deserialize)]
    struct ErrorCode<'b> {
        #[serde(borrow)]
        error: Option<std::borrow::Cow<'b, str>>,
    }
    if response.status != 400 {
        return None;
    }
    let code = serde_json::from_slice::<ErrorCode<'_>>(response.body.as_slice())
        .ok()?
        .error?;
    [USE_DPOP_NONCE, INVALID_DPOP_PROOF]
        .into_iter()
        .find(|known| *known == code)
}

/// A token type that contradicts what was sent is an invalid response: a DPoP token
/// for a request without a proof, or a bearer token when DPoP is required (never a
/// silent downgrade). Under [`DpopMode::IfSupported`] a bearer answer means the server
/// ignored the proof (§5), and the token is used as a bearer token.
pub(crate) fn check_token_type(ctx: &ClientContext, proof_sent: bool, token_type: TokenType) -> Result<(), AuthError> {
    let invalid = |reason: &str| AuthError::InvalidResponse {
        status: 200,
        reason: reason.into(),
        source: None,
    };
    match (token_type, proof_sent) {
        (TokenType::Dpop, false) => Err(invalid(
            "the server issued a DPoP-bound token (token_type DPoP) for a request without a DPoP proof",
        )),
        (TokenType::Bearer, true) if ctx.config.dpop == DpopMode::Required => Err(invalid(
            "DPoP is required (AuthConfig::dpop) but the server issued a bearer token; \
             enable DPoP for this client on the authorization server",
        )),
        _ => Ok(()),
    }
}
