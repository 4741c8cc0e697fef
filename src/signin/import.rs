//! Token import: a session from tokens the app already holds (another SDK did the
//! sign-in, or an older version of the app stored them).

use crate::client::AuthClient;
use crate::error::AuthError;
use crate::identity::TokenParams;
use crate::internal::protocol::jwt;
use crate::internal::protocol::token_response::IssuedToken;
use crate::session::Session;
use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Longest token accepted, as for token responses.
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Tokens to import with [`AuthClient::import_tokens`]. `Debug` redacts them.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tokenkeeper::signin::ImportedTokens;
/// use tokenkeeper::SecretString;
/// let tokens = ImportedTokens::new(SecretString::from("access…"))
///     .refresh_token(SecretString::from("refresh…"))
///     .expires_at(SystemTime::now() + Duration::from_secs(600))
///     .scope("read write");
/// assert!(!format!("{tokens:?}").contains("access…"));
/// ```
#[derive(Clone)]
pub struct ImportedTokens {
    access_token: SecretString,
    refresh_token: Option<SecretString>,
    expires_at: Option<SystemTime>,
    scope: Option<String>,
}

impl ImportedTokens {
    /// An access token. Without [`expires_at`](Self::expires_at) its lifetime is the
    /// JWT `exp` claim if it has one, else the config's `default_token_lifetime`.
    pub fn new(access_token: SecretString) -> Self {
        Self {
            access_token,
            refresh_token: None,
            expires_at: None,
            scope: None,
        }
    }

    /// The refresh token: it keeps the session alive (and is persisted in the store).
    pub fn refresh_token(mut self, refresh_token: SecretString) -> Self {
        self.refresh_token = Some(refresh_token);
        self
    }

    /// When the access token expires. A time in the past is fine: the first
    /// `access_token()` then refreshes.
    pub fn expires_at(mut self, expires_at: SystemTime) -> Self {
        self.expires_at = Some(expires_at);
        self
    }

    /// The scopes the access token was granted (space-separated, RFC 6749 §3.3).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }
}

impl fmt::Debug for ImportedTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImportedTokens")
            .field("access_token", &"[redacted]")
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "[redacted]"))
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .finish()
    }
}

impl AuthClient {
    /// A session for the account the app calls `account`, from tokens it already
    /// has. No network traffic; the session refreshes like any other.
    pub async fn import_tokens(
        &self,
        account: &str,
        params: TokenParams,
        tokens: ImportedTokens,
    ) -> Result<Arc<Session>, AuthError> {
        check("access token", &tokens.access_token)?;
        if let Some(refresh) = &tokens.refresh_token {
            check("refresh token", refresh)?;
        }
        let identity = self.account_identity(account, params)?;
        let ctx = self.context();
        let now = ctx.clock().now();
        let lifetime = match tokens
            .expires_at
            .or_else(|| jwt::expiry(tokens.access_token.expose_secret()))
        {
            Some(at) => at.duration_since(now).unwrap_or(Duration::ZERO),
            None => ctx.config.default_token_lifetime,
        }
        .min(crate::config::MAX_TOKEN_LIFETIME);
        let issued = IssuedToken {
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            scope: tokens.scope,
            lifetime,
            refresh_expires_at: None,
            token_type: crate::token::TokenType::Bearer,
        };
        self.install_signed_in(identity, issued, now, None).await
    }
}

/// Tokens go into HTTP headers: short, visible ASCII (RFC 6750 §2.1).
fn check(name: &str, token: &SecretString) -> Result<(), AuthError> {
    let value = token.expose_secret();
    if value.is_empty() || value.len() > MAX_TOKEN_LEN || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(AuthError::config(format!(
            "the imported {name} is empty, longer than 16 KiB or not visible ASCII"
        )));
    }
    Ok(())
}
