//! The session's DPoP key (RFC 9449): created when the session first needs a proof,
//! kept for the session's life, forgotten at logout. Tokens are bound to it, so it
//! never changes while they live.

use super::SessionCore;
use crate::dpop::SoftwareDpopKey;
use crate::error::{AuthError, ErrorSource};
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
        let rare = state.rare_mut();
        if let Some(binding) = &rare.dpop {
            return Ok(Some(Arc::clone(binding)));
        }
        // ring's key generation is one CSPRNG read and a scalar multiplication
        // (tens of microseconds): fine under a lock never held across an await.
        let key = SoftwareDpopKey::generate().map_err(|error| AuthError::Storage {
            reason: error.to_string(),
            source: Some(ErrorSource::new(error)),
        })?;
        let binding = Arc::new(Binding::new(Arc::new(key)));
        rare.dpop = Some(Arc::clone(&binding));
        Ok(Some(binding))
    }

    /// Drops the key (logout): nothing signed with it is of use any more.
    pub(crate) fn forget_dpop_key(&self) {
        if let Some(rare) = self.state().rare.as_mut() {
            rare.dpop = None;
        }
    }
}
