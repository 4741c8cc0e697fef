//! Time as the foreign languages want it, carried as whole milliseconds.
//!
//! UniFFI's built-in `Duration` and `SystemTime` become `java.time.Duration` and
//! `java.time.Instant` in Kotlin, which exist only from Android API 26 (or with core
//! library desugaring). These two custom types cross the FFI as an `i64` and are
//! mapped in `uniffi.toml` to types every Android version has: `kotlin.time.Duration`
//! (pure Kotlin) and `java.util.Date`; in Swift, `TimeInterval` and `Date`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A span of time: `kotlin.time.Duration` in Kotlin, `TimeInterval` in Swift.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeSpan(pub Duration);

uniffi::custom_type!(TimeSpan, i64, {
    lower: |span| i64::try_from(span.0.as_millis()).unwrap_or(i64::MAX),
    // A negative span from an app means "none": zero, which validation then judges
    // (a zero timeout is rejected with InvalidConfig, a zero margin is allowed).
    try_lift: |millis| Ok(TimeSpan(Duration::from_millis(u64::try_from(millis).unwrap_or(0)))),
});

impl From<TimeSpan> for Duration {
    fn from(span: TimeSpan) -> Self {
        span.0
    }
}

/// An instant: `java.util.Date` in Kotlin (every Android API level), `Date` in Swift.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Moment(pub SystemTime);

uniffi::custom_type!(Moment, i64, {
    lower: |moment| epoch_millis(moment.0),
    try_lift: |millis| Ok(Moment(from_epoch_millis(millis))),
});

/// Milliseconds since the Unix epoch, saturating (never panics on odd clocks).
pub(crate) fn epoch_millis(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

fn from_epoch_millis(millis: i64) -> SystemTime {
    let offset = Duration::from_millis(millis.unsigned_abs());
    let time = if millis >= 0 {
        UNIX_EPOCH.checked_add(offset)
    } else {
        UNIX_EPOCH.checked_sub(offset)
    };
    time.unwrap_or(UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_millis_round_trips_and_saturates() {
        for millis in [0, 1, -1, 1_700_000_000_123, -86_400_000] {
            assert_eq!(epoch_millis(from_epoch_millis(millis)), millis);
        }
        assert_eq!(epoch_millis(UNIX_EPOCH + Duration::from_secs(u64::MAX / 2)), i64::MAX);
    }
}
