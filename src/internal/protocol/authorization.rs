//! The authorization request URL (RFC 6749 §4.1.1, RFC 7636 §4.3) and the checks
//! on the redirect that answers it: `iss` (RFC 9207 §2.4), `state` (RFC 6749
//! §10.12), then the code or the error (§4.1.2, §4.1.2.1).

use crate::error::{AuthError, ServerError};
use secrecy::SecretString;
use url::Url;

/// What goes into the authorization URL.
pub(crate) struct UrlParams<'a> {
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub scope: Option<String>,
    pub state: &'a str,
    pub challenge: &'a str,
    pub nonce: Option<&'a str>,
    pub audience: Option<&'a str>,
    pub resource: Option<&'a str>,
    pub extra: &'a [(String, String)],
    /// RFC 9449 §10: the thumbprint of the DPoP key the code is to be bound to.
    pub dpop_jkt: Option<&'a str>,
}

/// Parameters the SDK sets itself; an app's extra parameter may not override them.
pub(crate) const RESERVED: [&str; 9] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "nonce",
    "dpop_jkt",
];

/// The URL to open in the browser.
pub(crate) fn authorization_url(endpoint: &Url, p: &UrlParams<'_>) -> Url {
    let mut url = endpoint.clone();
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", p.client_id)
            .append_pair("redirect_uri", p.redirect_uri)
            .append_pair("state", p.state)
            .append_pair("code_challenge", p.challenge)
            .append_pair("code_challenge_method", "S256");
        if let Some(scope) = &p.scope {
            query.append_pair("scope", scope);
        }
        if let Some(nonce) = p.nonce {
            query.append_pair("nonce", nonce);
        }
        if let Some(jkt) = p.dpop_jkt {
            query.append_pair("dpop_jkt", jkt);
        }
        if let Some(audience) = p.audience {
            query.append_pair("audience", audience);
        }
        if let Some(resource) = p.resource {
            query.append_pair("resource", resource);
        }
        for (name, value) in p.extra {
            query.append_pair(name, value);
        }
    }
    url
}

/// What the redirect must match.
pub(crate) struct Expected<'a> {
    pub state: &'a str,
    pub issuer: Option<&'a str>,
    pub require_iss: bool,
}

/// The authorization code from `redirect`, after the issuer and state checks.
pub(crate) fn code_from_redirect(redirect: &str, expected: &Expected<'_>) -> Result<SecretString, AuthError> {
    let url = Url::parse(redirect.trim()).map_err(|_| AuthError::InvalidRedirect {
        reason: "the redirect is not a valid URL".into(),
    })?;
    let mut code = None;
    let (mut state, mut iss, mut error, mut description, mut uri) = (None, None, None, None, None);
    for (name, value) in url.query_pairs() {
        let slot = match name.as_ref() {
            "code" => {
                code = Some(SecretString::from(value.into_owned()));
                continue;
            }
            "state" => &mut state,
            "iss" => &mut iss,
            "error" => &mut error,
            "error_description" => &mut description,
            "error_uri" => &mut uri,
            _ => continue,
        };
        *slot = Some(value.into_owned());
    }
    // RFC 9207 §2.4: the issuer is checked first, before anything else is trusted
    // (a mix-up attack would otherwise send our code to the wrong server).
    match (expected.issuer, iss.as_deref()) {
        (Some(want), Some(got)) if want != got => {
            return Err(AuthError::IssuerMismatch {
                expected: want.to_owned(),
                actual: Some(sanitize(got)),
            })
        }
        (Some(want), None) if expected.require_iss => {
            return Err(AuthError::IssuerMismatch {
                expected: want.to_owned(),
                actual: None,
            })
        }
        _ => {}
    }
    if state.as_deref() != Some(expected.state) {
        return Err(AuthError::StateMismatch);
    }
    if let Some(error) = error {
        return Err(redirect_error(ServerError {
            code: sanitize(&error),
            description: description.as_deref().map(sanitize),
            uri: uri.as_deref().map(sanitize),
            // Delivered by a redirect, not an HTTP response of ours.
            status: 302,
        }));
    }
    code.filter(|c| !secrecy::ExposeSecret::expose_secret(c).is_empty())
        .ok_or_else(|| AuthError::InvalidRedirect {
            reason: "the redirect carries neither a code nor an error".into(),
        })
}

/// RFC 6749 §4.1.2.1 error codes to the variants that say what to do.
fn redirect_error(error: ServerError) -> AuthError {
    match error.code.as_str() {
        "access_denied" => AuthError::AccessDenied(error),
        "invalid_scope" => AuthError::InvalidScope(error),
        "unauthorized_client" => AuthError::UnauthorizedClient(error),
        "invalid_request" | "unsupported_response_type" => AuthError::InvalidRequest(error),
        "temporarily_unavailable" | "server_error" => AuthError::TemporarilyUnavailable {
            reason: error.to_string(),
            status: None,
            retry_after: None,
            source: None,
        },
        _ => AuthError::OAuth(error),
    }
}

/// Values from the redirect are attacker-controlled: bounded and without control characters.
fn sanitize(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    const EXPECTED: Expected<'static> = Expected {
        state: "s1",
        issuer: Some("https://as.example"),
        require_iss: true,
    };

    #[test]
    fn url_carries_pkce_and_state_and_keeps_existing_query() {
        let endpoint = Url::parse("https://as.example/authorize?tenant=a").unwrap();
        let extra = [("prompt".to_owned(), "login".to_owned())];
        let url = authorization_url(
            &endpoint,
            &UrlParams {
                client_id: "app",
                redirect_uri: "app:/cb",
                scope: Some("read write".into()),
                state: "s1",
                challenge: "c",
                nonce: Some("n"),
                audience: None,
                resource: None,
                extra: &extra,
                dpop_jkt: Some("jkt-1"),
            },
        );
        let q: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("tenant"), Some("a"));
        assert_eq!(get("code_challenge_method"), Some("S256"));
        assert_eq!(get("scope"), Some("read write"));
        assert_eq!(get("dpop_jkt"), Some("jkt-1"));
        assert_eq!(get("prompt"), Some("login"));
        assert_eq!(get("redirect_uri"), Some("app:/cb"));
    }

    #[test]
    fn redirect_checks_run_in_rfc_9207_order() {
        let ok = code_from_redirect("app:/cb?code=abc&state=s1&iss=https%3A%2F%2Fas.example", &EXPECTED).unwrap();
        assert_eq!(ok.expose_secret(), "abc");
        // A foreign issuer is reported even when the state is also wrong.
        let mixed = code_from_redirect("app:/cb?code=abc&state=zz&iss=https://evil", &EXPECTED);
        assert!(matches!(mixed, Err(AuthError::IssuerMismatch { actual: Some(_), .. })));
        let missing = code_from_redirect("app:/cb?code=abc&state=s1", &EXPECTED);
        assert!(matches!(missing, Err(AuthError::IssuerMismatch { actual: None, .. })));
        let csrf = code_from_redirect("app:/cb?code=abc&state=zz&iss=https://as.example", &EXPECTED);
        assert!(matches!(csrf, Err(AuthError::StateMismatch)));
        let denied = code_from_redirect("app:/cb?error=access_denied&state=s1&iss=https://as.example", &EXPECTED);
        assert!(matches!(denied, Err(AuthError::AccessDenied(_))));
        let garbage = code_from_redirect("not a url", &EXPECTED);
        assert!(matches!(garbage, Err(AuthError::InvalidRedirect { .. })));
    }

    #[test]
    fn errors_never_quote_the_code() {
        let err = code_from_redirect("app:/cb?code=SECRETCODE&state=zz&iss=https://as.example", &EXPECTED).unwrap_err();
        assert!(!err.to_string().contains("SECRETCODE"));
        assert!(!format!("{err:?}").contains("SECRETCODE"));
    }
}
