//! Pushed authorization requests (RFC 9126): the authorization request's parameters
//! go to the server in a back-channel POST, and the browser opens a short URL that
//! names them by `request_uri`, so nothing of the request can be read or changed in
//! the browser, and servers that require PAR can be used at all.

use super::authorization::{AuthorizationRequest, PendingAuthorization};
use super::endpoint;
use crate::client::AuthClient;
use crate::error::AuthError;
use crate::internal::protocol::{error_response, request};
use crate::internal::transport;
use serde::Deserialize;

#[derive(Deserialize)]
struct PushResponse {
    request_uri: Option<String>,
}

impl AuthClient {
    /// Starts a browser sign-in the way the server wants it: pushed (RFC 9126) when
    /// the configuration names a `pushed_authorization_request_endpoint` (as
    /// [`AuthConfig::discover`](crate::AuthConfig::discover) does from the metadata),
    /// else exactly [`authorization_request`](Self::authorization_request). Open
    /// [`PendingAuthorization::url`] and finish with
    /// [`complete_authorization`](Self::complete_authorization) either way.
    pub async fn start_authorization(&self, request: AuthorizationRequest) -> Result<PendingAuthorization, AuthError> {
        if self.context().config.oidc.par_endpoint.is_none() {
            return self.authorization_request(request);
        }
        self.push_authorization_request(request).await
    }

    /// Pushes the authorization request (RFC 9126 §2) with the client's
    /// authentication, and returns the sign-in whose URL carries only `client_id`
    /// and the server's `request_uri`. An error answer from the push is typed like
    /// a token endpoint's (`invalid_request`, `invalid_client`, …, §2.3); a 2xx
    /// without `request_uri` is [`AuthError::InvalidResponse`].
    pub async fn push_authorization_request(
        &self,
        request: AuthorizationRequest,
    ) -> Result<PendingAuthorization, AuthError> {
        let ctx = self.context();
        let config = &ctx.config;
        let par = endpoint(
            config,
            "pushed authorization request endpoint",
            config.oidc.par_endpoint.as_deref(),
        )?;
        let mut pending = self.prepare_authorization(request)?;
        let full =
            url::Url::parse(pending.url()).map_err(|_| AuthError::config("the authorization URL is not valid"))?;
        let params: Vec<(String, String)> = full.query_pairs().into_owned().collect();
        let outgoing = request::pushed_authorization_request(ctx, &par, &params);
        let response = transport::exchange(&*ctx.transport, outgoing, ctx.clock().now()).await?;
        if !(200..300).contains(&response.status) {
            return Err(error_response::error_for(&response));
        }
        let request_uri = serde_json::from_slice::<PushResponse>(response.body.as_slice())
            .ok()
            .and_then(|r| r.request_uri)
            .filter(|uri| !uri.is_empty() && uri.len() <= 2048)
            .ok_or_else(|| AuthError::InvalidResponse {
                status: response.status,
                reason: "the pushed authorization request answer has no request_uri".into(),
                source: None,
            })?;
        let mut short = full;
        short.set_query(None);
        short
            .query_pairs_mut()
            .append_pair("client_id", &config.client_id)
            .append_pair("request_uri", &request_uri);
        pending.url = short.into();
        Ok(pending)
    }
}
