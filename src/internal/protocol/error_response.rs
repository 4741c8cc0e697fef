//! Maps non-success token endpoint responses to [`AuthError`]: RFC 6749 §5.2 error
//! codes to their variants, 5xx/429 to "try later", anything else to `InvalidResponse`.

use crate::error::{AuthError, ServerError};
use crate::internal::secrets;
use crate::internal::transport::HttpResponse;
use serde::Deserialize;

/// Longest server-provided text kept in an error.
const MAX_SERVER_TEXT: usize = 300;

#[derive(Deserialize)]
struct RawError {
    error: String,
    error_description: Option<String>,
    error_uri: Option<String>,
}

/// The error for a response whose status is not 2xx.
pub(crate) fn error_for(response: &HttpResponse<'_>) -> AuthError {
    let status = response.status;
    if status == 429 || status >= 500 {
        return AuthError::TemporarilyUnavailable {
            reason: format!("the server answered HTTP {status}"),
            status: Some(status),
            retry_after: response.retry_after,
            source: None,
        };
    }
    // Some servers echo the rejected request in their text: scrub what we sent.
    let clean = |text: &str| sanitize(text, &response.sent_secrets);
    match serde_json::from_slice::<RawError>(response.body.as_slice()) {
        Ok(raw) => from_code(ServerError {
            code: clean(&raw.error),
            description: raw.error_description.as_deref().map(clean),
            uri: raw.error_uri.as_deref().map(clean),
            status,
        }),
        // Some servers answer a bad client secret with a bare 401 (RFC 6749 §5.2 allows 401 here).
        Err(_) if status == 401 => AuthError::InvalidClient(ServerError {
            code: "invalid_client".into(),
            description: Some("HTTP 401 without an OAuth error body".into()),
            uri: None,
            status,
        }),
        Err(_) => AuthError::InvalidResponse {
            status,
            reason: describe_body(response),
            source: None,
        },
    }
}

fn from_code(error: ServerError) -> AuthError {
    match error.code.as_str() {
        "invalid_client" => AuthError::InvalidClient(error),
        // Keycloak answers a wrong client secret with 401 `unauthorized_client`
        // ("Invalid client or Invalid client credentials"). A 401 from the token
        // endpoint means client authentication failed (RFC 6749 §5.2), which is
        // `invalid_client` whatever the code says; the server's code is kept.
        "unauthorized_client" if error.status == 401 => AuthError::InvalidClient(error),
        "invalid_grant" => AuthError::InvalidGrant(error),
        "invalid_scope" => AuthError::InvalidScope(error),
        "unauthorized_client" => AuthError::UnauthorizedClient(error),
        "unsupported_grant_type" => AuthError::UnsupportedGrantType(error),
        "invalid_request" => AuthError::InvalidRequest(error),
        // Authorization-endpoint codes (§4.1.2.1) that some servers also send here.
        "temporarily_unavailable" | "server_error" => AuthError::TemporarilyUnavailable {
            reason: error.to_string(),
            status: Some(error.status),
            retry_after: None,
            source: None,
        },
        _ => AuthError::OAuth(error),
    }
}

/// A short description of an unexpected body, without echoing it (it might hold a token).
pub(crate) fn describe_body(response: &HttpResponse<'_>) -> String {
    let kind = match response.content_type.as_deref() {
        Some(ct) if ct.contains("html") => "an HTML page",
        Some(ct) if ct.contains("json") => "JSON that is not an OAuth response",
        Some(_) | None if response.body.is_empty() => "an empty body",
        Some(_) | None => "a body that is not JSON",
    };
    format!(
        "expected a JSON token response, got {kind} ({} bytes)",
        response.body.len()
    )
}

/// Server text without control characters, without the secrets we sent, cut to a
/// sane length. Control characters go first: a secret split by one must not be
/// re-assembled after the scrub.
fn sanitize(text: &str, sent_secrets: &[&str]) -> String {
    let visible: String = text.chars().filter(|c| !c.is_control()).collect();
    secrets::scrub(&visible, sent_secrets)
        .chars()
        .take(MAX_SERVER_TEXT)
        .collect()
}

#[cfg(test)]
mod scrubbing {
    use super::*;
    use crate::internal::secrets::{BufKind, SecretBuf};

    #[test]
    fn server_text_echoing_a_sent_secret_is_scrubbed() {
        let body = br#"{"error":"invalid_grant","error_description":"bad password 'hunter2' for alice","error_uri":"https://as/e?p=hun\u0007ter2"}"#;
        let mut buf = SecretBuf::with_capacity(BufKind::ResponseBody, body.len());
        buf.extend(body);
        let response = HttpResponse {
            headers: Vec::new(),
            status: 400,
            date: None,
            retry_after: None,
            content_type: None,
            freshness: None,
            body: buf,
            sent_secrets: vec!["hunter2", "client-secret"],
        };
        let error = error_for(&response);
        let server = error.server_error().unwrap();
        assert_eq!(
            server.description.as_deref(),
            Some("bad password '[redacted]' for alice")
        );
        assert_eq!(server.uri.as_deref(), Some("https://as/e?p=[redacted]"));
        assert!(!format!("{error} {error:?}").contains("hunter2"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str) -> HttpResponse<'static> {
        let mut buf = crate::internal::secrets::SecretBuf::with_capacity(
            crate::internal::secrets::BufKind::ResponseBody,
            body.len(),
        );
        buf.extend(body.as_bytes());
        HttpResponse {
            headers: Vec::new(),
            status,
            date: None,
            retry_after: None,
            content_type: Some("application/json".into()),
            freshness: None,
            body: buf,
            sent_secrets: Vec::new(),
        }
    }

    #[test]
    fn keycloaks_401_unauthorized_client_is_a_client_authentication_failure() {
        let keycloak =
            r#"{"error":"unauthorized_client","error_description":"Invalid client or Invalid client credentials"}"#;
        match error_for(&response(401, keycloak)) {
            AuthError::InvalidClient(e) => assert_eq!((e.code.as_str(), e.status), ("unauthorized_client", 401)),
            other => panic!("expected InvalidClient, got {other:?}"),
        }
        // With 400 it keeps its RFC 6749 §5.2 meaning: the grant type is not allowed.
        let not_allowed = r#"{"error":"unauthorized_client"}"#;
        assert!(matches!(
            error_for(&response(400, not_allowed)),
            AuthError::UnauthorizedClient(_)
        ));
    }

    #[test]
    fn a_401_invalid_grant_stays_invalid_grant() {
        // Keycloak sends a wrong password as 401 `invalid_grant`: the user's fault, not the client's.
        let wrong_password = r#"{"error":"invalid_grant","error_description":"Invalid user credentials"}"#;
        assert!(matches!(
            error_for(&response(401, wrong_password)),
            AuthError::InvalidGrant(_)
        ));
    }
}
