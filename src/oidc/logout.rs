//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): the URL that ends
//! the user's session at the provider, and the check on the redirect back.
//!
//! The browser part is the app's: open [`EndSessionRequest::url`] in the system
//! browser (Custom Tabs, `ASWebAuthenticationSession`, the desktop browser) and hand
//! the redirect to [`EndSessionRequest::complete`]. Local logout and revocation do not
//! wait for it: call [`Session::logout`] whatever the browser does.

use crate::error::AuthError;
use crate::internal::protocol::pkce;
use crate::session::Session;
use secrecy::ExposeSecret;
use std::fmt;

/// A logout at the provider in progress. `Debug` never shows the URL: it carries the
/// ID token as `id_token_hint`.
pub struct EndSessionRequest {
    url: String,
    state: Option<String>,
}

impl EndSessionRequest {
    /// The `end_session_endpoint` URL to open in the browser.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The `state` sent with a `post_logout_redirect_uri`; the redirect must carry it back.
    pub fn state(&self) -> Option<&str> {
        self.state.as_deref()
    }

    /// Checks the redirect the provider sent the browser back to (§3): its `state`
    /// must be this request's, else [`AuthError::StateMismatch`].
    pub fn complete(&self, redirect_url: &str) -> Result<(), AuthError> {
        let url = url::Url::parse(redirect_url.trim()).map_err(|_| AuthError::InvalidRedirect {
            reason: "the redirect is not a valid URL".into(),
        })?;
        let state = url
            .query_pairs()
            .find(|(name, _)| name == "state")
            .map(|(_, v)| v.into_owned());
        if state.as_deref() != self.state.as_deref() {
            return Err(AuthError::StateMismatch);
        }
        Ok(())
    }
}

impl fmt::Debug for EndSessionRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndSessionRequest")
            .field("url", &"[redacted: holds the id_token_hint]")
            .field("state", &self.state)
            .finish()
    }
}

impl Session {
    /// The URL that ends the user's session at the provider (OIDC RP-Initiated Logout
    /// 1.0 §2): `id_token_hint` (the session's last validated ID token, so the
    /// provider needs no confirmation), `client_id`, and with
    /// `post_logout_redirect_uri` a fresh `state`. Build it **before**
    /// [`logout`](Self::logout), which forgets the ID token. No network traffic.
    ///
    /// Needs [`AuthConfig::end_session_endpoint`](crate::AuthConfig::end_session_endpoint)
    /// (or [`AuthConfig::discover`](crate::AuthConfig::discover)).
    ///
    /// ```no_run
    /// # async fn run(session: &tokenkeeper::Session) -> Result<(), tokenkeeper::AuthError> {
    /// use tokenkeeper::signin::LoopbackRedirect;
    /// let listener = LoopbackRedirect::bind().await?;
    /// let end = session.end_session_request(Some(listener.redirect_uri()))?;
    /// session.logout().await?; // revocation and the store, whatever the browser does
    /// // open end.url() in the system browser, then:
    /// end.complete(&listener.wait().await?)?;
    /// # Ok(()) }
    /// ```
    pub fn end_session_request(&self, post_logout_redirect_uri: Option<&str>) -> Result<EndSessionRequest, AuthError> {
        let config = &self.core().ctx.config;
        let endpoint = crate::signin::endpoint(
            config,
            "end session endpoint",
            config.oidc.end_session_endpoint.as_deref(),
        )?;
        let mut url = endpoint;
        let state = post_logout_redirect_uri.map(|_| pkce::random_string()).transpose()?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(id_token) = self.core().id_token() {
                query.append_pair("id_token_hint", id_token.expose_secret());
            }
            query.append_pair("client_id", &config.client_id);
            if let (Some(redirect), Some(state)) = (post_logout_redirect_uri, &state) {
                query.append_pair("post_logout_redirect_uri", redirect);
                query.append_pair("state", state);
            }
        }
        Ok(EndSessionRequest { url: url.into(), state })
    }
}
