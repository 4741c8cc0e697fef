//! Signing a user in: the authorization code flow with PKCE (RFC 6749 §4.1,
//! RFC 7636, RFC 8252), the device authorization grant (RFC 8628), importing tokens
//! obtained elsewhere, and discovery of the server's endpoints (RFC 8414).
//!
//! Every flow ends with a [`Session`](crate::Session) registered in the
//! [`AuthClient`](crate::AuthClient) like any other, under
//! [`Subject::User`](crate::Subject::User) with the **account name the app gives**
//! when it starts the flow (a user name, an e-mail, or a label such as `"default"`).
//! The SDK does not read the name from the tokens: an access token is opaque to a
//! client (RFC 6749 §1.4). Use the same account name with
//! [`AuthClient::session`](crate::AuthClient::session) and
//! [`AuthClient::restore`](crate::AuthClient::restore).
//!
//! Such a session holds no password. After a revocation it recovers with its
//! refresh token; when that is rejected too it reports
//! [`AuthError::ReauthenticationRequired`]
//! and the app starts a new sign-in.
//!
//! ```no_run
//! use tokenkeeper::{AuthClient, AuthConfig};
//! use tokenkeeper::signin::{AuthorizationRequest, LoopbackRedirect};
//! # async fn run() -> Result<(), tokenkeeper::AuthError> {
//! let config = AuthConfig::discover("https://as.example.com", "my-native-app").await?;
//! let client = AuthClient::new(config)?;
//! let listener = LoopbackRedirect::bind().await?;             // desktop apps (RFC 8252 §7.3)
//! let pending = client.authorization_request(AuthorizationRequest::new("me", listener.redirect_uri()))?;
//! // open pending.url() in the system browser, then:
//! let session = listener.complete(&client, &pending).await?;  // the browser's page tells the outcome
//! # let _ = session; Ok(()) }
//! ```

mod authorization;
mod device;
mod discovery;
mod import;
mod loopback;
mod par;
mod saved;

pub use authorization::{AuthorizationRequest, PendingAuthorization};
pub use device::DeviceAuthorization;
pub use import::ImportedTokens;
pub use loopback::{LoopbackCallback, LoopbackPages, LoopbackRedirect};
pub use saved::{SavedSignInRefusal, SAVED_SIGN_IN_LIFETIME};

use crate::error::AuthError;
use crate::identity::Identity;
use crate::internal::context::ClientContext;
use crate::internal::dpop::Binding;
use crate::internal::protocol::request::{self, Grant};
use crate::internal::protocol::token_response::{self, IssuedToken};
use std::time::SystemTime;

/// One token request for a one-time grant (a code or a device code). Not
/// retried: a code is spent by the first request that reaches the server, so a
/// retry could only turn a lost answer into an `invalid_grant`.
async fn one_time_grant(
    ctx: &ClientContext,
    identity: &Identity,
    grant: &Grant<'_>,
    dpop: Option<&Binding>,
) -> Result<(IssuedToken, SystemTime), AuthError> {
    let build = || request::token_request(ctx, identity, grant);
    let (response, sent_at) =
        crate::internal::dpop::authorization_server_exchange(ctx, dpop, &ctx.token_url, build).await?;
    let issued = token_response::parse(&response, sent_at, ctx.config.default_token_lifetime)?;
    crate::internal::dpop::check_token_type(ctx, dpop.is_some(), issued.token_type)?;
    tracing::info!(identity = %identity, grant = grant.name(), "signed in");
    Ok((issued, sent_at))
}

/// The key a sign-in binds its code and tokens to, when the client sends DPoP proofs:
/// made when the sign-in starts, handed to the session it ends in.
fn sign_in_key(ctx: &ClientContext, identity: &Identity) -> Result<Option<std::sync::Arc<Binding>>, AuthError> {
    let store_key = || crate::storage::key::store_key(ctx.token_url.as_str(), &ctx.config.client_id, identity);
    ctx.dpop
        .as_ref()
        .map(|_| Binding::generate(ctx, &store_key()))
        .transpose()
}

/// A configured sign-in endpoint, parsed and held to the https-or-loopback rule.
pub(crate) fn endpoint(
    config: &crate::AuthConfig,
    name: &str,
    configured: Option<&str>,
) -> Result<url::Url, AuthError> {
    let raw = configured.ok_or_else(|| {
        AuthError::config(format!(
            "no {name} is configured (AuthConfig::{}, or AuthConfig::discover)",
            name.replace(' ', "_")
        ))
    })?;
    crate::config::checked_endpoint(name, raw, &config.development_http_hosts)
}
