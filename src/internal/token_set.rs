//! [`TokenSet`]: the cached access token with its expiry and proactive refresh time.

use crate::internal::protocol::token_response::IssuedToken;
use crate::internal::random;
use crate::token::AccessToken;
use secrecy::ExposeSecret;
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

/// Replicas of the token besides the first, for callers on other threads.
const REPLICAS: usize = 3;

/// One cached access token. Immutable: a new token is a new `TokenSet`, swapped in whole.
pub(crate) struct TokenSet {
    /// The token as callers get it; each caller receives a clone (a shared, immutable buffer).
    pub token: AccessToken,
    /// The same token in buffers of their own, made when a second thread first reads
    /// it: a clone writes its buffer's reference count, and two cores writing one
    /// count would take turns owning its cache line on every call.
    replicas: OnceLock<Box<[AccessToken; REPLICAS]>>,
    pub expires_at: SystemTime,
    /// From here on the token is refreshed proactively (it stays usable until `expires_at`).
    pub refresh_at: SystemTime,
    /// For tokens adopted from per-response rotation (seed 001): the server's expiry
    /// value, which orders rotated tokens so an older one never replaces a newer one.
    pub rotation_order: Option<f64>,
    /// The session's logical time when this token's origin was fixed: when its token
    /// request was sent, or when the response carrying a rotated token arrived. A
    /// token-endpoint answer is newer than any token whose origin came before its
    /// request was sent.
    pub origin_tick: u64,
    /// How long the token was valid when it arrived: a new token from the same server
    /// lives about as long, so an ask for more validity than this cannot be met by a
    /// request (`Session::access_token_valid_for`).
    pub lifetime: Duration,
}

impl TokenSet {
    /// A token issued by the token endpoint for a request sent at `sent_at`.
    pub(crate) fn issued(issued: &IssuedToken, sent_at: SystemTime, configured_margin: Duration, tick: u64) -> Self {
        let expires_at = sent_at.checked_add(issued.lifetime).unwrap_or(sent_at);
        let mut set = Self::new(
            issued.access_token.expose_secret(),
            issued.scope.as_deref(),
            sent_at,
            expires_at,
            configured_margin,
            None,
            tick,
        );
        set.token = set.token.with_type(issued.token_type);
        set
    }

    pub(crate) fn new(
        token: &str,
        scope: Option<&str>,
        now: SystemTime,
        expires_at: SystemTime,
        configured_margin: Duration,
        rotation_order: Option<f64>,
        origin_tick: u64,
    ) -> Self {
        let lifetime = expires_at.duration_since(now).unwrap_or_default();
        Self {
            token: AccessToken::new(token, scope, expires_at),
            replicas: OnceLock::new(),
            refresh_at: refresh_time(expires_at, lifetime, configured_margin),
            expires_at,
            rotation_order,
            origin_tick,
            lifetime,
        }
    }

    /// Whether `self`, just obtained, may replace `held` (RFC-free house rule: tokens
    /// never go back in time). A token whose origin is later than the held one's wins;
    /// when the two overlapped in flight (the held token arrived while this one's
    /// request was out), the one that expires later wins.
    pub(crate) fn supersedes(&self, held: &TokenSet) -> bool {
        if let (Some(mine), Some(theirs)) = (self.rotation_order, held.rotation_order) {
            return mine > theirs;
        }
        if self.rotation_order.is_none() && self.origin_tick > held.origin_tick {
            return true;
        }
        self.expires_at > held.expires_at
    }

    /// Valid and not yet due for a proactive refresh.
    #[inline]
    pub(crate) fn is_fresh(&self, now: SystemTime) -> bool {
        now < self.refresh_at
    }

    /// Not expired (it may be due for refresh).
    pub(crate) fn is_valid(&self, now: SystemTime) -> bool {
        now < self.expires_at
    }

    pub(crate) fn holds(&self, token: &str) -> bool {
        self.token.expose_secret() == token
    }

    /// A caller's token: a clone of the replica of its thread's lane, so callers on
    /// different cores (up to 1 + `REPLICAS` lanes) never write the same reference count,
    /// and no call allocates or copies the secret once the replicas exist.
    #[inline]
    pub(crate) fn to_access_token(&self) -> AccessToken {
        match lane() {
            0 => self.token.clone(),
            lane => {
                let replicas = self
                    .replicas
                    .get_or_init(|| Box::new(std::array::from_fn(|_| self.token.replica())));
                replicas[(lane - 1) % REPLICAS].clone()
            }
        }
    }
}

/// This thread's lane, 0 to `REPLICAS`: threads take lanes in turn as they first
/// read a token.
#[inline]
fn lane() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static LANE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    LANE.with(|lane| {
        if lane.get() == usize::MAX {
            lane.set(NEXT.fetch_add(1, Ordering::Relaxed) % (REPLICAS + 1));
        }
        lane.get()
    })
}

/// The proactive refresh margin is the configured one, but never more than half the
/// token's lifetime (a 60 s token is not refreshed on every call), minus up to 10 %
/// random jitter so devices that got tokens together do not refresh together.
fn refresh_time(expires_at: SystemTime, lifetime: Duration, configured_margin: Duration) -> SystemTime {
    let margin = configured_margin.min(lifetime / 2);
    let margin = margin + random::up_to(margin / 10);
    expires_at.checked_sub(margin).unwrap_or(expires_at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn set(lifetime_secs: u64, margin_secs: u64) -> TokenSet {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        TokenSet::new(
            "t",
            None,
            now,
            now + Duration::from_secs(lifetime_secs),
            Duration::from_secs(margin_secs),
            None,
            0,
        )
    }

    #[test]
    fn margin_is_capped_at_half_the_lifetime_with_at_most_ten_percent_jitter() {
        for _ in 0..100 {
            let s = set(60, 300);
            let margin = s.expires_at.duration_since(s.refresh_at).unwrap();
            assert!(
                margin >= Duration::from_secs(30) && margin <= Duration::from_secs(33),
                "{margin:?}"
            );
            let s = set(3600, 300);
            let margin = s.expires_at.duration_since(s.refresh_at).unwrap();
            assert!(
                margin >= Duration::from_secs(300) && margin <= Duration::from_secs(330),
                "{margin:?}"
            );
        }
    }

    #[test]
    fn threads_share_immutable_buffers_each_lane_its_own() {
        let held = set(3600, 300);
        let tokens: Vec<AccessToken> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4 * (REPLICAS + 1))
                .map(|_| scope.spawn(|| (held.to_access_token(), held.to_access_token())))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| {
                    let (a, b) = h.join().unwrap();
                    assert_eq!(a.buffer(), b.buffer(), "one thread reads one buffer: no copy per call");
                    [a, b]
                })
                .collect()
        });
        let mut buffers: Vec<_> = tokens.iter().map(AccessToken::buffer).collect();
        buffers.sort();
        buffers.dedup();
        assert_eq!(buffers.len(), REPLICAS + 1, "every lane has a buffer of its own");
        // A new token is a new set: what callers hold stays as it was.
        drop(held);
        let newer = TokenSet::new(
            "t2",
            None,
            UNIX_EPOCH,
            UNIX_EPOCH + Duration::from_secs(60),
            Duration::ZERO,
            None,
            1,
        );
        assert!(tokens.iter().all(|t| t.expose_secret() == "t"));
        assert_eq!(newer.to_access_token().expose_secret(), "t2");
    }
}
