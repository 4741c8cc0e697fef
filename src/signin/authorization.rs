//! The authorization code flow with PKCE: build the URL the browser opens, then
//! turn the redirect it comes back with into a session.

use super::{endpoint, one_time_grant, sign_in_key};
use crate::client::AuthClient;
use crate::error::AuthError;
use crate::identity::{Identity, TokenParams};
use crate::internal::dpop::Binding;
use crate::internal::id_token::{check_issued, SignInChecks};
use crate::internal::protocol::authorization::{self, Expected, UrlParams, RESERVED};
use crate::internal::protocol::pkce::{self, Pkce};
use crate::internal::protocol::request::Grant;
use crate::session::Session;
use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

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
    max_age: Option<Duration>,
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
            max_age: None,
            extra: Vec::new(),
        }
    }

    /// OIDC `max_age` (Core §3.1.2.1): the user must have authenticated at most this
    /// long ago, else the provider asks again; the ID token's `auth_time` is checked
    /// against it. Step-up (RFC 9470) passes the resource's `max_age` here.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// OIDC `prompt` (`login` forces a fresh login, `consent`, `select_account`, `none`).
    pub fn prompt(self, prompt: impl Into<String>) -> Self {
        self.extra_param("prompt", prompt)
    }

    /// OIDC `login_hint`: the account the provider should pre-fill.
    pub fn login_hint(self, hint: impl Into<String>) -> Self {
        self.extra_param("login_hint", hint)
    }

    /// The stronger sign-in an [`AuthError::StepUpRequired`] asks for (RFC 9470 §4):
    /// its `acr_values` and `max_age`. Any other error leaves the request as it is.
    pub fn step_up(mut self, error: &AuthError) -> Self {
        if let AuthError::StepUpRequired { acr_values, max_age } = error {
            if let Some(acr_values) = acr_values {
                self = self.acr_values(acr_values.clone());
            }
            if let Some(max_age) = max_age {
                self = self.max_age(*max_age);
            }
        }
        self
    }

    /// OIDC `acr_values` (space-separated): the authentication context classes asked
    /// for, e.g. from a step-up challenge (RFC 9470).
    pub fn acr_values(self, acr_values: impl Into<String>) -> Self {
        self.extra_param("acr_values", acr_values)
    }

    /// Scopes, audience or resource instead of the config's defaults.
    pub fn params(mut self, params: TokenParams) -> Self {
        self.params = params;
        self
    }

    /// Adds an OpenID Connect `nonce` (OIDC Core §3.1.2.1), which the ID token
    /// must carry back. Implied when `openid` is in scope.
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

/// A sign-in in progress: the URL to open and, in memory, the PKCE verifier
/// and `state` that [`AuthClient::complete_authorization`] checks the redirect against.
/// `Debug` never shows the verifier. To survive process death (Android), save it with
/// [`AuthClient::save_authorization`]: an opaque, sealed string.
pub struct PendingAuthorization {
    pub(super) url: String,
    pub(super) state: String,
    pub(super) nonce: Option<String>,
    pub(super) max_age: Option<Duration>,
    pub(super) verifier: SecretString,
    pub(super) redirect_uri: String,
    pub(super) identity: Identity,
    /// The DPoP key the code is bound to (`dpop_jkt`, RFC 9449 §10).
    pub(super) dpop: Option<std::sync::Arc<Binding>>,
    /// Set once the sign-in is saved (`signin::saved`): completing it then spends the
    /// saved copies too, so none can be replayed.
    pub(super) saved_id: std::sync::OnceLock<String>,
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
    ///
    /// A server that requires pushed authorization requests
    /// (`require_pushed_authorization_requests`) refuses plain ones: then this is
    /// [`AuthError::InvalidConfig`], and [`start_authorization`](Self::start_authorization) is the way.
    pub fn authorization_request(&self, request: AuthorizationRequest) -> Result<PendingAuthorization, AuthError> {
        if self.context().config.oidc.require_par {
            return Err(AuthError::config(
                "the server requires pushed authorization requests (RFC 9126): use AuthClient::start_authorization",
            ));
        }
        self.prepare_authorization(request)
    }

    /// The pending sign-in with the full authorization URL, pushed or not.
    pub(super) fn prepare_authorization(
        &self,
        request: AuthorizationRequest,
    ) -> Result<PendingAuthorization, AuthError> {
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
        let openid = identity.scopes.contains("openid");
        let nonce = (request.nonce || openid).then(pkce::random_string).transpose()?;
        let max_age = request.max_age.map(|age| age.as_secs().to_string());
        let mut extra = request.extra;
        extra.extend(max_age.map(|age| ("max_age".to_owned(), age)));
        let dpop = sign_in_key(self.context(), &identity)?;
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
                extra: &extra,
                dpop_jkt: dpop.as_ref().map(|binding| binding.jkt.as_str()),
            },
        );
        Ok(PendingAuthorization {
            url: url.into(),
            state,
            nonce,
            max_age: request.max_age,
            verifier: pkce.verifier,
            redirect_uri: request.redirect_uri,
            identity,
            dpop,
            saved_id: std::sync::OnceLock::new(),
        })
    }

    /// Finishes a browser sign-in with the URL the browser was redirected to: checks
    /// `iss` (RFC 9207, when an issuer is configured) and `state`, exchanges the code
    /// with the PKCE verifier, and returns the user's session, registered like any other.
    ///
    /// With `openid` in scope the ID token is validated first (signature, `iss`,
    /// `aud`, `exp`, `nonce`, `auth_time` against `max_age`, `at_hash`): a failure is
    /// [`AuthError::InvalidJwt`] naming the check, and no session is created.
    ///
    /// Typed failures: [`AuthError::IssuerMismatch`], [`AuthError::StateMismatch`],
    /// [`AuthError::AccessDenied`] (the user said no), [`AuthError::InvalidRedirect`],
    /// and [`AuthError::InvalidGrant`] for a code that is spent, expired or was
    /// issued for another verifier. A saved sign-in ([`save_authorization`](Self::save_authorization))
    /// is spent here, after the redirect's checks and before the exchange:
    /// [`AuthError::SavedSignInRefused`] if it was completed already.
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
        if let Some(id) = pending.saved_id.get() {
            // A saved sign-in is spent before its code leaves: a replay stops here. (A
            // caller gone between the two has spent it and exchanged nothing: no token
            // is issued, the user starts again.)
            super::saved::spend(ctx, id).await?;
        }
        // The exchange and the install run on a task of their own: a caller that goes
        // away (a timeout, a closed screen) once the code is on its way cannot drop
        // tokens the server already issued; the user ends signed in, in the registry
        // and the store, as the device grant's redeeming poll does.
        let exchange = CodeExchange {
            client: self.clone(),
            code,
            redirect_uri: pending.redirect_uri.clone(),
            verifier: SecretString::from(pending.verifier.expose_secret()),
            nonce: pending.nonce.clone(),
            max_age: pending.max_age,
            identity: pending.identity.clone(),
            dpop: pending.dpop.clone(),
        };
        crate::internal::flight::runtime()?
            .spawn(exchange.run())
            .await
            .unwrap_or_else(|_| Err(AuthError::unavailable("the code exchange was stopped")))
    }
}

/// What a code exchange needs, owned, so that it can finish on its own task.
struct CodeExchange {
    client: AuthClient,
    code: SecretString,
    redirect_uri: String,
    verifier: SecretString,
    nonce: Option<String>,
    max_age: Option<Duration>,
    identity: Identity,
    dpop: Option<std::sync::Arc<Binding>>,
}

impl CodeExchange {
    async fn run(self) -> Result<Arc<Session>, AuthError> {
        let ctx = self.client.context();
        let grant = Grant::AuthorizationCode {
            code: &self.code,
            redirect_uri: &self.redirect_uri,
            verifier: &self.verifier,
        };
        let (mut issued, sent_at) = one_time_grant(ctx, &self.identity, &grant, self.dpop.as_deref()).await?;
        if self.identity.scopes.contains("openid") {
            let checks = SignInChecks {
                nonce: self.nonce.as_deref(),
                max_age: self.max_age,
            };
            let checked = match issued.id_token {
                // OIDC Core §3.1.3.3: the answer to an openid code exchange has an ID token.
                None => Err(AuthError::InvalidJwt(crate::error::JwtError {
                    check: crate::error::JwtCheck::Malformed,
                    reason: "the token response to an openid sign-in has no id_token".into(),
                })),
                Some(_) => check_issued(ctx, &self.identity, &issued, sent_at, checks, None).await,
            };
            match checked {
                Ok(oidc) => issued.id_token_claims = oidc.map(|oidc| Box::new((*oidc.claims).clone())),
                Err(refused) => {
                    // Refused, so nobody will own what the server issued.
                    self.client.revoke_unowned(self.identity, &issued).await;
                    return Err(refused);
                }
            }
        }
        self.client
            .install_signed_in(self.identity, issued, sent_at, self.dpop)
            .await
    }
}
