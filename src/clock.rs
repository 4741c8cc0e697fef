//! The clock the SDK reads for expiry and sleeps on for backoff, injected so tests
//! never wait for real time to pass.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// A boxed future returned by [`Clock::sleep`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Where tokenkeeper reads the time and how it waits between retries.
///
/// [`SystemClock`] is the default. Tests inject a [`ManualClock`] through
/// [`AuthConfig::clock`](crate::AuthConfig::clock) to move time forward instantly.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;
    /// A future that completes after `duration` (used for retry backoff).
    fn sleep(&self, duration: Duration) -> Sleep;
}

/// The real clock: the wall clock at the kernel's tick resolution, and
/// `tokio::time::sleep`.
///
/// On Linux and Android `now()` reads `CLOCK_REALTIME_COARSE` (1–4 ms resolution,
/// never ahead of `SystemTime::now()`): the time the kernel last stored rather than
/// a fresh read of the hardware counter, about a quarter of the cost. The cached-token
/// path reads the clock on every call, and every decision it feeds (fresh, due for
/// refresh, expired) has minutes of margin, so milliseconds buy nothing there.
/// Elsewhere it is `SystemTime::now()`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> SystemTime {
        coarse_now()
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(duration))
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[inline]
fn coarse_now() -> SystemTime {
    use rustix::time::{clock_gettime, ClockId};
    let now = clock_gettime(ClockId::RealtimeCoarse);
    match (u64::try_from(now.tv_sec), u32::try_from(now.tv_nsec)) {
        (Ok(secs), Ok(nanos)) if nanos < 1_000_000_000 => std::time::UNIX_EPOCH
            .checked_add(Duration::new(secs, nanos))
            .unwrap_or_else(SystemTime::now),
        // Before 1970 or a malformed reading: let the standard library decide.
        _ => SystemTime::now(),
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
#[inline]
fn coarse_now() -> SystemTime {
    SystemTime::now()
}

/// A clock that only moves when told to, for tests and simulations.
///
/// `sleep` returns at once after advancing the clock by the requested duration and
/// recording it, so a test can assert how long the SDK *would* have waited.
///
/// ```
/// use tokenkeeper::{Clock, ManualClock};
/// use std::time::{Duration, UNIX_EPOCH};
/// let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_000));
/// clock.advance(Duration::from_secs(60));
/// assert_eq!(clock.now(), UNIX_EPOCH + Duration::from_secs(1_060));
/// ```
#[derive(Debug)]
pub struct ManualClock {
    state: Mutex<ManualState>,
}

#[derive(Debug)]
struct ManualState {
    now: SystemTime,
    sleeps: Vec<Duration>,
}

impl ManualClock {
    /// A clock frozen at `start`.
    pub fn new(start: SystemTime) -> Self {
        Self {
            state: Mutex::new(ManualState {
                now: start,
                sleeps: Vec::new(),
            }),
        }
    }

    /// A clock frozen at the current real time.
    pub fn starting_now() -> Self {
        Self::new(SystemTime::now())
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut state = self.lock();
        state.now += by;
    }

    /// Moves the clock backward, as a device clock corrected by NTP or by the user can.
    pub fn rewind(&self, by: Duration) {
        let mut state = self.lock();
        state.now = state.now.checked_sub(by).unwrap_or(std::time::UNIX_EPOCH);
    }

    /// Every duration `sleep` was asked for, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.lock().sleeps.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ManualState> {
        // A panic while holding this lock cannot leave the state half-written.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        self.lock().now
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        let mut state = self.lock();
        state.now += duration;
        state.sleeps.push(duration);
        Box::pin(std::future::ready(()))
    }
}
