//! Ordered, deferred delivery of one session's [`AuthEvent`]s.
//!
//! Transitions queue events while they hold the session's state; whoever finishes a
//! piece of work calls [`Outbox::deliver`] once no lock is held and no flight slot is
//! occupied. One caller delivers at a time, so a session's events reach the listener
//! in the order they were queued, and a listener that asks the session for a token
//! cannot deadlock against the flight that produced its event.

use crate::events::{AuthEvent, EventSink};
use std::collections::VecDeque;
use std::sync::Mutex;

/// A session's pending events. Most sessions queue a few events at sign-in and then
/// none for hours, so the queue lives in a box that exists only while events are
/// pending or being delivered: an idle session pays one pointer, not an empty queue
/// and the capacity its first events left behind.
#[derive(Default)]
pub(crate) struct Outbox {
    inner: Mutex<Option<Box<Queue>>>,
}

#[derive(Default)]
struct Queue {
    events: VecDeque<AuthEvent>,
    /// Someone is delivering; the box is kept until they find the queue empty.
    delivering: bool,
}

impl Outbox {
    pub(crate) fn queue(&self, event: AuthEvent) {
        self.lock().get_or_insert_with(Box::default).events.push_back(event);
    }

    /// Delivers every queued event, unless another caller is already delivering: it
    /// will deliver ours too, in order.
    pub(crate) fn deliver(&self, sink: &EventSink) {
        {
            let mut slot = self.lock();
            // No box: nothing queued and nobody delivering.
            let Some(queue) = slot.as_mut() else {
                return;
            };
            if queue.delivering {
                return;
            }
            queue.delivering = true;
        }
        // Clears `delivering` even if the sink unwinds, so delivery never wedges.
        struct Done<'a>(&'a Outbox);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                if let Some(queue) = self.0.lock().as_mut() {
                    queue.delivering = false;
                }
            }
        }
        let done = Done(self);
        loop {
            let next = {
                let mut slot = self.lock();
                match slot.as_mut().and_then(|queue| queue.events.pop_front()) {
                    Some(event) => event,
                    None => {
                        // Dropped under the same lock a producer queues under, so an
                        // event queued after this point finds no delivery under way.
                        *slot = None;
                        std::mem::forget(done);
                        return;
                    }
                }
            };
            sink.emit(next);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Box<Queue>>> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::AuthEventListener;
    use crate::identity::{Identity, Subject};
    use std::sync::Arc;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<AuthEvent>>);

    impl AuthEventListener for Recorder {
        fn on_event(&self, event: &AuthEvent) {
            self.0.lock().unwrap().push(event.clone());
        }
    }

    fn revoked(name: &str) -> AuthEvent {
        AuthEvent::RevocationDetected {
            identity: Identity {
                subject: Subject::User(name.to_owned()),
                scopes: Default::default(),
                audience: None,
                resource: None,
            },
        }
    }

    #[test]
    fn delivers_in_order_and_keeps_no_queue_once_drained() {
        let recorder = Arc::new(Recorder::default());
        let sink = EventSink::new(Some(recorder.clone()));
        let outbox = Outbox::default();
        outbox.deliver(&sink);
        assert!(outbox.lock().is_none(), "delivering nothing allocates nothing");
        for name in ["a", "b", "c", "d", "e"] {
            outbox.queue(revoked(name));
        }
        outbox.deliver(&sink);
        assert_eq!(
            *recorder.0.lock().unwrap(),
            ["a", "b", "c", "d", "e"].map(revoked).to_vec()
        );
        assert!(outbox.lock().is_none(), "an idle session keeps no queue");
    }

    #[test]
    fn a_panicking_listener_does_not_wedge_delivery() {
        struct Panics;
        impl AuthEventListener for Panics {
            fn on_event(&self, _: &AuthEvent) {
                panic!("listener bug");
            }
        }
        // The sink catches listener panics; a sink that unwound would still clear
        // `delivering` through the guard. Either way the next delivery runs.
        let outbox = Outbox::default();
        outbox.queue(revoked("a"));
        outbox.deliver(&EventSink::new(Some(Arc::new(Panics))));
        assert!(outbox.lock().is_none());
        let recorder = Arc::new(Recorder::default());
        outbox.queue(revoked("b"));
        outbox.deliver(&EventSink::new(Some(recorder.clone())));
        assert_eq!(*recorder.0.lock().unwrap(), vec![revoked("b")]);
    }
}
