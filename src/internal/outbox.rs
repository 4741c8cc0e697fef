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

#[derive(Default)]
pub(crate) struct Outbox {
    inner: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    events: VecDeque<AuthEvent>,
    delivering: bool,
}

impl Outbox {
    pub(crate) fn queue(&self, event: AuthEvent) {
        self.lock().events.push_back(event);
    }

    /// Delivers every queued event, unless another caller is already delivering: it
    /// will deliver ours too, in order.
    pub(crate) fn deliver(&self, sink: &EventSink) {
        {
            let mut queue = self.lock();
            if queue.delivering {
                return;
            }
            queue.delivering = true;
        }
        // Clears `delivering` even if the sink unwinds, so delivery never wedges.
        struct Done<'a>(&'a Outbox);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.lock().delivering = false;
            }
        }
        let done = Done(self);
        loop {
            let next = {
                let mut queue = self.lock();
                match queue.events.pop_front() {
                    Some(event) => event,
                    None => {
                        // Cleared under the same lock a producer queues under, so an
                        // event queued after this point finds `delivering` false.
                        queue.delivering = false;
                        // An idle session keeps no buffer: most sessions queue a few
                        // events at sign-in and then none for hours, and a kept
                        // capacity of 4 events is half a KiB per session.
                        queue.events = VecDeque::new();
                        std::mem::forget(done);
                        return;
                    }
                }
            };
            sink.emit(next);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
