//! Single-flight: concurrent callers that need a new token share one token request.
//!
//! The request runs in a spawned task, so a caller that is cancelled (dropped) cannot
//! abort it halfway; every caller that waited gets the same outcome (success or
//! error), as matrix-rust-sdk's refresh lock does. The slot lock is held only to join
//! or start a flight, never across I/O, and the hot path never touches it.
//!
//! The slot is freed by a guard the task owns, so a flight that panics, is aborted,
//! or dies with its runtime never leaves the slot occupied.

use crate::error::AuthError;
use crate::internal::token_set::TokenSet;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

pub(crate) type FlightResult = Result<Arc<TokenSet>, AuthError>;
pub(crate) type Flight = Shared<BoxFuture<'static, FlightResult>>;

/// Whether other callers may share a flight's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FlightKind {
    /// Any token for the session will do: callers needing a token join it.
    Shared,
    /// The outcome belongs to one caller (a login checks *its* password): nobody joins
    /// it, and it never joins another flight.
    Exclusive,
}

/// What a caller gets from [`SingleFlight::join_or_start`].
pub(crate) enum Joined {
    /// A usable token appeared (another flight finished): no request needed.
    Ready(Arc<TokenSet>),
    /// The flight to await, joined or just started.
    Flight(Flight),
    /// A flight this caller may not join is in progress: await it, then try again.
    Busy(Flight),
}

#[derive(Default)]
pub(crate) struct SingleFlight {
    slot: Mutex<Option<Current>>,
    next_id: AtomicU64,
}

struct Current {
    id: u64,
    kind: FlightKind,
    flight: Flight,
}

const ABORTED: &str = "the token request task was aborted (its runtime shut down)";

/// Whether `error` says the flight's task died rather than the request failing.
pub(crate) fn is_aborted_flight(error: &AuthError) -> bool {
    matches!(error, AuthError::TemporarilyUnavailable { reason, .. } if reason == ABORTED)
}

/// The runtime flights are spawned on; a typed error instead of tokio's panic when
/// the SDK is called from outside one.
pub(crate) fn runtime() -> Result<tokio::runtime::Handle, AuthError> {
    tokio::runtime::Handle::try_current().map_err(|_| {
        AuthError::config(
            "tokenkeeper must be called from within a tokio runtime (for example under #[tokio::main]); \
             no runtime is running on this thread",
        )
    })
}

impl SingleFlight {
    /// Joins the flight in progress if `kind` allows; otherwise, if `ready` finds a
    /// usable token, returns it; otherwise runs `start` and spawns its future as the
    /// new flight. `ready` and `start` run under the slot lock, and a flight publishes
    /// its token before it leaves the slot, so a caller can never miss a just-finished
    /// flight and start a second request; `start` may refuse (e.g. the session logged
    /// out), and since it runs under the lock, a logout that waits for the slot to
    /// empty waits for every flight that passed that check.
    pub(crate) fn join_or_start<R, S, Fut, A>(
        self: &Arc<Self>,
        kind: FlightKind,
        ready: R,
        start: S,
        after: A,
    ) -> Result<Joined, AuthError>
    where
        R: FnOnce() -> Option<Arc<TokenSet>>,
        S: FnOnce() -> Result<Fut, AuthError>,
        Fut: Future<Output = FlightResult> + Send + 'static,
        A: FnOnce() + Send + 'static,
    {
        let mut slot = self.lock();
        if let Some(current) = slot.as_ref() {
            let joinable = kind == FlightKind::Shared && current.kind == FlightKind::Shared;
            let flight = current.flight.clone();
            return Ok(if joinable {
                Joined::Flight(flight)
            } else {
                Joined::Busy(flight)
            });
        }
        if let Some(set) = ready() {
            return Ok(Joined::Ready(set));
        }
        let runtime = runtime()?;
        let work = start()?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let guard = SlotGuard {
            flight: Arc::clone(self),
            id,
        };
        let task = runtime.spawn(async move {
            let result = work.await;
            drop(guard);
            // Runs with the slot free: whatever `after` triggers may start a new flight.
            after();
            result
        });
        let flight = async move { task.await.unwrap_or_else(|_| Err(AuthError::unavailable(ABORTED))) }
            .boxed()
            .shared();
        *slot = Some(Current {
            id,
            kind,
            flight: flight.clone(),
        });
        Ok(Joined::Flight(flight))
    }

    /// The flight in progress, if any.
    pub(crate) fn current(&self) -> Option<Flight> {
        self.lock().as_ref().map(|current| current.flight.clone())
    }

    fn finish(&self, id: u64) {
        let mut slot = self.lock();
        if slot.as_ref().is_some_and(|current| current.id == id) {
            *slot = None;
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Current>> {
        self.slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Frees the slot when the flight's task ends in any way: completion, panic, abort,
/// or its runtime shutting down (which drops the task's future).
struct SlotGuard {
    flight: Arc<SingleFlight>,
    id: u64,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.flight.finish(self.id);
    }
}
