//! The session's side of [`SharedTokens`](crate::SharedTokens) (a server fleet's
//! shared access tokens): read inside a flight (before the refresh lock, and again once
//! it holds it), publish after a token request, withdraw after a revocation 401 or
//! `invalidate()`.
//!
//! Every call is bounded by `AuthConfig::store_timeout` and its failure is only
//! logged: without the fleet the session still has its own single flight, so a slow
//! or failing store costs token requests, never a hung or failed call.

use crate::internal::session_core::SessionCore;
use crate::internal::token_set::TokenSet;
use crate::storage::{SharedToken, StoreFuture};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;

async fn bounded<T>(core: &SessionCore, what: &str, call: StoreFuture<'_, T>) -> Option<T> {
    match tokio::time::timeout(core.ctx.config.store_timeout, call).await {
        Ok(Ok(value)) => Some(value),
        Ok(Err(error)) => {
            tracing::warn!(%error, what, "the shared token store failed; going on alone");
            None
        }
        Err(_) => {
            tracing::warn!(what, "the shared token store did not answer in time; going on alone");
            None
        }
    }
}

/// Inside a flight: the fleet's token, adopted if it is newer than the one held and
/// not yet due for refresh (another instance just obtained it), so this flight sends
/// no request. Safe with or without the refresh lock: adoption never moves back.
pub(crate) async fn adopt(core: &SessionCore, epoch: u64) -> Option<Arc<TokenSet>> {
    let shared = core.ctx.shared.as_ref()?;
    let key = core.persistence().key();
    let token = bounded(core, "read", shared.read(key)).await??;
    let now = core.now();
    let candidate = TokenSet::new(
        token.access_token.expose_secret(),
        token.scope.as_deref(),
        now,
        token.expires_at,
        core.ctx.config.refresh_margin,
        None,
        core.tick(),
    );
    if !candidate.is_fresh(now) {
        return None;
    }
    core.adopt_shared(epoch, candidate)
}

/// After a token request: the token for the rest of the fleet.
pub(crate) async fn publish(core: &SessionCore, set: &TokenSet) {
    let Some(shared) = core.ctx.shared.as_ref() else {
        return;
    };
    let token = SharedToken {
        access_token: SecretString::from(set.token.expose_secret()),
        expires_at: set.expires_at,
        scope: set.token.scope().map(str::to_owned),
    };
    bounded(core, "publish", shared.publish(core.persistence().key(), &token)).await;
}

/// The session logged out: the other holders end theirs (without revoking).
pub(crate) async fn announce_logout(core: &SessionCore) {
    let Some(shared) = core.ctx.shared.as_ref() else {
        return;
    };
    bounded(
        core,
        "announce the logout",
        shared.announce_logout(core.persistence().key()),
    )
    .await;
}

/// `failed` is revoked (a 401) or invalidated: no instance may adopt it again.
pub(crate) async fn withdraw(core: &SessionCore, failed: &str) {
    let Some(shared) = core.ctx.shared.as_ref() else {
        return;
    };
    let failed = SecretString::from(failed);
    bounded(core, "withdraw", shared.withdraw(core.persistence().key(), &failed)).await;
}
