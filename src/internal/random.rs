//! Cheap randomness for jitter and unique temporary names, from std's randomly keyed SipHash: enough to keep a
//! fleet of devices out of lockstep, without pulling in a random-number crate.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// 64 unpredictable-enough bits (not for secrets: those come from `ring`).
pub(crate) fn bits() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A uniformly distributed number in [0, 1).
pub(crate) fn fraction() -> f64 {
    (bits() >> 11) as f64 / (1u64 << 53) as f64
}

/// `base` scaled by a random factor in [0.5, 1.0) ("equal jitter").
pub(crate) fn jittered(base: Duration) -> Duration {
    base.mul_f64(0.5 + fraction() / 2.0)
}

/// A random duration in [0, max).
pub(crate) fn up_to(max: Duration) -> Duration {
    max.mul_f64(fraction())
}

/// A random non-zero 64-bit id (a session's writer id, a grant's lineage id): unique
/// enough to tell apart the writers and sign-ins of one store key, never a secret.
pub(crate) fn id() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    RandomState::new()
        .hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
        .max(1)
}
