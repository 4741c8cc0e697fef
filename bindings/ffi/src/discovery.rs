//! A client from the authorization server's metadata (RFC 8414, OpenID Connect
//! Discovery) for Kotlin and Swift: `tokenkeeper::AuthConfig::discover` with the app's
//! callbacks. The hand-written `AuthClient.discover` (Kotlin) and
//! `AuthClient.discover(issuer:…)` (Swift) wrap it.
//!
//! The metadata gives the endpoints and the issuer (so redirects are checked against
//! it, RFC 9207); the app's `settings` give everything else (secret, scopes, policies,
//! timeouts). Metadata that names another issuer is `IssuerMismatch`.

use super::client::AuthClient;
use super::clock::ManualClock;
use super::config::AuthConfig;
use super::error::AuthError;
use super::events::AuthEventListener;
use super::runtime::run;
use super::store::TokenStore;
use super::transport::{ForeignTransport, HttpTransport};
use std::sync::Arc;

/// Fetches `issuer`'s metadata through `transport` (the library's own HTTP stack when
/// `null`; the `mobile` build has none) and creates the client for `client_id`. Every
/// setting of `settings` but its endpoints, issuer and client id applies; `store`,
/// `listener`, `clock` and `transport` are the constructor's.
#[uniffi::export(default(settings = None, store = None, listener = None, clock = None, transport = None))]
pub async fn discover_auth_client(
    issuer: String,
    client_id: String,
    settings: Option<AuthConfig>,
    store: Option<Arc<dyn TokenStore>>,
    listener: Option<Arc<dyn AuthEventListener>>,
    clock: Option<Arc<ManualClock>>,
    transport: Option<Arc<dyn HttpTransport>>,
) -> Result<Arc<AuthClient>, AuthError> {
    let via = transport.clone();
    let discovered = run(async move {
        match via {
            Some(transport) => {
                sdk::AuthConfig::discover_through(&ForeignTransport(transport), &issuer, client_id).await
            }
            None => without_transport(&issuer, client_id).await,
        }
    })
    .await?;
    let config = match settings {
        Some(settings) => settings.settings_onto(discovered),
        None => discovered,
    };
    AuthClient::build(config, store, listener, clock, transport)
}

#[cfg(feature = "reqwest")]
async fn without_transport(issuer: &str, client_id: String) -> Result<sdk::AuthConfig, sdk::AuthError> {
    sdk::AuthConfig::discover(issuer, client_id).await
}

#[cfg(not(feature = "reqwest"))]
async fn without_transport(_: &str, _: String) -> Result<sdk::AuthConfig, sdk::AuthError> {
    Err(sdk::AuthError::InvalidConfig {
        reason: "discovery needs the app's HTTP transport in this build (no built-in HTTP stack)".into(),
    })
}
