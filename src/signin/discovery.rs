//! [`AuthConfig::discover`]: a configuration from the server's own metadata.

use crate::config::AuthConfig;
use crate::error::AuthError;
use crate::internal::protocol::discovery;
use crate::internal::protocol::request;
use crate::internal::transport;
use crate::transport::HttpTransport;
use std::time::{Duration, SystemTime};

/// How long one metadata request may take.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(30);

impl AuthConfig {
    /// Fetches the metadata of `issuer` (RFC 8414
    /// `/.well-known/oauth-authorization-server`, then OpenID Connect
    /// `/.well-known/openid-configuration`) and builds a configuration for
    /// `client_id` with its token, revocation, authorization and device endpoints.
    ///
    /// The document's `issuer` must be exactly `issuer` (RFC 8414 §3.3), else
    /// [`AuthError::IssuerMismatch`]: metadata that names another issuer could send
    /// the user's credentials to an impostor. The issuer is kept, so authorization
    /// responses are checked against it (RFC 9207). Redirects are not followed.
    /// (Feature `reqwest`; see [`discover_through`](Self::discover_through) for the
    /// app's own HTTP stack.)
    #[cfg(feature = "reqwest")]
    pub async fn discover(issuer: &str, client_id: impl Into<String>) -> Result<AuthConfig, AuthError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|_| AuthError::config("could not initialise the HTTP client (TLS backend)"))?;
        Self::discover_with(&http, issuer, client_id).await
    }

    /// [`discover`](Self::discover) with the app's own HTTP client.
    #[cfg(feature = "reqwest")]
    pub async fn discover_with(
        http: &reqwest::Client,
        issuer: &str,
        client_id: impl Into<String>,
    ) -> Result<AuthConfig, AuthError> {
        let transport = crate::transport::ReqwestTransport::new(http.clone());
        Self::discover_through(&transport, issuer, client_id).await
    }

    /// [`discover`](Self::discover) through the app's own
    /// [`HttpTransport`] (OkHttp, URLSession, or any other stack).
    pub async fn discover_through(
        http: &dyn HttpTransport,
        issuer: &str,
        client_id: impl Into<String>,
    ) -> Result<AuthConfig, AuthError> {
        let issuer_url = crate::config::checked_endpoint("issuer", issuer, &[])?;
        let mut last_status = 404;
        for url in discovery::metadata_urls(&issuer_url) {
            let response = transport::exchange(http, request::get(url, DISCOVERY_TIMEOUT), SystemTime::now()).await?;
            if !(200..300).contains(&response.status) {
                // Not at this well-known location: try the next one.
                last_status = response.status;
                continue;
            }
            let metadata = discovery::parse(&response, issuer)?;
            let token_endpoint = metadata.token_endpoint.ok_or_else(|| AuthError::InvalidResponse {
                status: response.status,
                reason: "the server metadata has no token_endpoint".into(),
                source: None,
            })?;
            let mut config = AuthConfig::new(token_endpoint, client_id)
                .issuer(metadata.issuer, metadata.authorization_response_iss_parameter_supported);
            config.revocation_endpoint = metadata.revocation_endpoint;
            config.authorization_endpoint = metadata.authorization_endpoint;
            config.device_authorization_endpoint = metadata.device_authorization_endpoint;
            // RFC 9449 §5.1: DpopMode::IfSupported sends proofs only if ES256 is offered.
            config.dpop_advertised = Some(
                metadata
                    .dpop_signing_alg_values_supported
                    .is_some_and(|algs| algs.iter().any(|a| a == "ES256")),
            );
            // Endpoints from the document follow the same https-or-loopback rule as typed ones.
            config.validate()?;
            return Ok(config);
        }
        Err(AuthError::InvalidResponse {
            status: last_status,
            reason: "no authorization server metadata at the RFC 8414 or OpenID Connect well-known URL".into(),
            source: None,
        })
    }
}
