//! Sign-ins that survive process death, for Kotlin and Swift: `saveAuthorization`
//! turns a [`PendingAuthorization`] into an opaque string whose secrets are sealed
//! (AES-256-GCM, the key in the app's [`TokenStore`](super::TokenStore)), safe in an
//! Android `Bundle` or a file; a new process completes it with
//! `completeSavedAuthorization`. The rules (lifetime, one completion, refusals) are
//! `tokenkeeper::signin::saved`'s; this file only converts.
//!
//! ```kotlin
//! // Before opening the browser, and in onSaveInstanceState:
//! outState.putString("signin", client.saveAuthorization(pending))
//! // In the redirect activity, maybe in a new process:
//! val session = client.completeSavedAuthorization(saved, intent.data.toString())
//! ```

use super::client::{AuthClient, Session};
use super::error::AuthError;
use super::runtime::run;
use super::signin::PendingAuthorization;
use std::sync::Arc;

#[uniffi::export]
impl AuthClient {
    /// The sign-in as a sealed string, completable by a new process on the same store
    /// for 15 minutes, once. Throws `InvalidConfig` without a store.
    pub async fn save_authorization(&self, pending: Arc<PendingAuthorization>) -> Result<String, AuthError> {
        let client = self.core().clone();
        let pending = pending.core();
        run(async move { client.save_authorization(&pending).await }).await
    }

    /// Opens a saved sign-in (the URL, redirect URI and nonce are readable again).
    /// Throws `SavedSignInRefused` when it expired, was completed, is unreadable or its
    /// key is gone.
    pub async fn resume_authorization(&self, saved: String) -> Result<Arc<PendingAuthorization>, AuthError> {
        let client = self.core().clone();
        let pending = run(async move { client.resume_authorization(&saved).await }).await?;
        Ok(PendingAuthorization::wrap(pending))
    }

    /// Completes a saved sign-in with the redirect URL: `resumeAuthorization` then
    /// `completeAuthorization`. Throws what both throw.
    pub async fn complete_saved_authorization(
        &self,
        saved: String,
        redirect_url: String,
    ) -> Result<Arc<Session>, AuthError> {
        let client = self.core().clone();
        run(async move { client.complete_saved_authorization(&saved, &redirect_url).await })
            .await
            .map(Session::wrap)
    }
}
