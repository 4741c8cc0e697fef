//! The recovery circuit breaker: after [`BREAKER_LIMIT`] recoveries within
//! [`BREAKER_WINDOW`] whose new token was rejected before any request succeeded with
//! it, recovery pauses for [`BREAKER_PAUSE`] (the resource server, not the token, is
//! at fault, and every new token would cost a token request for nothing).

use super::{Breaker, SessionCore, BREAKER_LIMIT, BREAKER_PAUSE, BREAKER_WINDOW};
use crate::events::AuthEvent;
use crate::internal::token_set::TokenSet;
use crate::token::Timestamp;
use std::time::SystemTime;

impl SessionCore {
    /// Remembers that `set` came from a recovery and has not yet proven itself.
    pub(crate) fn note_recovered(&self, set: &TokenSet) {
        self.state().rare_mut().breaker.unproven_recovery = Some(set.origin_tick);
    }

    /// A request with `token` got an answer other than 401: a recovery that produced
    /// it helped. (Only `Session::send` sees the answers of the requests it authorizes.)
    #[cfg(feature = "reqwest")]
    pub(crate) fn note_accepted(&self, token: &str) {
        let held = self.token.load();
        let Some(set) = held.as_ref().filter(|set| set.holds(token)) else {
            return;
        };
        let mut state = self.state();
        if let Some(breaker) = state.rare.as_mut().map(|rare| &mut rare.breaker) {
            if breaker.unproven_recovery == Some(set.origin_tick) {
                breaker.unproven_recovery = None;
                breaker.unhelpful = 0;
            }
        }
    }

    /// Decides, before `failed` is discarded, whether to recover from its rejection.
    /// `Err(until)` while recovery is paused because recovered tokens kept being
    /// rejected before any request succeeded with them; the token is then kept (the
    /// resource server is at fault, and a new token would cost a request for nothing).
    pub(crate) fn admit_recovery(&self, failed: &str) -> Result<(), SystemTime> {
        let now = self.now();
        let held = self.token.load_full();
        let mut state = self.state();
        let breaker = &mut state.rare_mut().breaker;
        if let Some(until) = breaker.open_until {
            if now < until {
                return Err(until);
            }
            *breaker = Breaker::default();
        }
        let Some(held) = held.filter(|set| set.holds(failed)) else {
            // Not the token held: a newer one is reused or already being obtained.
            return Ok(());
        };
        if breaker.unproven_recovery != Some(held.origin_tick) {
            // A token that had worked was revoked: a genuine revocation, not a loop.
            breaker.unhelpful = 0;
            breaker.window_start = None;
            return Ok(());
        }
        let in_window = breaker
            .window_start
            .and_then(|start| now.duration_since(start).ok())
            .is_some_and(|age| age < BREAKER_WINDOW);
        if !in_window {
            breaker.window_start = Some(now);
            breaker.unhelpful = 0;
        }
        breaker.unhelpful = breaker.unhelpful.saturating_add(1);
        if breaker.unhelpful < BREAKER_LIMIT {
            return Ok(());
        }
        let until = now.checked_add(BREAKER_PAUSE).unwrap_or(now);
        breaker.open_until = Some(until);
        drop(state);
        self.outbox.queue(AuthEvent::RecoveryPaused {
            identity: self.identity.clone(),
            until: Timestamp(until),
        });
        tracing::warn!(
            pause_s = BREAKER_PAUSE.as_secs(),
            "the resource server kept rejecting fresh tokens; automatic recovery is paused"
        );
        Err(until)
    }
}
