//! What the fleet layer tells the app: Redis failed, Redis answers again. Delivered
//! on a broadcast channel ([`RedisFleet::events`](crate::RedisFleet::events)) so that
//! a slow listener never holds a token request; never a secret in an event.

use tokio::sync::broadcast;

/// An event of the fleet layer.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FleetEvent {
    /// A Redis call failed or timed out: this instance serves with its own single
    /// flight (more token requests, still correct) and reconnects with backoff.
    RedisUnavailable {
        /// Why, without any key's secret part or value.
        reason: String,
    },
    /// Redis answers again: sharing resumes.
    RedisRecovered,
}

/// The sending side, shared by the link and the fleet.
#[derive(Clone)]
pub(crate) struct FleetEvents(broadcast::Sender<FleetEvent>);

impl FleetEvents {
    pub(crate) fn new() -> Self {
        FleetEvents(broadcast::channel(64).0)
    }

    pub(crate) fn emit(&self, event: FleetEvent) {
        // No receiver is fine: events are for whoever listens.
        let _ = self.0.send(event);
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<FleetEvent> {
        self.0.subscribe()
    }
}
