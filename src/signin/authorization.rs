//! The authorization code flow with PKCE: build the URL the browser opens, then
//! turn the redirect it comes back with into a session.

use super::{endpoint, one_time_grant, sign_in_key};
use crate::client::AuthClient;
use crate::error::AuthError;
use crate::identity::{Identity, TokenParams};
use crate::internal::dpop::Binding;
use crate::internal::protocol::authorization::{self, Expected, UrlParams, RESERVED};
use crate::internal::protocol::pkce::{self, Pkce};
use crate::internal::protocol::request::Grant;
use crate::session::Session;
use secrecy::SecretString;
use std::fmt;
use std::sync::Arc;

/// What to ask the authorization server for; see
/// [`AuthClient::authorization_request`].
///
/// ```
/// use tokenkeeper::signin::AuthorizationRequest;
/// use tokenkeeper::TokenParams;
/// let request = AuthorizationRequest::new("alice", "com.example.app:/oauth2redirect")
///     .params(TokenParams::new().scopes(["openid", "read"]))
///     .with_nonce()
///     .extra_param("prompt", "login");
/// # let _ = request;
/// ```
#[derive(Clone, Debug)]
pub struct AuthorizationRequest {
    account: String,
    redirect_uri: String,
    params: TokenParams,
    nonce: bool,
    extra: Vec<(String, String)>,
}

impl AuthorizationRequest {
    /// Signs in the account the app calls `account` (the session's
    /// [`Subject::User`](crate::Subject::User)), coming back to `redirect_uri`: a
    /// private-use scheme (`com.example.app:/cb`, RFC 8252 §7.1), a claimed https
    /// URL (§7.2) or a loopback URI from [`LoopbackRedirect`](super::LoopbackRedirect) (§7.3).
    pub fn new(account: impl Into<String>, redirect_uri: impl Into<String>) -> Self {
        Self {
            account: account.into(),
            redirect_uri: redirect_uri.into(),
            params: TokenParams::default(),
            nonce: false,
            extra: Vec::new(),
        }
    }

    /// Scopes, audience or resource instead of the config's defaults.
    pub fn params(mut self, params: TokenParams) -> Self {
        self.params = params;
        self
    }

    /// Adds an OpenID Connect `nonce` (read it back with [`PendingAuthorization::nonce`]
    /// to check the ID token, which tokenkeeper does not parse).
    pub fn with_nonce(mut self) -> Self {
        self.nonce = true;
        self
    }

    /// Another query parameter (`prompt`, `login_hint`, `ui_locales`, …). The
    /// parameters the flow sets itself (`state`, `code_challenge`, …) are refused.
    pub fn extra_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.push((name.into(), value.into()));
        self
    }
}

/// A sign-in in progress: the URL to open and, in memory only, the PKCE verifier
/// and `state` that [`AuthClient::complete_authorization`] checks the redirect against.
/// `Debug` never shows the verifier.
pub struct PendingAuthorization {
    url: String,
    state: String,
    nonce: Option<String>,
    verifier: SecretString,
    redirect_uri: String,
    identity: Identity,
    /// The DPoP key the code is bound to (`dpop_jkt`, RFC 9449 §10).
    dpop: Option<std::sync::Arc<Binding>>,
}

impl PendingAuthorization {
    /// The authorization URL to open in the system browser (Custom Tabs,
    /// `ASWebAuthenticationSession`, the desktop browser; never an embedded web view,
    /// RFC 8252 §8.12).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The redirect URI the server will come back to.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// The `state` sent; the redirect must carry it back.
    pub fn state(&self) -> &str {
        &self.state
    }

    /// The OpenID Connect `nonce`, if one was requested.
    pub fn nonce(&self) -> Option<&str> {
        self.nonce.as_deref()
    }

    /// The identity the session will have.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }
}

impl fmt::Debug for PendingAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingAuthorization")
            .field("identity", &self.identity)
            .field("redirect_uri", &self.redirect_uri)
            .field("verifier", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl AuthClient {
    /// Starts a browser sign-in (authorization code with PKCE S256, a fresh `state`).
    /// No network traffic: open [`PendingAuthorization::url`] and hand the redirect to
    /// [`complete_authorization`](Self::complete_authorization).
    /// Needs [`AuthConfig::authorization_endpoint`](crate::AuthConfig::authorization_endpoint)
    /// (or [`AuthConfig::discover`](crate::AuthConfig::discover)).
    pub fn authorization_request(&self, request: AuthorizationRequest) -> Result<PendingAuthorization, AuthError> {
        let config = &self.context().config;
        let endpoint = endpoint(
            config,
            "authorization endpoint",
            config.authorization_endpoint.as_deref(),
        )?;
        if url::Url::parse(&request.redirect_uri).is_err() {
            return Err(AuthError::config("the redirect URI is not an absolute URI"));
        }
        if let Some((name, _)) = request.extra.iter().find(|(n, _)| RESERVED.contains(&n.as_str())) {
            return Err(AuthError::config(format!(
                "the parameter {name:?} is set by the sign-in flow"
            )));
        }
        let identity = self.account_identity(&request.account, request.params)?;
        let pkce = Pkce::generate()?;
        let state = pkce::random_string()?;
        let nonce = request.nonce.then(pkce::random_string).transpose()?;
        let dpop = sign_in_key(self.context())?;
        let url = authorization::authorization_url(
            &endpoint,
            &UrlParams {
                client_id: &config.client_id,
                redirect_uri: &request.redirect_uri,
                scope: identity.scope_param(),
                state: &state,
                challenge: &pkce.challenge,
                nonce: nonce.as_deref(),
                audience: identity.audience.as_deref(),
                resource: identity.resource.as_deref(),
                extra: &request.extra,
                dpop_jkt: dpop.as_ref().map(|binding| binding.jkt.as_str()),
            },
        );
        Ok(PendingAuthorization {
            url: url.into(),
            state,
            nonce,
            verifier: pkce.verifier,
            redirect_uri: request.redirect_uri,
            identity,
            dpop,
        })
    }

    /// Finishes a browser sign-in with the URL the browser was redirected to: checks
    /// `iss` (RFC 9207, when an issuer is configured) and `state`, exchanges the code
    /// with the PKCE verifier, and returns the user's session, registered like any other.
    ///
    /// Typed failures: [`AuthError::IssuerMismatch`], [`AuthError::StateMismatch`],
    /// [`AuthError::AccessDenied`] (the user said no), [`AuthError::InvalidRedirect`],
    /// and [`AuthError::InvalidGrant`] for a code that is spent, expired or was
    /// issued for another verifier.
    pub async fn complete_authorization(
        &self,
        pending: &PendingAuthorization,
        redirect_url: &str,
    ) -> Result<Arc<Session>, AuthError> {
        let ctx = self.context();
        let expected = Expected {
            state: &pending.state,
            issuer: ctx.config.issuer.as_deref(),
            require_iss: ctx.config.require_iss,
        };
        let code = authorization::code_from_redirect(redirect_url, &expected)?;
        let grant = Grant::AuthorizationCode {
            code: &code,
            redirect_uri: &pending.redirect_uri,
            verifier: &pending.verifier,
        };
        let dpop = pending.dpop.as_deref();
        let (issued, sent_at) = one_time_grant(ctx, &pending.identity, &grant, dpop).await?;
        self.install_signed_in(pending.identity.clone(), issued, sent_at, pending.dpop.clone())
            .await
    }
}
