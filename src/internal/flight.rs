//! Single-flight: concurrent callers that need a new token share one token request.
//!
//! The request runs in a spawned task, so a caller that is cancelled (dropped) cannot
//! abort it halfway; every caller that waited gets the same outcome (success or
//! error), as matrix-rust-sdk's refresh lock does. The slot lock is held only to join
//! or start a flight, never across I/O, and the hot path never touches it.

use crate::error::AuthError;
use crate::internal::token_set::TokenSet;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use std::future::Future;
use std::sync::{Arc, Mutex};

pub(crate) type FlightResult = Result<Arc<TokenSet>, AuthError>;
pub(crate) type Flight = Shared<BoxFuture<'static, FlightResult>>;

/// What a caller gets from [`SingleFlight::join_or_start`].
pub(crate) enum Joined {
    /// A usable token appeared (another flight finished): no request needed.
    Ready(Arc<TokenSet>),
    /// The flight to await, joined or just started.
    Flight(Flight),
}

impl Joined {
    pub(crate) async fn outcome(self) -> FlightResult {
        match self {
            Joined::Ready(set) => Ok(set),
            Joined::Flight(flight) => flight.await,
        }
    }
}

#[derive(Default)]
pub(crate) struct SingleFlight {
    slot: Mutex<Option<(u64, Flight)>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl SingleFlight {
    /// Joins the flight in progress; otherwise, if `ready` finds a usable token, returns
    /// it; otherwise spawns `start()` as the new flight. `ready` runs under the slot
    /// lock, and a flight publishes its token before it leaves the slot, so a caller
    /// can never miss a just-finished flight and start a second request.
    pub(crate) fn join_or_start<R, S, Fut>(self: &Arc<Self>, ready: R, start: S) -> Joined
    where
        R: FnOnce() -> Option<Arc<TokenSet>>,
        S: FnOnce() -> Fut,
        Fut: Future<Output = FlightResult> + Send + 'static,
    {
        let mut slot = self.lock();
        if let Some((_, flight)) = slot.as_ref() {
            return Joined::Flight(flight.clone());
        }
        if let Some(set) = ready() {
            return Joined::Ready(set);
        }
        let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let this = Arc::clone(self);
        let work = start();
        let task = tokio::spawn(async move {
            let result = work.await;
            this.finish(id);
            result
        });
        let flight = async move {
            task.await
                .unwrap_or_else(|_| Err(AuthError::unavailable("the token request task was aborted")))
        }
        .boxed()
        .shared();
        *slot = Some((id, flight.clone()));
        Joined::Flight(flight)
    }

    /// The flight in progress, if any.
    pub(crate) fn current(&self) -> Option<Flight> {
        self.lock().as_ref().map(|(_, flight)| flight.clone())
    }

    fn finish(&self, id: u64) {
        let mut slot = self.lock();
        if slot.as_ref().is_some_and(|(current, _)| *current == id) {
            *slot = None;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(u64, Flight)>> {
        self.slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
