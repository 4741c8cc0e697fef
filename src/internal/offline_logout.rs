//! Offline logout: a logout succeeds locally even when the revocation endpoint
//! cannot be reached. What it could not revoke (the refresh token, and the access
//! token) is kept in the store beside the session's key (`<key>#revoke`, the
//! session record format; `Persistence::queue_revocation`) and sent later:
//! - on a timer, a few attempts with a doubling wait (30 s, 1 min, … about 2 h in
//!   all) on the client's clock;
//! - as soon as any session of the same client gets an answer from the token
//!   endpoint (the server is reachable again; `SessionCore::commit` calls
//!   [`server_reachable`]);
//! - when the app restarts and restores or signs in that identity (the restore
//!   flushes first).
//!
//! A DPoP session's key is queued with its tokens, so the revocations carry proofs.
//! The queued entry is removed once the server answered: revoked, or refused for
//! good (an OAuth error is not retried). A logout without a store, or whose queue
//! write fails, reports the revocation error as before.

use crate::error::AuthError;
use crate::identity::Identity;
use crate::internal::context::ClientContext;
use crate::internal::grants;
use crate::internal::persistence::{PersistSlot, Persistence};
use std::sync::Arc;
use std::time::Duration;

/// The timer's first wait; each later one doubles.
const FIRST_RETRY: Duration = Duration::from_secs(30);
/// Timer attempts before the queue waits for another trigger (a token answer, a
/// restart): 30 s doubling eight times covers about two hours.
const TIMER_ATTEMPTS: u32 = 8;

/// The identities with a queued revocation, and those being sent right now (so a
/// timer and a trigger never send the same revocation twice).
#[derive(Default)]
pub(crate) struct Queue {
    pending: Vec<Identity>,
    sending: Vec<Identity>,
}

/// Marks an identity as being sent; unmarks it on drop (a cancelled or panicking
/// flush cannot leave it marked).
struct Sending<'a> {
    ctx: &'a ClientContext,
    identity: &'a Identity,
}

impl<'a> Sending<'a> {
    fn claim(ctx: &'a ClientContext, identity: &'a Identity) -> Option<Self> {
        let mut queue = lock(ctx);
        if queue.sending.contains(identity) {
            return None;
        }
        queue.sending.push(identity.clone());
        Some(Self { ctx, identity })
    }
}

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        lock(self.ctx).sending.retain(|sending| sending != self.identity);
    }
}

/// What a [`flush`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Flushed {
    /// Nothing was queued for the identity.
    Nothing,
    /// The server answered; the queued entry is gone.
    Sent,
    /// Still unreachable; the entry stays queued.
    Unreachable,
}

/// Sends the queued revocation of `identity`, if there is one.
pub(crate) async fn flush(ctx: &ClientContext, identity: &Identity) -> Result<Flushed, AuthError> {
    let slot = PersistSlot::default();
    let persistence = Persistence::new(ctx, identity, &slot);
    if !persistence.is_configured() {
        return Ok(Flushed::Nothing);
    }
    let Some(_sending) = Sending::claim(ctx, identity) else {
        // Another flush of this identity is under way and will finish the job.
        return Ok(Flushed::Unreachable);
    };
    let Some(queued) = persistence.queued_revocation().await? else {
        forget(ctx, identity);
        return Ok(Flushed::Nothing);
    };
    // The session is gone, but its DPoP key was queued with its tokens: bound tokens
    // are revoked with a proof, as the logout would have.
    let revoked = grants::revoke_with(
        ctx,
        queued.dpop.as_deref(),
        Some(&queued.refresh),
        queued.access.as_ref(),
    );
    match revoked.await {
        Err(error) if error.is_retryable() => return Ok(Flushed::Unreachable),
        Err(error) => tracing::warn!(%error, "the server refused a queued revocation; dropping it"),
        Ok(()) => tracing::info!(identity = %identity, "sent a revocation queued by an offline logout"),
    }
    persistence.clear_revocation().await?;
    // The key lived on for this revocation's proofs; nothing needs it now.
    if let Some(binding) = &queued.dpop {
        binding.retire();
    }
    forget(ctx, identity);
    Ok(Flushed::Sent)
}

/// After a logout queued a revocation: remembers the identity and arms the timer.
pub(crate) fn retry_later(ctx: Arc<ClientContext>, identity: Identity) {
    remember(&ctx, &identity);
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return; // the next token answer or restart sends it
    };
    runtime.spawn(async move {
        let mut wait = FIRST_RETRY;
        for _ in 0..TIMER_ATTEMPTS {
            ctx.clock().sleep(wait).await;
            match flush(&ctx, &identity).await {
                Ok(Flushed::Unreachable) | Err(_) => wait = wait.saturating_mul(2),
                Ok(Flushed::Sent | Flushed::Nothing) => return,
            }
        }
    });
}

/// The token endpoint just answered: sends every revocation this client queued.
/// Cheap when nothing is queued (one uncontended lock).
pub(crate) fn server_reachable(ctx: &Arc<ClientContext>) {
    let pending = std::mem::take(&mut lock(ctx).pending);
    if pending.is_empty() {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        lock(ctx).pending.extend(pending);
        return;
    };
    let ctx = Arc::clone(ctx);
    runtime.spawn(async move {
        for identity in pending {
            if !matches!(flush(&ctx, &identity).await, Ok(Flushed::Sent | Flushed::Nothing)) {
                remember(&ctx, &identity);
            }
        }
    });
}

fn lock(ctx: &ClientContext) -> std::sync::MutexGuard<'_, Queue> {
    ctx.pending_revocations.lock().unwrap_or_else(|p| p.into_inner())
}

fn remember(ctx: &ClientContext, identity: &Identity) {
    let mut queue = lock(ctx);
    if !queue.pending.contains(identity) {
        queue.pending.push(identity.clone());
    }
}

fn forget(ctx: &ClientContext, identity: &Identity) {
    lock(ctx).pending.retain(|queued| queued != identity);
}
