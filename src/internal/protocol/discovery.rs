//! Authorization server metadata (RFC 8414 §3) and OpenID Connect discovery:
//! where to fetch it and the one check that makes it trustworthy, that its
//! `issuer` is exactly the issuer it was fetched for (RFC 8414 §3.3).

use crate::error::AuthError;
use crate::internal::transport::HttpResponse;
use serde::Deserialize;
use url::Url;

/// The metadata fields tokenkeeper uses.
#[derive(Deserialize)]
pub(crate) struct Metadata {
    pub issuer: String,
    pub token_endpoint: Option<String>,
    pub authorization_endpoint: Option<String>,
    pub revocation_endpoint: Option<String>,
    pub device_authorization_endpoint: Option<String>,
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
    #[serde(default)]
    pub code_challenge_methods_supported: Option<Vec<String>>,
    /// RFC 9449 §5.1: the JWS algorithms the server accepts in DPoP proofs.
    #[serde(default)]
    pub dpop_signing_alg_values_supported: Option<Vec<String>>,
}

/// The RFC 8414 §3.1 URL (the well-known segment goes *before* the issuer's
/// path), then the OpenID Connect Discovery 1.0 §4 URL (appended after it).
pub(crate) fn metadata_urls(issuer: &Url) -> [Url; 2] {
    let path = issuer.path().trim_end_matches('/');
    let mut rfc8414 = issuer.clone();
    rfc8414.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    let mut oidc = issuer.clone();
    oidc.set_path(&format!("{path}/.well-known/openid-configuration"));
    for url in [&mut rfc8414, &mut oidc] {
        url.set_query(None);
        url.set_fragment(None);
    }
    [rfc8414, oidc]
}

/// Parses a metadata document fetched for `issuer` and checks its `issuer`.
pub(crate) fn parse(response: &HttpResponse, issuer: &str) -> Result<Metadata, AuthError> {
    let metadata: Metadata =
        serde_json::from_slice(response.body.as_slice()).map_err(|_| AuthError::InvalidResponse {
            status: response.status,
            reason: "the server metadata is not a JSON object with an issuer".into(),
            source: None,
        })?;
    // RFC 8414 §3.3: identical, character for character; no normalisation.
    if metadata.issuer != issuer {
        return Err(AuthError::IssuerMismatch {
            expected: issuer.to_owned(),
            actual: Some(metadata.issuer.chars().filter(|c| !c.is_control()).take(300).collect()),
        });
    }
    if let Some(methods) = &metadata.code_challenge_methods_supported {
        if metadata.authorization_endpoint.is_some() && !methods.iter().any(|m| m == "S256") {
            tracing::warn!("the server does not list S256 PKCE support; sign-in may fail");
        }
    }
    Ok(metadata)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_urls_for_issuers_with_and_without_path() {
        let [a, b] = metadata_urls(&Url::parse("https://as.example").unwrap());
        assert_eq!(a.as_str(), "https://as.example/.well-known/oauth-authorization-server");
        assert_eq!(b.as_str(), "https://as.example/.well-known/openid-configuration");
        let [a, b] = metadata_urls(&Url::parse("https://as.example/tenant/").unwrap());
        assert_eq!(
            a.as_str(),
            "https://as.example/.well-known/oauth-authorization-server/tenant"
        );
        assert_eq!(b.as_str(), "https://as.example/tenant/.well-known/openid-configuration");
    }
}
