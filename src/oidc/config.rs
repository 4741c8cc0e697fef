//! The OpenID Connect part of [`AuthConfig`]: the key set, UserInfo, end-session and
//! pushed-authorization endpoints, and the ID token algorithms the provider announces.
//! [`AuthConfig::discover`] fills them from the provider's metadata.

use crate::config::AuthConfig;
use crate::internal::jose::JwsAlgorithm;

/// The provider's OpenID Connect endpoints, all optional.
#[derive(Clone, Debug, Default)]
pub(crate) struct OidcConfig {
    pub jwks_uri: Option<String>,
    pub userinfo_endpoint: Option<String>,
    pub end_session_endpoint: Option<String>,
    pub par_endpoint: Option<String>,
    /// The metadata says `require_pushed_authorization_requests`.
    pub require_par: bool,
    /// `id_token_signing_alg_values_supported`, when known.
    pub signing_algs: Option<Vec<JwsAlgorithm>>,
}

impl AuthConfig {
    /// The issuer's JWK Set (`jwks_uri`): with [`issuer`](Self::issuer) set, ID
    /// tokens are validated whenever `openid` is in scope. Without one, a response
    /// with an ID token fails with [`AuthError::InvalidJwt`](crate::AuthError::InvalidJwt)
    /// and [`JwtCheck::KeySet`](crate::oidc::JwtCheck::KeySet), and nothing is installed.
    pub fn jwks_uri(mut self, url: impl Into<String>) -> Self {
        self.oidc.jwks_uri = Some(url.into());
        self
    }

    /// The ID token signing algorithms the provider announces
    /// (`id_token_signing_alg_values_supported`); others are refused. Names
    /// tokenkeeper does not verify (`none`, `HS256`, …) are ignored.
    pub fn id_token_signing_algs<I, S>(mut self, algs: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.oidc.signing_algs = Some(
            algs.into_iter()
                .filter_map(|name| JwsAlgorithm::from_name(name.as_ref()))
                .collect(),
        );
        self
    }

    /// The UserInfo endpoint (OIDC Core §5.3) for [`Session::userinfo`](crate::Session::userinfo).
    pub fn userinfo_endpoint(mut self, url: impl Into<String>) -> Self {
        self.oidc.userinfo_endpoint = Some(url.into());
        self
    }

    /// The `end_session_endpoint` (OIDC RP-Initiated Logout 1.0 §2).
    pub fn end_session_endpoint(mut self, url: impl Into<String>) -> Self {
        self.oidc.end_session_endpoint = Some(url.into());
        self
    }

    /// The pushed authorization request endpoint (RFC 9126 §5): authorization
    /// requests are pushed there and the browser opens a short URL with `request_uri`.
    /// `required` mirrors `require_pushed_authorization_requests`.
    pub fn pushed_authorization_request_endpoint(mut self, url: impl Into<String>, required: bool) -> Self {
        self.oidc.par_endpoint = Some(url.into());
        self.oidc.require_par = required;
        self
    }
}
