//! The protected resource, any method on `/api/{*path}` (RFC 6750 bearer
//! tokens), including per-response access-token rotation when
//! [`DevServerConfig::rotation`](crate::DevServerConfig::rotation) is set.
//!
//! `/api/admin...` needs the `admin` scope. A successful request is answered
//! with `{"subject", "client_id", "method", "path", "scope", "body_len"}`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::faults::{self, Endpoint};
use crate::state::{epoch_millis_string, AppState};

/// Why a bearer token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rejection {
    /// No (usable) `Authorization: Bearer` header.
    Missing,
    Unknown,
    Revoked,
    Expired,
    /// Rotated away longer than the batch window ago.
    Superseded,
    /// A DPoP-bound token sent as a bearer token (RFC 9449 §7.2).
    BoundAsBearer,
    /// A bearer token sent with the DPoP scheme.
    NotBound,
    /// The DPoP proof was refused.
    Proof(crate::dpop::Refusal),
}

/// A token accepted by the resource.
struct Accepted {
    subject: String,
    client_id: String,
    scope: Vec<String>,
    /// `(new token, its expiry)` for the rotation headers.
    rotated: Option<(String, String)>,
}

/// Any method on `/api/{*path}`.
pub(crate) async fn resource(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let method = request.method().as_str().to_owned();
    {
        let mut inner = state.lock();
        inner.stats.resource_requests += 1;
        *inner
            .stats
            .resource_requests_by_method
            .entry(method.clone())
            .or_default() += 1;
    }
    if let Some(response) = faults::intercept(&state, Endpoint::Resource).await {
        if response.status() == StatusCode::UNAUTHORIZED {
            state.lock().stats.resource_unauthorized += 1;
        }
        return response;
    }

    let path = request.uri().path().strip_prefix("/api").unwrap_or_default().to_owned();
    let token = presented_token(&request);
    let needs_admin = path == "/admin" || path.starts_with("/admin/");
    let uri = format!("{}{}", state.base_url, request.uri().path());
    let proof = request.headers().get("dpop").and_then(|v| v.to_str().ok());

    let accepted = match token.ok_or(Rejection::Missing).and_then(|(dpop, t)| {
        let needs = needs_admin.then_some("admin");
        let presented = Presented {
            token: &t,
            dpop_proof: dpop.then_some(proof).flatten(),
            dpop,
            method: &method,
            uri: &uri,
        };
        check(&state, &presented, needs)
    }) {
        Ok(Some(accepted)) => accepted,
        Ok(None) => return insufficient_scope("admin"),
        Err(rejection) => {
            state.lock().stats.resource_unauthorized += 1;
            return unauthorized(&state, rejection);
        }
    };

    let body_len = match axum::body::to_bytes(request.into_body(), usize::MAX).await {
        Ok(bytes) => bytes.len(),
        Err(_) => return (StatusCode::BAD_REQUEST, "unreadable request body").into_response(),
    };
    let mut response = Json(serde_json::json!({
        "subject": accepted.subject,
        "client_id": accepted.client_id,
        "method": method,
        "path": path,
        "scope": accepted.scope.join(" "),
        "body_len": body_len,
    }))
    .into_response();
    if let (Some((token, expiry)), Some(rotation)) = (accepted.rotated, &state.config.rotation) {
        let headers = response.headers_mut();
        for (name, value) in [(&rotation.token_header, token), (&rotation.expiry_header, expiry)] {
            if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(&value)) {
                headers.insert(name, value);
            }
        }
    }
    response
}

/// The token of an `Authorization: Bearer` or `DPoP` header (scheme
/// case-insensitive), and whether it was the DPoP scheme.
fn presented_token(request: &Request<Body>) -> Option<(bool, String)> {
    let value = request.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    let dpop = scheme.eq_ignore_ascii_case("dpop");
    ((dpop || scheme.eq_ignore_ascii_case("bearer")) && !token.is_empty()).then(|| (dpop, token.to_owned()))
}

/// What a request presented.
struct Presented<'a> {
    token: &'a str,
    /// Sent with `Authorization: DPoP`.
    dpop: bool,
    dpop_proof: Option<&'a str>,
    method: &'a str,
    uri: &'a str,
}

/// RFC 9449 §7: a bound token needs the DPoP scheme and a proof by its key with
/// `ath`; an unbound one must not pretend to be bound.
fn check_binding(state: &AppState, presented: &Presented<'_>, bound_to: Option<&str>) -> Result<(), Rejection> {
    use crate::dpop::{self, Refusal};
    match (bound_to, presented.dpop) {
        (None, false) => return Ok(()),
        (None, true) => return Err(Rejection::NotBound),
        (Some(_), false) => {
            *state
                .lock()
                .stats
                .dpop_rejections
                .entry("bound_token_as_bearer".into())
                .or_default() += 1;
            return Err(Rejection::BoundAsBearer);
        }
        (Some(_), true) => {}
    }
    let verified = dpop::verify(
        state,
        presented.dpop_proof,
        presented.method,
        presented.uri,
        Some(presented.token),
    )
    .and_then(|jkt| {
        if Some(jkt.as_str()) == bound_to {
            Ok(())
        } else {
            Err(Refusal::WrongKey)
        }
    });
    match verified {
        Ok(()) => {
            state.lock().stats.dpop_proofs_accepted += 1;
            Ok(())
        }
        Err(refusal) => {
            dpop::count_refusal(state, refusal);
            Err(Rejection::Proof(refusal))
        }
    }
}

/// Validates `token`; `Ok(None)` means valid but without `needed_scope`.
/// Rotates the token when rotation is on.
fn check(
    state: &AppState,
    presented: &Presented<'_>,
    needed_scope: Option<&str>,
) -> Result<Option<Accepted>, Rejection> {
    let token = presented.token;
    let now = state.now();
    let record = state.lock().access.get(token).cloned().ok_or(Rejection::Unknown)?;
    if record.revoked {
        return Err(Rejection::Revoked);
    }
    if record.expires_at <= now {
        return Err(Rejection::Expired);
    }
    check_binding(state, presented, record.jkt.as_deref())?;
    let mut inner = state.lock();
    let rotation = state.config.rotation.as_ref();
    if let Some(superseded_at) = record.superseded_at {
        let window = rotation.map_or(Duration::ZERO, |r| r.batch_window);
        let age = now.duration_since(superseded_at).unwrap_or_default();
        if age > window {
            return Err(Rejection::Superseded);
        }
    }
    if let Some(scope) = needed_scope {
        if !record.scope.iter().any(|s| s == scope) {
            return Ok(None);
        }
    }

    let rotated = match rotation {
        None => None,
        Some(_) => {
            let newest = if record.superseded_at.is_some() {
                // A batch request still in flight: answer with the chain's
                // newest token, issue nothing.
                inner
                    .chains
                    .get(&record.chain)
                    .cloned()
                    .unwrap_or_else(|| token.to_owned())
            } else {
                let successor = inner.mint_successor(state, &record);
                if let Some(presented) = inner.access.get_mut(token) {
                    presented.superseded_at = Some(now);
                }
                successor
            };
            inner
                .access
                .get(&newest)
                .map(|t| (newest.clone(), epoch_millis_string(t.expires_at)))
        }
    };
    Ok(Some(Accepted {
        subject: record.subject,
        client_id: record.client_id,
        scope: record.scope,
        rotated,
    }))
}

fn unauthorized(state: &AppState, rejection: Rejection) -> Response {
    let challenge = match rejection {
        Rejection::Missing => r#"Bearer realm="devserver""#.to_owned(),
        // RFC 9449 §7.1, §9: DPoP challenges.
        Rejection::Proof(crate::dpop::Refusal::Nonce) => {
            let nonce = state.lock().dpop.current_nonce();
            let mut response = dpop_challenge("use_dpop_nonce", "the DPoP proof must carry the current nonce");
            if let Ok(value) = HeaderValue::from_str(&nonce) {
                response.headers_mut().insert("dpop-nonce", value);
            }
            return response;
        }
        Rejection::Proof(refusal) => {
            return dpop_challenge("invalid_dpop_proof", &format!("DPoP proof refused: {}", refusal.name()))
        }
        Rejection::BoundAsBearer => {
            return dpop_challenge(
                "invalid_token",
                "the access token is DPoP-bound: send it with a DPoP proof",
            )
        }
        other => {
            let reason = match other {
                Rejection::Revoked => "revoked",
                Rejection::Expired => "expired",
                Rejection::Superseded => "superseded",
                Rejection::NotBound => "not DPoP-bound",
                _ => "unknown",
            };
            format!(
                r#"Bearer realm="devserver", error="invalid_token", error_description="The access token is {reason}""#
            )
        }
    };
    let mut response = StatusCode::UNAUTHORIZED.into_response();
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    response
}

fn dpop_challenge(error: &str, description: &str) -> Response {
    let challenge = format!(r#"DPoP algs="ES256", error="{error}", error_description="{description}""#);
    let mut response = StatusCode::UNAUTHORIZED.into_response();
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    response
}

fn insufficient_scope(scope: &str) -> Response {
    let challenge = format!(r#"Bearer error="insufficient_scope", scope="{scope}""#);
    let mut response = StatusCode::FORBIDDEN.into_response();
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    response
}
