//! OpenID Connect for Kotlin and Swift: who signed in ([`Claims`], from the session's
//! validated ID token, kept across restarts, and from UserInfo), logout at the
//! provider ([`EndSessionRequest`]), the provider's endpoints ([`OidcEndpoints`] in
//! `AuthConfig.oidc`) and the sign-in options a stronger login needs
//! ([`SignInOptions`]). Every check (signature, `iss`, `aud`, `nonce`, `sub` …) is
//! the core's (`tokenkeeper::oidc`); this file only converts.
//!
//! ```kotlin
//! val claims = session.idTokenClaims()           // no request, also after a restart
//! val end = session.endSessionRequest("com.example.app:/logout")
//! session.logout()                               // revocation + store, whatever the browser does
//! customTabs.launchUrl(context, Uri.parse(end.url()))
//! // … in the redirect activity:
//! end.complete(intent.data.toString())
//! ```

use super::client::Session;
use super::error::AuthError;
use super::runtime::run;
use super::units::{Moment, TimeSpan};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// The claims of a validated ID token or of UserInfo (OIDC Core §5.1): the profile
/// fields an account screen shows, and every claim as a JSON object text in [`json`](Self::json).
/// Personal data, not a credential: the ID token itself is never in here.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Claims {
    /// `sub`: the user's stable identifier at the issuer; key local data by it.
    pub subject: String,
    /// `iss`: the issuer.
    pub issuer: String,
    /// `name`.
    pub name: Option<String>,
    /// `email`.
    pub email: Option<String>,
    /// `email_verified`.
    pub email_verified: Option<bool>,
    /// `preferred_username`.
    pub preferred_username: Option<String>,
    /// `picture`: a URL.
    pub picture: Option<String>,
    /// `auth_time`: when the user last authenticated.
    pub auth_time: Option<Moment>,
    /// `acr`: the authentication context class the login satisfied.
    pub acr: Option<String>,
    /// Every claim (including the ones above) as a JSON object text.
    pub json: String,
}

impl From<sdk::oidc::IdTokenClaims> for Claims {
    fn from(claims: sdk::oidc::IdTokenClaims) -> Self {
        Self {
            json: claims.to_json(),
            subject: claims.subject,
            issuer: claims.issuer,
            name: claims.name,
            email: claims.email,
            email_verified: claims.email_verified,
            preferred_username: claims.preferred_username,
            picture: claims.picture,
            // An auth_time past what SystemTime holds is dropped, never a panic.
            auth_time: claims
                .auth_time
                .and_then(|secs| UNIX_EPOCH.checked_add(Duration::from_secs(secs)))
                .map(Moment),
            acr: claims.acr,
        }
    }
}

/// The provider's OpenID Connect endpoints, for `AuthConfig.oidc`. With `jwks_uri`
/// and `AuthConfig.issuer`, ID tokens are validated whenever `openid` is in scope;
/// without a key set an ID token fails the sign-in (`AuthException.InvalidJwt`).
#[derive(Clone, Debug, Default, PartialEq, Eq, uniffi::Record)]
pub struct OidcEndpoints {
    /// The issuer's JWK Set (`jwks_uri`).
    #[uniffi(default = None)]
    pub jwks_uri: Option<String>,
    /// The UserInfo endpoint, for `Session.userinfo()`.
    #[uniffi(default = None)]
    pub userinfo_endpoint: Option<String>,
    /// The `end_session_endpoint`, for `Session.endSessionRequest()`.
    #[uniffi(default = None)]
    pub end_session_endpoint: Option<String>,
    /// The pushed authorization request endpoint (RFC 9126).
    #[uniffi(default = None)]
    pub pushed_authorization_request_endpoint: Option<String>,
    /// The metadata's `require_pushed_authorization_requests`.
    #[uniffi(default = false)]
    pub require_pushed_authorization_requests: bool,
    /// `id_token_signing_alg_values_supported`; empty: every algorithm tokenkeeper verifies.
    #[uniffi(default = [])]
    pub id_token_signing_algs: Vec<String>,
}

impl OidcEndpoints {
    /// The core configuration with these endpoints.
    pub(crate) fn apply(self, mut config: sdk::AuthConfig) -> sdk::AuthConfig {
        if let Some(url) = self.jwks_uri {
            config = config.jwks_uri(url);
        }
        if let Some(url) = self.userinfo_endpoint {
            config = config.userinfo_endpoint(url);
        }
        if let Some(url) = self.end_session_endpoint {
            config = config.end_session_endpoint(url);
        }
        if let Some(url) = self.pushed_authorization_request_endpoint {
            config = config.pushed_authorization_request_endpoint(url, self.require_pushed_authorization_requests);
        }
        if !self.id_token_signing_algs.is_empty() {
            config = config.id_token_signing_algs(self.id_token_signing_algs);
        }
        config
    }
}

/// What a browser sign-in asks of the provider besides the scopes (OIDC Core §3.1.2.1,
/// RFC 9470): `authorizationRequest(…, options = SignInOptions(prompt = "login"))`.
#[derive(Clone, Debug, Default, PartialEq, Eq, uniffi::Record)]
pub struct SignInOptions {
    /// `max_age`: the login must be at most this old; its `auth_time` is checked.
    #[uniffi(default = None)]
    pub max_age: Option<TimeSpan>,
    /// `prompt`, such as `login` (show the login page even with a provider session).
    #[uniffi(default = None)]
    pub prompt: Option<String>,
    /// `login_hint`: the account to preselect.
    #[uniffi(default = None)]
    pub login_hint: Option<String>,
    /// `acr_values`: the authentication context classes asked for (step-up).
    #[uniffi(default = None)]
    pub acr_values: Option<String>,
}

impl SignInOptions {
    /// `request` with these options.
    pub(crate) fn apply(self, mut request: sdk::signin::AuthorizationRequest) -> sdk::signin::AuthorizationRequest {
        if let Some(max_age) = self.max_age {
            request = request.max_age(max_age.into());
        }
        if let Some(prompt) = self.prompt {
            request = request.prompt(prompt);
        }
        if let Some(hint) = self.login_hint {
            request = request.login_hint(hint);
        }
        if let Some(acr) = self.acr_values {
            request = request.acr_values(acr);
        }
        request
    }
}

/// What a resource's step-up challenge (RFC 9470 `insufficient_user_authentication`)
/// asks for; sign in again with these as [`SignInOptions`].
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct StepUpChallenge {
    /// The authentication context classes asked for.
    pub acr_values: Option<String>,
    /// How recent the login must be.
    pub max_age: Option<TimeSpan>,
}

/// The step-up challenge among a 401's `WWW-Authenticate` values, if there is one
/// (`AuthException.StepUpRequired` from `handleUnauthorized` says the same, as text).
#[uniffi::export]
pub fn step_up_challenge(www_authenticate: Vec<String>) -> Option<StepUpChallenge> {
    match sdk::AuthError::step_up_from_challenges(www_authenticate.iter().map(String::as_str))? {
        sdk::AuthError::StepUpRequired { acr_values, max_age } => Some(StepUpChallenge {
            acr_values,
            max_age: max_age.map(TimeSpan),
        }),
        _ => None,
    }
}

/// A logout at the provider in progress (RP-Initiated Logout 1.0): open
/// [`url`](Self::url) in Custom Tabs / `ASWebAuthenticationSession`, then hand the
/// redirect to [`complete`](Self::complete). Its description never shows the URL,
/// which carries the ID token.
#[derive(uniffi::Object)]
#[uniffi::export(Debug)]
pub struct EndSessionRequest {
    inner: sdk::oidc::EndSessionRequest,
}

impl std::fmt::Debug for EndSessionRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

#[uniffi::export]
impl EndSessionRequest {
    /// The `end_session_endpoint` URL to open in the browser.
    pub fn url(&self) -> String {
        self.inner.url().to_owned()
    }

    /// The `state` sent with the `post_logout_redirect_uri`, if one was given.
    pub fn state(&self) -> Option<String> {
        self.inner.state().map(str::to_owned)
    }

    /// Checks the redirect the provider sent the browser back to. Throws
    /// `StateMismatch` for another request's redirect, `InvalidRedirect` for a bad URL.
    pub fn complete(&self, redirect_url: String) -> Result<(), AuthError> {
        Ok(self.inner.complete(&redirect_url)?)
    }
}

#[uniffi::export]
impl Session {
    /// The claims of the session's last validated ID token, without a request (also
    /// after a restart: they are kept in the stored record). `null`/`nil` without
    /// `openid` in scope.
    pub fn id_token_claims(&self) -> Option<Claims> {
        self.core().id_token_claims().map(Claims::from)
    }

    /// The UserInfo claims, fetched with the session's token. Throws `InvalidJwt` when
    /// their `sub` is not the ID token's.
    pub async fn userinfo(&self) -> Result<Claims, AuthError> {
        let session = Arc::clone(self.core());
        run(async move { session.userinfo().await }).await.map(Claims::from)
    }

    /// The URL that ends the user's session at the provider, with `id_token_hint`
    /// and, with `post_logout_redirect_uri`, a fresh `state`. Build it before
    /// `logout()`, which forgets the ID token. No network traffic.
    #[uniffi::method(default(post_logout_redirect_uri = None))]
    pub fn end_session_request(
        &self,
        post_logout_redirect_uri: Option<String>,
    ) -> Result<Arc<EndSessionRequest>, AuthError> {
        let inner = self.core().end_session_request(post_logout_redirect_uri.as_deref())?;
        Ok(Arc::new(EndSessionRequest { inner }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_up_challenge_is_read_and_other_challenges_are_not() {
        let challenge = r#"Bearer error="insufficient_user_authentication", acr_values="urn:mfa", max_age="300""#;
        assert_eq!(
            step_up_challenge(vec![r#"DPoP algs="ES256""#.into(), challenge.into()]),
            Some(StepUpChallenge {
                acr_values: Some("urn:mfa".into()),
                max_age: Some(TimeSpan(Duration::from_secs(300))),
            })
        );
        assert_eq!(step_up_challenge(vec![r#"Bearer error="invalid_token""#.into()]), None);
    }

    #[test]
    fn claims_convert_with_every_field_and_a_huge_auth_time_is_dropped() {
        let all = serde_json::json!({
            "iss": "https://as.example.com", "sub": "alice", "name": "Alice",
            "email": "a@example.com", "email_verified": true, "auth_time": 1_700_000_000u64,
            "custom": [1, 2]
        });
        let core = sdk::oidc::IdTokenClaims::from_map(all.as_object().cloned().unwrap()).unwrap();
        let claims = Claims::from(core.clone());
        assert_eq!(
            (claims.subject.as_str(), claims.name.as_deref()),
            ("alice", Some("Alice"))
        );
        assert_eq!(
            claims.auth_time,
            Some(Moment(UNIX_EPOCH + Duration::from_secs(1_700_000_000)))
        );
        let json: serde_json::Value = serde_json::from_str(&claims.json).unwrap();
        assert_eq!(json["custom"], serde_json::json!([1, 2]));
        let mut huge = core;
        huge.auth_time = Some(u64::MAX);
        assert_eq!(Claims::from(huge).auth_time, None);
    }
}
