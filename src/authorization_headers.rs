//! For apps with their own HTTP stack: the header values of one request
//! ([`Session::authorization_headers`]) — `Authorization` with the right scheme and,
//! for a DPoP-bound token, a fresh `DPoP` proof for that method and URL — and the
//! calls that feed the session what the server answered.

use crate::error::AuthError;
use crate::internal::dpop;
use crate::session::Session;
use crate::token::{AccessToken, TokenType};
use secrecy::{ExposeSecret, SecretString};
use std::fmt;

/// The headers for one request, from [`Session::authorization_headers`]. Build a new
/// one for every request: a proof is valid for one method, one URL and a short time,
/// and the server may refuse it a second time (RFC 9449 §11.1).
pub struct AuthorizationHeaders {
    token: AccessToken,
    authorization: SecretString,
    dpop: Option<SecretString>,
}

impl AuthorizationHeaders {
    /// Security: the `Authorization` value, `Bearer <token>` or `DPoP <token>`.
    pub fn authorization(&self) -> &SecretString {
        &self.authorization
    }

    /// Security: the `DPoP` header value (a proof JWT) when the token is DPoP-bound.
    pub fn dpop(&self) -> Option<&SecretString> {
        self.dpop.as_ref()
    }

    /// The token the headers carry: hand it to
    /// [`Session::handle_unauthorized`] after a 401.
    pub fn token(&self) -> &AccessToken {
        &self.token
    }
}

impl fmt::Debug for AuthorizationHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationHeaders")
            .field("token_type", &self.token.token_type())
            .field("authorization", &"[redacted]")
            .field("dpop", &self.dpop.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl Session {
    /// The header values for a `method` request to `url` sent by the app's own HTTP
    /// stack: a valid token (like [`access_token`](Self::access_token)) as
    /// `Authorization`, and for a DPoP-bound token a proof with `ath` and the
    /// server's last nonce. After a response, pass its `DPoP-Nonce` to
    /// [`dpop_nonce_received`](Self::dpop_nonce_received); after a 401, its challenges
    /// to [`handle_unauthorized`](Self::handle_unauthorized), which for
    /// `use_dpop_nonce` returns the same token: build the headers again and retry once.
    ///
    /// ```no_run
    /// # async fn run(session: &tokenkeeper::Session) -> Result<(), tokenkeeper::AuthError> {
    /// use tokenkeeper::ExposeSecret;
    /// let headers = session.authorization_headers("GET", "https://api.example.com/me").await?;
    /// let mut request = vec![("Authorization", headers.authorization().expose_secret().to_owned())];
    /// if let Some(proof) = headers.dpop() {
    ///     request.push(("DPoP", proof.expose_secret().to_owned()));
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn authorization_headers(&self, method: &str, url: &str) -> Result<AuthorizationHeaders, AuthError> {
        let url = url::Url::parse(url).map_err(|_| AuthError::config("the request URL is not a valid URL"))?;
        let token = self.access_token().await?;
        let scheme = token.token_type().scheme();
        let authorization = SecretString::from(format!("{scheme} {}", token.expose_secret()));
        let dpop = match token.token_type() {
            TokenType::Bearer => None,
            TokenType::Dpop => Some(dpop::resource_proof(self.core(), method, &url, token.expose_secret())?),
        };
        Ok(AuthorizationHeaders {
            token,
            authorization,
            dpop,
        })
    }

    /// Tells the session that a response from `url` carried `DPoP-Nonce: nonce`
    /// (RFC 9449 §8.2, §9): the next proof for that origin carries it. Ignored when
    /// the client sends no proofs or the value is not a valid nonce.
    pub fn dpop_nonce_received(&self, url: &str, nonce: &str) {
        if let (Some(state), Ok(url)) = (&self.core().ctx.dpop, url::Url::parse(url)) {
            state.observe(&url, Some(nonce));
        }
    }

    /// The RFC 7638 thumbprint of this session's DPoP key (the `jkt` its tokens are
    /// bound to), or `None` when the client sends no DPoP proofs or the session was
    /// logged out (its key is gone). Creates the key if a live session has none yet.
    pub fn dpop_thumbprint(&self) -> Result<Option<String>, AuthError> {
        if self.core().is_logged_out() {
            return Ok(None);
        }
        Ok(self.core().dpop_binding()?.map(|binding| binding.jkt.clone()))
    }
}
