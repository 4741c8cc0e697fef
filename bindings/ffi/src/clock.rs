//! [`ManualClock`]: the core's test clock, for Kotlin and Swift tests of code that
//! depends on token expiry (background refresh, refresh margins, backoff) without
//! waiting for real time to pass.

use super::units::{Moment, TimeSpan};
use std::sync::Arc;

/// A clock that moves only when told to. Pass it to `AuthClient(config, clock = …)`
/// in tests; the client, its sessions and the Kotlin/Swift token mirrors then all read
/// this clock instead of the device's. Backoff waits return at once and advance it.
///
/// ```kotlin
/// val clock = ManualClock.startingNow()
/// val client = AuthClient(config, clock = clock)
/// val token = client.clientCredentialsSession().accessToken()
/// clock.advance(55.minutes)   // inside the refresh margin: the next read refreshes
/// ```
///
/// Never use it in a release build: tokens would never look expired.
#[derive(Debug, uniffi::Object)]
pub struct ManualClock {
    pub(crate) inner: Arc<sdk::ManualClock>,
}

#[uniffi::export]
impl ManualClock {
    /// A clock frozen at `start`.
    #[uniffi::constructor]
    pub fn new(start: Moment) -> Arc<Self> {
        Arc::new(Self {
            inner: Arc::new(sdk::ManualClock::new(start.0)),
        })
    }

    /// A clock frozen at the current real time.
    #[uniffi::constructor]
    pub fn starting_now() -> Arc<Self> {
        Arc::new(Self {
            inner: Arc::new(sdk::ManualClock::starting_now()),
        })
    }

    /// The clock's time.
    pub fn now(&self) -> Moment {
        Moment(sdk::Clock::now(self.inner.as_ref()))
    }

    /// The clock's time in milliseconds since the Unix epoch (what the token mirrors compare).
    pub fn now_epoch_millis(&self) -> i64 {
        super::units::epoch_millis(sdk::Clock::now(self.inner.as_ref()))
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: TimeSpan) {
        self.inner.advance(by.into());
    }

    /// Moves the clock backward by `by`, as a device clock corrected by NTP or by the user can.
    pub fn rewind(&self, by: TimeSpan) {
        self.inner.rewind(by.into());
    }
}
