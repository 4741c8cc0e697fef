//! The session's DPoP key (RFC 9449): created when the session first needs a proof,
//! kept for the session's life, forgotten at logout. Tokens are bound to it, so it
//! never changes while they live.

use super::{SessionCore, Standing};
use crate::error::AuthError;
use crate::internal::dpop::Binding;
use std::sync::Arc;

impl SessionCore {
    /// The key to sign this session's proofs with, or `None` when the client sends no
    /// proofs. Made under the state lock, so two first callers get the same key.
    pub(crate) fn dpop_binding(&self) -> Result<Option<Arc<Binding>>, AuthError> {
        if self.ctx.dpop.is_none() {
            return Ok(None);
        }
        let mut state = self.state();
        if let Some(binding) = state.rare.as_ref().and_then(|rare| rare.dpop.as_ref()) {
            return Ok(Some(Arc::clone(binding)));
        }
        if matches!(state.standing, Standing::LoggedOut) {
            // A logged-out session keeps no key: one made now (for a late request's
            // proof) is owned by nobody, so a platform key is deleted with its last use.
            drop(state);
            return Binding::generate(&self.ctx, self.persistence().key()).map(Some);
        }
        let rare = state.rare_mut();
        // ring's key generation is one CSPRNG read and a scalar multiplication (tens
        // of microseconds), a platform key store's a few milliseconds: fine under a
        // lock never held across an await, and two first callers get one key.
        let binding = Binding::generate(&self.ctx, self.persistence().key())?;
        rare.dpop = Some(Arc::clone(&binding));
        Ok(Some(binding))
    }

    /// Adopts the key a sign-in's tokens are bound to (the code's `dpop_jkt` and the
    /// token request's proof were made with it); it replaces any key the session had,
    /// which is returned so the caller retires it once the sign-in is installed.
    pub(crate) fn install_dpop_binding(&self, binding: Arc<Binding>) -> Option<Arc<Binding>> {
        let previous = self.state().rare_mut().dpop.replace(Arc::clone(&binding));
        previous.filter(|previous| !Arc::ptr_eq(previous, &binding))
    }

    /// Drops the key (logout): nothing signed with it is of use any more. A platform
    /// key is deleted too, unless `queued`: a revocation waiting in the store still
    /// needs its proofs, and deletes the key once sent.
    pub(crate) fn forget_dpop_key(&self, queued: bool) {
        let forgotten = self.state().rare.as_mut().and_then(|rare| rare.dpop.take());
        if let Some(binding) = forgotten.filter(|_| !queued) {
            binding.retire();
        }
    }
}
