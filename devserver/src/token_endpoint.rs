//! The token endpoint, `POST /oauth2/token` (RFC 6749): the
//! `client_credentials` (§4.4), `password` (§4.3), `refresh_token` (§6),
//! `authorization_code` with PKCE (§4.1.3, RFC 7636) and device-code (RFC 8628)
//! grants, with optional `audience` / `resource` (RFC 8707) parameters, and an
//! OpenID Connect ID token whenever `openid` is granted.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::config::{ClientSpec, DEVICE_CODE_GRANT};
use crate::faults::{self, Endpoint};
use crate::oauth::{self, authenticate_client, Form, OAuthError};
use crate::state::{AppState, Grant};

const KNOWN_GRANTS: [&str; 5] = [
    "client_credentials",
    "password",
    "refresh_token",
    "authorization_code",
    DEVICE_CODE_GRANT,
];

/// `POST /oauth2/token`.
pub(crate) async fn token(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = oauth::parse_form(&headers, &body);
    count_request(&state, form.as_ref().ok());
    if let Some(response) = faults::intercept(&state, Endpoint::Token).await {
        return response;
    }
    match form.and_then(|form| handle(&state, &headers, &form)) {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

fn count_request(state: &AppState, form: Option<&Form>) {
    let grant = form
        .and_then(|f| f.get("grant_type"))
        .map(String::as_str)
        .filter(|g| KNOWN_GRANTS.contains(g))
        .unwrap_or("unknown");
    let mut inner = state.lock();
    inner.stats.token_requests += 1;
    *inner.stats.token_requests_by_grant.entry(grant.to_owned()).or_default() += 1;
}

/// What a validated grant asks for.
struct Request<'a> {
    client: &'a ClientSpec,
    subject: String,
    scope: Vec<String>,
    audience: Option<String>,
    resource: Option<String>,
    /// Issue a new refresh token with the access token.
    new_refresh_token: bool,
    /// The refresh token presented (refresh grant only).
    presented_refresh: Option<String>,
    /// The thumbprint of the DPoP key the request proved, to bind the tokens to.
    jkt: Option<String>,
    /// For the ID token: the authorization request's `nonce` and the login time.
    nonce: Option<String>,
    auth_time: Option<SystemTime>,
}

fn handle(state: &AppState, headers: &HeaderMap, form: &Form) -> Result<Response, OAuthError> {
    let client = authenticate_client(state, headers, form)?;
    let jkt = proof_key(state, headers, client)?;
    let grant_type = param(form, "grant_type")?;
    if !KNOWN_GRANTS.contains(&grant_type) {
        return Err(OAuthError::unsupported_grant_type(format!(
            "grant type {grant_type:?} is not supported"
        )));
    }
    if !client.grants.iter().any(|g| g == grant_type) {
        return Err(OAuthError::unauthorized_client(format!(
            "client {:?} may not use the {grant_type} grant",
            client.client_id
        )));
    }
    let requested_scope = form.get("scope").map(|s| parse_scope(s));
    let audience = form.get("audience").cloned();
    let resource = form.get("resource").cloned();
    let config = &state.config;

    let request = match grant_type {
        "client_credentials" => Request {
            client,
            subject: client.client_id.clone(),
            scope: allowed_scope(client, requested_scope)?,
            audience,
            resource,
            new_refresh_token: config.refresh_tokens_for_client_credentials,
            presented_refresh: None,
            jkt: jkt.clone(),
            nonce: None,
            auth_time: None,
        },
        "password" => {
            let username = param(form, "username")?;
            let password = param(form, "password")?;
            let valid = state.lock().users.get(username).map(String::as_str) == Some(password);
            if !valid {
                *state
                    .lock()
                    .stats
                    .rejected_passwords_by_user
                    .entry(username.to_owned())
                    .or_default() += 1;
                return Err(OAuthError::invalid_grant("invalid resource owner credentials"));
            }
            Request {
                client,
                subject: username.to_owned(),
                scope: allowed_scope(client, requested_scope)?,
                audience,
                resource,
                new_refresh_token: config.issue_refresh_tokens,
                presented_refresh: None,
                jkt: jkt.clone(),
                nonce: None,
                auth_time: Some(state.now()),
            }
        }
        "authorization_code" => {
            let redeemed = crate::authorize::redeem(state, client, form, jkt.as_deref())?;
            let request = Request {
                client,
                subject: redeemed.subject,
                scope: redeemed.scope,
                audience,
                resource: resource.or(redeemed.resource),
                new_refresh_token: config.issue_refresh_tokens,
                presented_refresh: None,
                jkt: jkt.clone(),
                nonce: redeemed.nonce,
                auth_time: Some(redeemed.auth_time),
            };
            let (response, tokens) = issue(state, &request);
            crate::authorize::link_tokens(state, param(form, "code")?, &tokens);
            return Ok(response);
        }
        DEVICE_CODE_GRANT => {
            let (subject, scope) = crate::device::redeem(state, &client.client_id, form)?;
            Request {
                client,
                subject,
                scope,
                audience,
                resource,
                new_refresh_token: config.issue_refresh_tokens,
                presented_refresh: None,
                jkt: jkt.clone(),
                nonce: None,
                auth_time: None,
            }
        }
        _ => {
            let presented = param(form, "refresh_token")?;
            let inner = state.lock();
            let record = inner
                .refresh
                .get(presented)
                .filter(|r| r.client_id == client.client_id)
                .ok_or_else(|| OAuthError::invalid_grant("unknown refresh token"))?;
            if record.revoked {
                return Err(OAuthError::invalid_grant("the refresh token is revoked"));
            }
            if record.expires_at.is_some_and(|at| at <= state.now()) {
                return Err(OAuthError::invalid_grant("the refresh token has expired"));
            }
            // RFC 9449 §5: a bound refresh token is used only with a proof by its key.
            if record.jkt.is_some() && record.jkt != jkt {
                drop(inner);
                crate::dpop::count_refusal(state, crate::dpop::Refusal::WrongKey);
                return Err(OAuthError::invalid_grant(
                    "the refresh token is bound to another DPoP key (or sent without a proof)",
                ));
            }
            let scope = match requested_scope {
                None => record.scope.clone(),
                Some(wanted) => {
                    if let Some(extra) = wanted.iter().find(|s| !record.scope.contains(s)) {
                        return Err(OAuthError::invalid_scope(format!(
                            "scope {extra:?} was not granted to the refresh token"
                        )));
                    }
                    wanted
                }
            };
            Request {
                client,
                subject: record.subject.clone(),
                scope,
                audience: audience.or_else(|| record.audience.clone()),
                resource: resource.or_else(|| record.resource.clone()),
                new_refresh_token: config.rotate_refresh_tokens,
                presented_refresh: Some(presented.to_owned()),
                jkt,
                nonce: None,
                auth_time: None,
            }
        }
    };
    Ok(issue(state, &request).0)
}

/// Verifies the request's `DPoP` header, if any (required for the clients listed in
/// `DpopSpec::required_for_clients`): the thumbprint of the key it proved.
fn proof_key(state: &AppState, headers: &HeaderMap, client: &ClientSpec) -> Result<Option<String>, OAuthError> {
    use crate::dpop::{self, Refusal};
    let proof = headers.get("dpop").and_then(|v| v.to_str().ok());
    let required = state.config.dpop.required_for_clients.contains(&client.client_id);
    if proof.is_none() && !required {
        return Ok(None);
    }
    let uri = format!("{}/oauth2/token", state.base_url);
    match dpop::verify(state, proof, "POST", &uri, None) {
        Ok(jkt) => {
            state.lock().stats.dpop_proofs_accepted += 1;
            Ok(Some(jkt))
        }
        Err(refusal) => {
            dpop::count_refusal(state, refusal);
            Err(match refusal {
                Refusal::Nonce => OAuthError::use_dpop_nonce(state.lock().dpop.current_nonce()),
                other => OAuthError::code("invalid_dpop_proof", format!("DPoP proof refused: {}", other.name())),
            })
        }
    }
}

/// A required parameter.
fn param<'f>(form: &'f Form, name: &str) -> Result<&'f str, OAuthError> {
    form.get(name)
        .map(String::as_str)
        .ok_or_else(|| OAuthError::invalid_request(format!("missing parameter {name:?}")))
}

/// Space-separated scope tokens, duplicates removed, order kept.
fn parse_scope(scope: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in scope.split_whitespace() {
        if !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    out
}

/// The requested scope if the client may have all of it; all of the client's
/// scopes if none was requested.
fn allowed_scope(client: &ClientSpec, requested: Option<Vec<String>>) -> Result<Vec<String>, OAuthError> {
    match requested {
        None => Ok(client.scopes.clone()),
        Some(wanted) => match wanted.iter().find(|s| !client.scopes.contains(s)) {
            Some(extra) => Err(OAuthError::invalid_scope(format!(
                "scope {extra:?} is not allowed for client {:?}",
                client.client_id
            ))),
            None => Ok(wanted),
        },
    }
}

/// Mints (or, with `reuse_active_token`, finds) the tokens and builds the
/// success response; also returns the tokens it handed out.
fn issue(state: &AppState, request: &Request<'_>) -> (Response, Vec<String>) {
    let config = &state.config;
    let now = state.now();
    let mut inner = state.lock();
    let client_id = request.client.client_id.as_str();

    if config.reuse_active_token {
        if let Some((token, record)) = inner.find_active(client_id, &request.subject, &request.scope, now) {
            let refresh = record
                .refresh_token
                .filter(|rt| inner.refresh.get(rt).is_some_and(|r| !r.revoked));
            // Like WSO2: `expires_in` is the time the reused token has left.
            let remaining = record.expires_at.duration_since(now).unwrap_or_default();
            let bound = record.jkt.is_some();
            let response = success(
                state,
                &token,
                remaining.as_secs(),
                refresh.as_deref(),
                &record.scope,
                bound,
                None,
            );
            return (response, [Some(token), refresh].into_iter().flatten().collect());
        }
    }

    let grant = Grant {
        client_id,
        subject: &request.subject,
        scope: &request.scope,
        audience: request.audience.as_deref(),
        resource: request.resource.as_deref(),
        jkt: request.jkt.as_deref(),
    };
    // Refresh tokens keep the scope originally granted (RFC 6749 §6).
    let refresh_scope = match &request.presented_refresh {
        Some(rt) => inner.refresh.get(rt).map(|r| r.scope.clone()),
        None => None,
    };
    let new_refresh = request.new_refresh_token.then(|| {
        let refresh_grant = Grant {
            scope: refresh_scope.as_deref().unwrap_or(&request.scope),
            ..grant
        };
        let expires_at = config.refresh_token_lifetime.map(|lifetime| state.now() + lifetime);
        inner.mint_refresh(&refresh_grant, expires_at)
    });
    if let (Some(presented), Some(_)) = (&request.presented_refresh, &new_refresh) {
        // Rotation: the presented refresh token is spent. Access tokens it
        // issued stay valid until they expire.
        if let Some(old) = inner.refresh.get_mut(presented) {
            old.revoked = true;
        }
    }
    let link = new_refresh.as_deref().or(request.presented_refresh.as_deref());
    let access = inner.mint_access(state, &grant, link);
    drop(inner);
    let lifetime = config.access_token_lifetime.as_secs();
    // OpenID Connect Core §3.1.3.3: an ID token whenever `openid` was granted.
    let id_token = request.scope.iter().any(|s| s == "openid").then(|| {
        crate::id_token::mint(
            state,
            &crate::id_token::Subject {
                client_id,
                subject: &request.subject,
                nonce: request.nonce.as_deref(),
                auth_time: request.auth_time,
                access_token: &access,
            },
        )
    });
    let response = success(
        state,
        &access,
        lifetime,
        new_refresh.as_deref(),
        &request.scope,
        grant.jkt.is_some(),
        id_token,
    );
    (response, [Some(access), new_refresh].into_iter().flatten().collect())
}

fn success(
    state: &AppState,
    access_token: &str,
    expires_in: u64,
    refresh_token: Option<&str>,
    scope: &[String],
    dpop_bound: bool,
    id_token: Option<String>,
) -> Response {
    let mut body = serde_json::json!({
        "access_token": access_token,
        // RFC 9449 §5: a bound token is of type DPoP.
        "token_type": if dpop_bound { "DPoP" } else { "Bearer" },
        "scope": scope.join(" "),
    });
    if !state.config.omit_expires_in {
        body["expires_in"] = expires_in.into();
    }
    if let Some(rt) = refresh_token {
        body["refresh_token"] = rt.into();
        if let Some(lifetime) = state.config.refresh_token_lifetime {
            body["refresh_expires_in"] = lifetime.as_secs().into();
        }
    }
    if let Some(id_token) = id_token {
        body["id_token"] = id_token.into();
    }
    let mut response = Json(body).into_response();
    oauth::no_store(response.headers_mut());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_parsing_dedupes_and_keeps_order() {
        assert_eq!(parse_scope(" write  read write "), vec!["write", "read"]);
        assert!(parse_scope("").is_empty());
    }
}
