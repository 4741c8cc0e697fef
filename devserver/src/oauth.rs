//! OAuth plumbing shared by the token and revocation endpoints: form parsing,
//! client authentication (RFC 6749 §2.3.1) and error responses (§5.2).

use std::collections::HashMap;

use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, PRAGMA, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::config::ClientSpec;
use crate::state::AppState;

/// An OAuth error response: `{"error": ..., "error_description": ...}`.
#[derive(Debug)]
pub(crate) struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    /// A `DPoP-Nonce` to send with it (RFC 9449 §8).
    dpop_nonce: Option<String>,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            status,
            error,
            description: description.into(),
            dpop_nonce: None,
        }
    }

    /// RFC 9449 §8: the proof must carry `nonce`; it goes out in `DPoP-Nonce`.
    pub fn use_dpop_nonce(nonce: String) -> Self {
        let mut error = Self::code("use_dpop_nonce", "the DPoP proof must carry the server's nonce");
        error.dpop_nonce = Some(nonce);
        error
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    pub fn invalid_client(description: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
    }

    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }

    pub fn unauthorized_client(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unauthorized_client", description)
    }

    pub fn unsupported_grant_type(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unsupported_grant_type", description)
    }

    pub fn invalid_scope(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_scope", description)
    }

    /// Another HTTP 400 error code, e.g. RFC 8628's `authorization_pending`.
    pub fn code(error: &'static str, description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, description)
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": self.error,
            "error_description": self.description,
        });
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        no_store(headers);
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(r#"Basic realm="devserver""#));
        }
        if let Some(value) = self.dpop_nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
            headers.insert("dpop-nonce", value);
        }
        response
    }
}

/// `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1).
pub(crate) fn no_store(headers: &mut HeaderMap) {
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
}

/// Request parameters; parameters sent without a value count as omitted
/// (RFC 6749 §3.1).
pub(crate) type Form = HashMap<String, String>;

/// Parses an `application/x-www-form-urlencoded` body. A repeated parameter or
/// another content type is an `invalid_request`.
pub(crate) fn parse_form(headers: &HeaderMap, body: &[u8]) -> Result<Form, OAuthError> {
    if let Some(ct) = headers.get(CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or_default().to_ascii_lowercase();
        if !ct.starts_with("application/x-www-form-urlencoded") {
            return Err(OAuthError::invalid_request(
                "the request body must be application/x-www-form-urlencoded",
            ));
        }
    }
    let mut form = Form::new();
    for (name, value) in form_urlencoded::parse(body) {
        if value.is_empty() {
            continue;
        }
        if form.insert(name.to_string(), value.into_owned()).is_some() {
            return Err(OAuthError::invalid_request(format!("parameter {name:?} is repeated")));
        }
    }
    Ok(form)
}

/// Credentials from an `Authorization: Basic` header, if it has one.
/// The id and secret are form-urlencoded before base64 (RFC 6749 §2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Option<Result<(String, String), OAuthError>> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let malformed = || OAuthError::invalid_client("malformed Basic credentials");
    let decoded = match STANDARD.decode(encoded.trim()) {
        Ok(bytes) => bytes,
        Err(_) => return Some(Err(malformed())),
    };
    let Some(colon) = decoded.iter().position(|&b| b == b':') else {
        return Some(Err(malformed()));
    };
    let id = form_decode(&decoded[..colon]);
    let secret = form_decode(&decoded[colon + 1..]);
    Some(Ok((id, secret)))
}

/// Decodes one form-urlencoded component (`+` is a space).
fn form_decode(bytes: &[u8]) -> String {
    // Parse "k=<bytes>" so the library does the percent- and plus-decoding;
    // an `=` or `&` inside would already have been percent-encoded.
    let mut input = b"k=".to_vec();
    input.extend_from_slice(bytes);
    form_urlencoded::parse(&input)
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The client id a request claims (Basic header or `client_id` parameter),
/// whether or not it authenticates. Used for the revocation records.
pub(crate) fn claimed_client_id(headers: &HeaderMap, form: &Form) -> Option<String> {
    match basic_credentials(headers) {
        Some(Ok((id, _))) => Some(id),
        _ => form.get("client_id").cloned(),
    }
}

/// Authenticates the client of a token or revocation request.
pub(crate) fn authenticate_client<'a>(
    state: &'a AppState,
    headers: &HeaderMap,
    form: &Form,
) -> Result<&'a ClientSpec, OAuthError> {
    let form_id = form.get("client_id");
    let form_secret = form.get("client_secret");
    let (client_id, secret) = match basic_credentials(headers) {
        Some(Err(e)) => return Err(e),
        Some(Ok((id, secret))) => {
            if form_secret.is_some() {
                return Err(OAuthError::invalid_request(
                    "use one client authentication method, not both Basic and client_secret",
                ));
            }
            if form_id.is_some_and(|f| *f != id) {
                return Err(OAuthError::invalid_request(
                    "client_id parameter differs from the Basic credentials",
                ));
            }
            (id, Some(secret).filter(|s| !s.is_empty()))
        }
        None => match form_id {
            Some(id) => (id.clone(), form_secret.cloned()),
            None => return Err(OAuthError::invalid_client("client authentication missing")),
        },
    };
    let client = state
        .client(&client_id)
        .ok_or_else(|| OAuthError::invalid_client(format!("unknown client {client_id:?}")))?;
    match (&client.client_secret, &secret) {
        (Some(expected), Some(given)) if expected == given => Ok(client),
        (Some(_), Some(_)) => Err(OAuthError::invalid_client("wrong client secret")),
        (Some(_), None) => Err(OAuthError::invalid_client("confidential client sent no secret")),
        (None, None) => Ok(client),
        (None, Some(_)) => Err(OAuthError::invalid_client("public client must not send a secret")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        let mut headers = HeaderMap::new();
        // id "my client", secret "a:b%c+" form-encoded: "my+client" / "a%3Ab%25c%2B"
        let encoded = STANDARD.encode("my+client:a%3Ab%25c%2B");
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {encoded}")).expect("header"),
        );
        let (id, secret) = basic_credentials(&headers).expect("basic").expect("valid");
        assert_eq!(id, "my client");
        assert_eq!(secret, "a:b%c+");
    }

    #[test]
    fn garbage_basic_credentials_are_rejected() {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert!(matches!(basic_credentials(&headers), Some(Err(_))));
    }

    #[test]
    fn repeated_parameters_are_rejected() {
        let headers = HeaderMap::new();
        assert!(parse_form(&headers, b"a=1&a=2").is_err());
        let form = parse_form(&headers, b"a=1&b=&c=x+y").expect("form");
        assert_eq!(form.get("c").map(String::as_str), Some("x y"));
        assert!(!form.contains_key("b"));
    }
}
