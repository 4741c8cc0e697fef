//! Reading a resource server's refusal of a valid token: RFC 6750 §3.1
//! `error="insufficient_scope"`.
//!
//! A 403 is the resource server's answer, not a token problem, so
//! [`Session::send`](crate::Session::send) returns it as a response — status, headers
//! and body intact, for the app to show the server's reason — and these helpers read
//! the Bearer challenge it carries.

use crate::internal::www_authenticate::{bearer_verdict, BearerVerdict};
#[cfg(feature = "reqwest")]
use reqwest::{header::WWW_AUTHENTICATE, StatusCode};

/// A resource server's statement that the access token is valid but lacks a scope
/// (RFC 6750 §3.1). A new token with the same scopes would not help.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct InsufficientScope {
    /// The `scope` the server says the resource needs, if it named one.
    pub scope: Option<String>,
    /// The server's `error_description`, if any.
    pub description: Option<String>,
}

impl InsufficientScope {
    /// Reads the `WWW-Authenticate` header values of a response (all of them, in
    /// order), for apps with their own HTTP stack. `Some` when the first Bearer
    /// challenge says `error="insufficient_scope"`, whatever the status.
    ///
    /// ```
    /// use tokenkeeper::InsufficientScope;
    /// let refusal = InsufficientScope::from_challenges([r#"Bearer error="insufficient_scope", scope="admin""#]);
    /// assert_eq!(refusal.unwrap().scope.as_deref(), Some("admin"));
    /// assert_eq!(InsufficientScope::from_challenges([r#"Bearer error="invalid_token""#]), None);
    /// ```
    pub fn from_challenges<'a>(www_authenticate: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        match bearer_verdict(www_authenticate) {
            BearerVerdict::InsufficientScope { scope, description } => Some(Self { scope, description }),
            _ => None,
        }
    }
}

/// Whether `response` is a 403 or 401 whose Bearer challenge says
/// `error="insufficient_scope"`, and which scope it names. `None` for any other
/// response, including a 403 without that challenge (the server forbids the request for
/// another reason: its body may say which).
///
/// ```no_run
/// # async fn run(session: &tokenkeeper::Session, http: &reqwest::Client) -> Result<(), tokenkeeper::AuthError> {
/// let response = session.send(http.get("https://api.example.com/admin/users")).await?;
/// if let Some(refusal) = tokenkeeper::insufficient_scope(&response) {
///     eprintln!("this needs the {:?} scope", refusal.scope);
/// }
/// # Ok(()) }
/// ```
///
/// (Feature `reqwest`; [`InsufficientScope::from_challenges`] reads any stack's headers.)
#[cfg(feature = "reqwest")]
pub fn insufficient_scope(response: &reqwest::Response) -> Option<InsufficientScope> {
    if !matches!(response.status(), StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED) {
        return None;
    }
    let challenges = response
        .headers()
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    InsufficientScope::from_challenges(challenges)
}
