//! DPoP (RFC 9449) for Kotlin and Swift: the [`DpopMode`] of the exported config and,
//! for apps that send requests with their own HTTP stack (the OkHttp interceptor and
//! the URLSession helper among them), the two header values of one request
//! ([`AuthorizationHeaders`]) and the hand-back of a server's `DPoP-Nonce`.
//!
//! The proof is built and signed in the core, with the session's software key (kept
//! in the session record, so in the app's `TokenStore`). Keys held by the Android
//! Keystore or the Secure Enclave need a foreign key seam the core does not have yet.

use super::client::Session;
use super::error::AuthError;
use super::runtime::run;
use secrecy::ExposeSecret;
use std::fmt;
use std::sync::Arc;

/// Whether the client sender-constrains its tokens with DPoP. See `tokenkeeper::DpopMode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum DpopMode {
    /// Plain bearer tokens (the default).
    Off,
    /// Proofs unless the discovered metadata lacks `dpop_signing_alg_values_supported`.
    IfSupported,
    /// Proofs always; a `token_type: Bearer` answer is an error, never a downgrade.
    Required,
}

impl From<DpopMode> for sdk::DpopMode {
    fn from(mode: DpopMode) -> Self {
        match mode {
            DpopMode::Off => Self::Off,
            DpopMode::IfSupported => Self::IfSupported,
            DpopMode::Required => Self::Required,
        }
    }
}

/// The headers of one request to a resource server: `Authorization` (`DPoP <token>`
/// or `Bearer <token>`) and, for a DPoP token, the `DPoP` proof made for exactly this
/// method and URL (single use: ask again for every request, retries included).
///
/// Security: both values carry the token; send them only to the resource server and
/// never log them. `toString()` / description redacts them.
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
#[uniffi::export(Debug)]
pub struct AuthorizationHeaders {
    /// The `Authorization` header value.
    pub authorization: String,
    /// The `DPoP` header value; `null`/`nil` for a bearer token.
    pub dpop: Option<String>,
    /// The token value alone, to hand back to `handleUnauthorizedValue` after a 401.
    pub token: String,
}

impl fmt::Debug for AuthorizationHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationHeaders")
            .field("authorization", &"[redacted]")
            .field("dpop", &self.dpop.as_ref().map(|_| "[redacted]"))
            .field("token", &"[redacted]")
            .finish()
    }
}

#[uniffi::export]
impl Session {
    /// The header values for a `method` request to `url` with a valid token (getting
    /// one first if needed): for apps with their own HTTP stack. After a 401 whose
    /// `WWW-Authenticate` says `use_dpop_nonce`, hand the response's `DPoP-Nonce` to
    /// [`dpop_nonce_received`](Self::dpop_nonce_received), pass the 401 to
    /// `handleUnauthorizedValue` (it returns the same token: not a revocation) and ask
    /// for new headers once.
    pub async fn authorization_headers(&self, method: String, url: String) -> Result<AuthorizationHeaders, AuthError> {
        let session = Arc::clone(&self.inner);
        run(async move { session.authorization_headers(&method, &url).await })
            .await
            .map(|headers| AuthorizationHeaders {
                authorization: headers.authorization().expose_secret().to_owned(),
                dpop: headers.dpop().map(|proof| proof.expose_secret().to_owned()),
                token: headers.token().expose_secret().to_owned(),
            })
    }

    /// Hands over a `DPoP-Nonce` response header from `url`'s server, so the next
    /// proof for that origin carries it.
    pub fn dpop_nonce_received(&self, url: String, nonce: String) {
        self.inner.dpop_nonce_received(&url, &nonce);
    }

    /// The RFC 7638 thumbprint (`jkt`) of the session's DPoP key; `null`/`nil` when
    /// the client sends no proofs.
    pub fn dpop_thumbprint(&self) -> Result<Option<String>, AuthError> {
        self.inner.dpop_thumbprint().map_err(AuthError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_token_and_the_proof() {
        let headers = AuthorizationHeaders {
            authorization: "DPoP secret-token".into(),
            dpop: Some("proof.jwt.sig".into()),
            token: "secret-token".into(),
        };
        let shown = format!("{headers:?}");
        assert!(
            !shown.contains("secret-token") && !shown.contains("proof.jwt"),
            "{shown}"
        );
    }
}
