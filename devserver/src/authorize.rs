//! The authorization endpoint (RFC 6749 §4.1) with PKCE (RFC 7636) and the
//! `iss` response parameter (RFC 9207), plus the one-time codes it issues.
//!
//! `GET /oauth2/authorize` shows a login form. The test login needs no
//! browser: `POST /oauth2/authorize` with the same parameters plus `username`
//! and `password` answers `303 See Other` to the redirect URI with `code`,
//! `state` and `iss` (or `error=access_denied` for a wrong password).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::config::ClientSpec;
use crate::oauth::{self, OAuthError};
use crate::state::{random_bytes, AppState};

/// An issued authorization code, kept until it expires.
#[derive(Clone, Debug)]
pub(crate) struct AuthCode {
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub subject: String,
    pub scope: Vec<String>,
    pub resource: Option<String>,
    pub expires_at: SystemTime,
    /// Set on the first exchange; a second one is a replay (RFC 6749 §4.1.2).
    pub used: bool,
    /// Tokens issued for this code, revoked if the code is replayed.
    pub issued: Vec<String>,
    /// The OpenID Connect `nonce` of the request, echoed in the ID token.
    pub nonce: Option<String>,
    /// When the user logged in (the ID token's `auth_time`).
    pub auth_time: SystemTime,
    /// RFC 9449 §10: the code is bound to this DPoP key thumbprint.
    pub dpop_jkt: Option<String>,
}

/// What a redeemed code grants.
pub(crate) struct Redeemed {
    pub subject: String,
    pub scope: Vec<String>,
    pub resource: Option<String>,
    pub nonce: Option<String>,
    pub auth_time: SystemTime,
}

/// A validated authorization request.
struct AuthzRequest {
    client_id: String,
    redirect_uri: String,
    state: Option<String>,
    scope: Vec<String>,
    code_challenge: String,
    resource: Option<String>,
    /// Every query parameter, echoed into the login form.
    params: HashMap<String, String>,
}

/// Whether the request may be answered by redirecting (RFC 6749 §4.1.2.1: not
/// when the client or redirect URI is wrong, or we would help an open redirector).
enum Rejection {
    /// Shown to the user as a page.
    Page(String),
    /// Sent to the client's redirect URI.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: &'static str,
        description: String,
    },
}

/// `GET /oauth2/authorize`: the login page.
pub(crate) async fn login_page(
    State(state): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    match validate(&state, params) {
        Ok(request) => Html(login_form(&request)).into_response(),
        Err(rejection) => reject(&state, rejection),
    }
}

/// `POST /oauth2/authorize`: the test login. Credentials are checked like the
/// password grant; success redirects with a fresh one-time code.
pub(crate) async fn login(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = match oauth::parse_form(&headers, &body) {
        Ok(form) => form,
        Err(error) => return error.into_response(),
    };
    let username = form.get("username").cloned().unwrap_or_default();
    let password = form.get("password").cloned().unwrap_or_default();
    let request = match validate(&state, form) {
        Ok(request) => request,
        Err(rejection) => return reject(&state, rejection),
    };
    let mut inner = state.lock();
    if inner.users.get(&username) != Some(&password) {
        drop(inner);
        return reject(
            &state,
            Rejection::Redirect {
                redirect_uri: request.redirect_uri,
                state: request.state,
                error: "access_denied",
                description: "the test login failed".into(),
            },
        );
    }
    let code = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    let nonce = request.params.get("nonce").cloned();
    inner.codes.insert(
        code.clone(),
        AuthCode {
            client_id: request.client_id,
            redirect_uri: request.redirect_uri.clone(),
            code_challenge: request.code_challenge,
            subject: username,
            scope: request.scope,
            resource: request.resource,
            expires_at: state.now() + state.config.authorization_code_lifetime,
            used: false,
            issued: Vec::new(),
            nonce,
            auth_time: state.now(),
            dpop_jkt: request.params.get("dpop_jkt").cloned(),
        },
    );
    drop(inner);
    let mut query = vec![("code", code)];
    query.extend(request.state.map(|s| ("state", s)));
    redirect(&state, &request.redirect_uri, query)
}

fn validate(state: &AppState, params: HashMap<String, String>) -> Result<AuthzRequest, Rejection> {
    let get = |name: &str| params.get(name).filter(|v| !v.is_empty()).cloned();
    let client_id = get("client_id").ok_or_else(|| Rejection::Page("missing client_id".into()))?;
    let client = state
        .client(&client_id)
        .ok_or_else(|| Rejection::Page(format!("unknown client {client_id:?}")))?;
    let redirect_uri = get("redirect_uri").ok_or_else(|| Rejection::Page("missing redirect_uri".into()))?;
    if !redirect_uri_registered(client, &redirect_uri) {
        return Err(Rejection::Page(
            "the redirect_uri is not registered for this client".into(),
        ));
    }
    let state_param = get("state");
    let fail = |error: &'static str, description: &str| Rejection::Redirect {
        redirect_uri: redirect_uri.clone(),
        state: state_param.clone(),
        error,
        description: description.to_owned(),
    };
    if get("response_type").as_deref() != Some("code") {
        return Err(fail("unsupported_response_type", "response_type must be code"));
    }
    if !client.grants.iter().any(|g| g == "authorization_code") {
        return Err(fail(
            "unauthorized_client",
            "the client may not use the authorization code grant",
        ));
    }
    // RFC 9700 §2.1.1: PKCE is required, and only S256 protects the code.
    let code_challenge = get("code_challenge").ok_or_else(|| fail("invalid_request", "code_challenge is required"))?;
    if get("code_challenge_method").as_deref() != Some("S256") {
        return Err(fail("invalid_request", "code_challenge_method must be S256"));
    }
    if code_challenge.len() != 43 || URL_SAFE_NO_PAD.decode(&code_challenge).is_err() {
        return Err(fail(
            "invalid_request",
            "code_challenge is not a base64url SHA-256 hash",
        ));
    }
    let scope = match get("scope") {
        None => client.scopes.clone(),
        Some(scope) => {
            let wanted: Vec<String> = scope.split_whitespace().map(str::to_owned).collect();
            if wanted.iter().any(|s| !client.scopes.contains(s)) {
                return Err(fail(
                    "invalid_scope",
                    "a requested scope is not allowed for this client",
                ));
            }
            wanted
        }
    };
    Ok(AuthzRequest {
        client_id,
        redirect_uri,
        state: state_param,
        scope,
        code_challenge,
        resource: get("resource"),
        params,
    })
}

/// Exact string match, except that a registered loopback IP URI matches any
/// port (RFC 8252 §7.3).
fn redirect_uri_registered(client: &ClientSpec, uri: &str) -> bool {
    client.redirect_uris.iter().any(|registered| {
        registered == uri
            || (registered.starts_with("http://127.0.0.1/") && without_port(uri).as_deref() == Some(registered))
    })
}

fn without_port(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix("http://127.0.0.1:")?;
    let slash = rest.find('/')?;
    rest[..slash].parse::<u16>().ok()?;
    Some(format!("http://127.0.0.1{}", &rest[slash..]))
}

fn reject(state: &AppState, rejection: Rejection) -> Response {
    match rejection {
        Rejection::Page(message) => (
            StatusCode::BAD_REQUEST,
            Html(format!(
                "<!doctype html><title>Error</title><p>{}</p>",
                escape(&message)
            )),
        )
            .into_response(),
        Rejection::Redirect {
            redirect_uri,
            state: client_state,
            error,
            description,
        } => {
            let mut query = vec![("error", error.to_owned()), ("error_description", description)];
            query.extend(client_state.map(|s| ("state", s)));
            redirect(state, &redirect_uri, query)
        }
    }
}

/// A 303 to `redirect_uri` with `query` (and `iss`) appended.
fn redirect(state: &AppState, redirect_uri: &str, mut query: Vec<(&str, String)>) -> Response {
    if state.config.authorization_response_iss {
        query.push(("iss", state.issuer()));
    }
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (name, value) in &query {
        serializer.append_pair(name, value);
    }
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    let location = format!("{redirect_uri}{separator}{}", serializer.finish());
    let mut response = StatusCode::SEE_OTHER.into_response();
    match HeaderValue::from_str(&location) {
        Ok(value) => {
            response.headers_mut().insert(LOCATION, value);
        }
        Err(_) => *response.status_mut() = StatusCode::BAD_REQUEST,
    }
    oauth::no_store(response.headers_mut());
    response
}

fn login_form(request: &AuthzRequest) -> String {
    let hidden: String = request
        .params
        .iter()
        .filter(|(name, _)| *name != "username" && *name != "password")
        .map(|(name, value)| {
            format!(
                r#"<input type="hidden" name="{}" value="{}">"#,
                escape(name),
                escape(value)
            )
        })
        .collect();
    format!(
        r#"<!doctype html><meta charset="utf-8"><title>Sign in</title>
<h1>Sign in to {}</h1>
<form method="post" action="/oauth2/authorize">{hidden}
<label>User <input name="username" autocomplete="username"></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button>Sign in</button></form>"#,
        escape(&request.client_id)
    )
}

pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The token endpoint's `authorization_code` grant (RFC 6749 §4.1.3, RFC 7636
/// §4.6). Returns the subject, scope and resource to issue tokens for.
pub(crate) fn redeem(
    state: &AppState,
    client: &ClientSpec,
    form: &oauth::Form,
    proof_jkt: Option<&str>,
) -> Result<Redeemed, OAuthError> {
    let param = |name: &str| {
        form.get(name)
            .map(String::as_str)
            .ok_or_else(|| OAuthError::invalid_request(format!("missing parameter {name:?}")))
    };
    let code = param("code")?;
    let redirect_uri = param("redirect_uri")?;
    let verifier = param("code_verifier")?;
    let now = state.now();
    let mut inner = state.lock();
    let record = inner
        .codes
        .get_mut(code)
        .filter(|c| c.client_id == client.client_id)
        .ok_or_else(|| OAuthError::invalid_grant("unknown authorization code"))?;
    if record.used {
        // RFC 6749 §4.1.2: a replayed code revokes what it issued.
        let issued = std::mem::take(&mut record.issued);
        for token in issued {
            inner.revoke(&token, None);
        }
        return Err(OAuthError::invalid_grant("the authorization code was already used"));
    }
    record.used = true;
    if record.expires_at <= now {
        return Err(OAuthError::invalid_grant("the authorization code expired"));
    }
    if record.redirect_uri != redirect_uri {
        return Err(OAuthError::invalid_grant(
            "redirect_uri differs from the authorization request",
        ));
    }
    if !pkce_matches(verifier, &record.code_challenge) {
        return Err(OAuthError::invalid_grant(
            "the code_verifier does not match the code_challenge",
        ));
    }
    if record.dpop_jkt.is_some() && record.dpop_jkt.as_deref() != proof_jkt {
        return Err(OAuthError::invalid_grant(
            "the code is bound (dpop_jkt) to another DPoP key than the proof's",
        ));
    }
    Ok(Redeemed {
        subject: record.subject.clone(),
        scope: record.scope.clone(),
        resource: record.resource.clone(),
        nonce: record.nonce.clone(),
        auth_time: record.auth_time,
    })
}

/// RFC 7636 §4.1 (43–128 unreserved characters) and §4.6 (S256).
pub(crate) fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    well_formed && URL_SAFE_NO_PAD.encode(digest.as_ref()) == challenge
}

/// Records `tokens` as issued for `code`, for revocation on replay.
pub(crate) fn link_tokens(state: &AppState, code: &str, tokens: &[String]) {
    if let Some(record) = state.lock().codes.get_mut(code) {
        record.issued.extend_from_slice(tokens);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b_vector() {
        assert!(pkce_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!pkce_matches("short", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
    }

    #[test]
    fn loopback_redirects_match_any_port() {
        let client = ClientSpec::public("c", &[], &[]).with_redirect_uris(&["http://127.0.0.1/callback"]);
        assert!(redirect_uri_registered(&client, "http://127.0.0.1:51234/callback"));
        assert!(redirect_uri_registered(&client, "http://127.0.0.1/callback"));
        assert!(!redirect_uri_registered(&client, "http://127.0.0.1:51234/other"));
        assert!(!redirect_uri_registered(
            &client,
            "http://127.0.0.1.evil.com:1/callback"
        ));
    }
}
