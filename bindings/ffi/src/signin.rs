//! User sign-in for Kotlin and Swift: the browser flow with PKCE (the app opens
//! [`PendingAuthorization::url`] in Custom Tabs / `ASWebAuthenticationSession` and
//! hands back the redirect URL), the device grant, and token import. See
//! `tokenkeeper::signin` for the rules; this file only converts.
//!
//! The methods below are on the generated `NativeAuthClient` and return native session
//! handles; apps call the hand-written Kotlin and Swift `AuthClient` wrappers, which
//! forward to them and return the wrapped `Session` (with its token mirror), exactly as
//! `login` does. Times are the bindings' own types ([`TimeSpan`], [`Moment`]), no
//! public type is unsigned.
//!
//! ```kotlin
//! val pending = client.authorizationRequest(account = "me", redirectUri = "com.example.app:/oauth2redirect")
//! customTabs.launchUrl(context, Uri.parse(pending.url()))
//! // … in the redirect activity:
//! val session = client.completeAuthorization(pending, intent.data.toString())
//! ```

use super::client::{AuthClient, Session};
use super::error::AuthError;
use super::runtime::run;
use super::units::{Moment, TimeSpan};
use sdk::TokenParams;
use secrecy::SecretString;
use std::collections::HashMap;
use std::sync::Arc;

/// A browser sign-in in progress. Keep it until the redirect arrives (the PKCE
/// verifier and `state` live in it, in memory); `saveAuthorization` makes a sealed
/// copy that survives the process.
#[derive(uniffi::Object)]
pub struct PendingAuthorization {
    inner: Arc<sdk::signin::PendingAuthorization>,
}

impl PendingAuthorization {
    pub(crate) fn wrap(pending: sdk::signin::PendingAuthorization) -> Arc<Self> {
        Arc::new(Self {
            inner: Arc::new(pending),
        })
    }

    pub(crate) fn core(&self) -> Arc<sdk::signin::PendingAuthorization> {
        Arc::clone(&self.inner)
    }
}

#[uniffi::export]
impl PendingAuthorization {
    /// The URL to open in the system browser (never a web view, RFC 8252 §8.12).
    pub fn url(&self) -> String {
        self.inner.url().to_owned()
    }

    /// The redirect URI the browser will come back to.
    pub fn redirect_uri(&self) -> String {
        self.inner.redirect_uri().to_owned()
    }

    /// The OpenID Connect `nonce`, if one was requested.
    pub fn nonce(&self) -> Option<String> {
        self.inner.nonce().map(str::to_owned)
    }
}

/// A device sign-in in progress: show [`user_code`](Self::user_code) and
/// [`verification_uri`](Self::verification_uri), then `completeDeviceAuthorization`.
#[derive(uniffi::Object)]
pub struct DeviceAuthorization {
    inner: Arc<sdk::signin::DeviceAuthorization>,
}

#[uniffi::export]
impl DeviceAuthorization {
    /// The code the user types on the verification page.
    pub fn user_code(&self) -> String {
        self.inner.user_code().to_owned()
    }

    /// The page where the user enters the code.
    pub fn verification_uri(&self) -> String {
        self.inner.verification_uri().to_owned()
    }

    /// The page with the code filled in (for a QR code), if the server sends one.
    pub fn verification_uri_complete(&self) -> Option<String> {
        self.inner.verification_uri_complete().map(str::to_owned)
    }

    /// When the codes expire, in seconds since the Unix epoch. Signed so Kotlin sees a
    /// `Long`, like every epoch value of the bindings.
    pub fn expires_at_epoch_seconds(&self) -> i64 {
        i64::try_from(self.inner.expires_at().epoch_seconds()).unwrap_or(i64::MAX)
    }

    /// The same instant as a platform type: `java.util.Date` in Kotlin, `Date` in Swift.
    pub fn expires_at(&self) -> Moment {
        Moment(self.inner.expires_at().as_system_time())
    }

    /// The polling interval the server asked for at the start (RFC 8628 §3.2):
    /// `kotlin.time.Duration` in Kotlin, `TimeInterval` in Swift. Polling itself
    /// happens in Rust, which also honours a later `slow_down`.
    pub fn interval(&self) -> TimeSpan {
        TimeSpan(self.inner.interval())
    }

    /// Stops `completeDeviceAuthorization`, which throws `AuthException.Cancelled`.
    /// (Cancelling the coroutine or Swift task does not stop the polling; this does.)
    pub fn cancel(&self) {
        self.inner.cancel();
    }
}

/// Tokens the app already has (another SDK signed the user in, or an older app
/// version stored them), for `importTokens`. Its `toString()` / description comes
/// from Rust and redacts both tokens.
#[derive(uniffi::Record)]
#[uniffi::export(Debug)]
pub struct ImportedTokens {
    /// The access token.
    pub access_token: String,
    /// The refresh token, if any: it keeps the session alive.
    #[uniffi(default = None)]
    pub refresh_token: Option<String>,
    /// When the access token expires, as a platform instant (`java.util.Date` in
    /// Kotlin, `Date` in Swift; other SDKs hand out the same types). Without it the
    /// lifetime is the JWT `exp` claim, else the config's default; a past instant is
    /// fine (the first `accessToken()` refreshes).
    #[uniffi(default = None)]
    pub expires_at: Option<Moment>,
    /// The scopes it was granted, space-separated.
    #[uniffi(default = None)]
    pub scope: Option<String>,
}

impl std::fmt::Debug for ImportedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportedTokens")
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

fn params(scopes: Option<Vec<String>>) -> TokenParams {
    scopes.map_or_else(TokenParams::new, |s| TokenParams::new().scopes(s))
}

#[uniffi::export]
impl AuthClient {
    /// Starts a browser sign-in for the account the app calls `account` (the session's
    /// user name): PKCE S256 and a fresh `state`. `scopes` replaces the config's;
    /// `extra_params` adds other query parameters; `options` the OpenID Connect ones
    /// (`max_age`, `prompt`, `login_hint`, `acr_values`). `openid` in scope implies a nonce.
    #[uniffi::method(default(scopes = None, extra_params = None, nonce = false, options = None))]
    pub fn authorization_request(
        &self,
        account: String,
        redirect_uri: String,
        scopes: Option<Vec<String>>,
        extra_params: Option<HashMap<String, String>>,
        nonce: bool,
        options: Option<super::oidc::SignInOptions>,
    ) -> Result<Arc<PendingAuthorization>, AuthError> {
        let mut request = sdk::signin::AuthorizationRequest::new(account, redirect_uri).params(params(scopes));
        if let Some(options) = options {
            request = options.apply(request);
        }
        if nonce {
            request = request.with_nonce();
        }
        let mut extra: Vec<(String, String)> = extra_params.unwrap_or_default().into_iter().collect();
        extra.sort();
        for (name, value) in extra {
            request = request.extra_param(name, value);
        }
        Ok(PendingAuthorization::wrap(self.core().authorization_request(request)?))
    }

    /// Finishes a browser sign-in with the URL the browser was redirected to. Throws
    /// `StateMismatch`, `IssuerMismatch`, `AccessDenied`, `InvalidRedirect`, or
    /// `InvalidGrant` (a spent or foreign code).
    pub async fn complete_authorization(
        &self,
        pending: Arc<PendingAuthorization>,
        redirect_url: String,
    ) -> Result<Arc<Session>, AuthError> {
        let client = self.core().clone();
        let pending = Arc::clone(&pending.inner);
        run(async move { client.complete_authorization(&pending, &redirect_url).await })
            .await
            .map(Session::wrap)
    }

    /// Starts a device sign-in (RFC 8628) for `account`.
    #[uniffi::method(default(scopes = None))]
    pub async fn start_device_authorization(
        &self,
        account: String,
        scopes: Option<Vec<String>>,
    ) -> Result<Arc<DeviceAuthorization>, AuthError> {
        let client = self.core().clone();
        let device = run(async move { client.start_device_authorization(&account, params(scopes)).await }).await?;
        Ok(Arc::new(DeviceAuthorization {
            inner: Arc::new(device),
        }))
    }

    /// Polls until the user approves; honours the server's interval and `slow_down`.
    /// Throws `AccessDenied`, `DeviceCodeExpired` or `Cancelled`.
    pub async fn complete_device_authorization(
        &self,
        device: Arc<DeviceAuthorization>,
    ) -> Result<Arc<Session>, AuthError> {
        let client = self.core().clone();
        let device = Arc::clone(&device.inner);
        run(async move { client.complete_device_authorization(&device).await })
            .await
            .map(Session::wrap)
    }

    /// A session for `account` from tokens the app already has; no network traffic.
    #[uniffi::method(default(scopes = None))]
    pub async fn import_tokens(
        &self,
        account: String,
        tokens: ImportedTokens,
        scopes: Option<Vec<String>>,
    ) -> Result<Arc<Session>, AuthError> {
        let mut imported = sdk::signin::ImportedTokens::new(SecretString::from(tokens.access_token));
        if let Some(refresh) = tokens.refresh_token {
            imported = imported.refresh_token(SecretString::from(refresh));
        }
        if let Some(at) = tokens.expires_at {
            // Moment saturates out-of-range instants, so no app value can overflow here.
            imported = imported.expires_at(at.0);
        }
        if let Some(scope) = tokens.scope {
            imported = imported.scope(scope);
        }
        let client = self.core().clone();
        run(async move { client.import_tokens(&account, params(scopes), imported).await })
            .await
            .map(Session::wrap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn imported_tokens_debug_redacts_both_tokens() {
        let tokens = ImportedTokens {
            access_token: "access-secret".into(),
            refresh_token: Some("refresh-secret".into()),
            expires_at: Some(Moment(UNIX_EPOCH + Duration::from_secs(1_700_000_000))),
            scope: Some("read".into()),
        };
        let printed = format!("{tokens:?}");
        assert!(!printed.contains("access-secret"), "{printed}");
        assert!(!printed.contains("refresh-secret"), "{printed}");
        assert!(printed.contains("read"), "{printed}");
    }
}
