//! The OpenID Connect side of a [`Session`]: who signed in (the ID token's claims)
//! and what the UserInfo endpoint says about them.

use crate::error::{AuthError, JwtCheck, JwtError};
use crate::internal::protocol::request;
use crate::internal::{recovery, transport};
use crate::oidc::IdTokenClaims;
use crate::session::Session;
use crate::token::AccessToken;
use secrecy::ExposeSecret;
use serde_json::{Map, Value};

impl Session {
    /// The claims of the session's last validated ID token (`sub`, `name`, `email`,
    /// … and every other claim in [`IdTokenClaims::all`]): what an account screen
    /// shows, without a request. `None` when `openid` was not in scope or no ID token
    /// has been validated yet. A refresh that brings a new ID token replaces them
    /// (same `iss` and `sub`, OIDC Core §12.2); logout clears them.
    pub fn id_token_claims(&self) -> Option<IdTokenClaims> {
        self.core().id_token_claims().map(|claims| (*claims).clone())
    }
}

impl Session {
    /// The UserInfo claims (OIDC Core §5.3), fetched with the session's access token
    /// (renewed and retried once after a 401, like [`send`](Self::send)). Their `sub`
    /// must be the ID token's (§5.3.2), else [`AuthError::InvalidJwt`] with
    /// [`JwtCheck::SubjectChanged`]; `iss` is the session's issuer. A signed or
    /// encrypted UserInfo response (`application/jwt`) is not supported.
    ///
    /// Needs [`AuthConfig::userinfo_endpoint`](crate::AuthConfig::userinfo_endpoint)
    /// (or [`AuthConfig::discover`](crate::AuthConfig::discover)).
    pub async fn userinfo(&self) -> Result<IdTokenClaims, AuthError> {
        let ctx = &self.core().ctx;
        let url = crate::signin::endpoint(
            &ctx.config,
            "userinfo endpoint",
            ctx.config.oidc.userinfo_endpoint.as_deref(),
        )?;
        let fetch = |token: AccessToken| {
            let url = url.clone();
            async move {
                let outgoing = request::bearer_get(url, ctx.config.request_timeout, token.expose_secret());
                let response = transport::exchange(&*ctx.transport, outgoing, ctx.clock().now()).await?;
                Ok::<_, AuthError>((
                    response.status,
                    response.header_values("www-authenticate"),
                    response.body,
                ))
            }
        };
        let token = self.access_token().await?;
        let mut answer = fetch(token.clone()).await?;
        if answer.0 == 401 {
            // The same decision as `send`: renew a revoked token and ask once more.
            if let Some(renewed) = recovery::after_unauthorized(self.core(), token.expose_secret(), &answer.1).await? {
                answer = fetch(renewed).await?;
            }
        }
        let (status, _, body) = answer;
        let invalid = |reason: &str| AuthError::InvalidResponse {
            status,
            reason: format!("the UserInfo endpoint {reason}"),
            source: None,
        };
        if status == 401 {
            return Err(AuthError::reauthenticate(
                "the UserInfo endpoint rejected the renewed access token",
            ));
        }
        if !(200..300).contains(&status) {
            return Err(invalid("did not answer with the claims"));
        }
        let mut claims: Map<String, Value> = serde_json::from_slice(body.as_slice())
            .map_err(|_| invalid("answered with something other than a JSON object"))?;
        let known = self.core().id_token_claims();
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("answered without sub"))?;
        if let Some(known) = &known {
            if known.subject != sub {
                return Err(AuthError::InvalidJwt(JwtError {
                    check: JwtCheck::SubjectChanged,
                    reason: "the UserInfo sub is not the ID token's".into(),
                }));
            }
        }
        let issuer = known
            .map(|k| k.issuer.clone())
            .or_else(|| ctx.config.issuer.clone())
            .unwrap_or_default();
        claims.entry("iss").or_insert(Value::String(issuer));
        IdTokenClaims::from_map(claims).ok_or_else(|| invalid("answered with a non-string iss or sub"))
    }
}
