//! DPoP (RFC 9449) in the core: what one [`AuthClient`](crate::AuthClient) remembers
//! across requests — the nonce each origin asked for last (§8, §9) and the server's
//! clock offset that corrects a proof's `iat` — and the proof builder (`proof.rs`).
//!
//! Keys are per session (`SessionCore::dpop_binding`); this state is per client,
//! because a nonce belongs to a server, not to a user.

mod exchange;
mod key_home;
pub(crate) mod proof;

pub(crate) use exchange::{authorization_server_exchange, check_token_type, resource_proof};

pub(crate) use key_home::KeyProblem;
pub(crate) use proof::Binding;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use url::Url;

/// The response header that carries a nonce (RFC 9449 §8.1).
pub(crate) const NONCE_HEADER: &str = "dpop-nonce";
/// The request header that carries a proof (RFC 9449 §4.1).
pub(crate) const PROOF_HEADER: &str = "dpop";
/// The error code of a request whose proof lacked the current nonce (§8, §9).
pub(crate) const USE_DPOP_NONCE: &str = "use_dpop_nonce";
/// The error code of a refused proof (§4.3, §12.2).
pub(crate) const INVALID_DPOP_PROOF: &str = "invalid_dpop_proof";

/// Origins remembered at most: an app talks to a handful; a bound keeps a stream of
/// redirects to new hosts from growing the map without end.
const MAX_ORIGINS: usize = 64;
/// Longest nonce kept; real ones are tens of bytes.
const MAX_NONCE_LEN: usize = 1024;
/// Offsets below this are noise from the one-second `Date` resolution and the round
/// trip: `iat` is not moved for them.
const IGNORED_OFFSET: i64 = 5;

/// Per-client DPoP state.
pub(crate) struct DpopState {
    /// origin (`scheme://host:port`) → the last nonce it sent.
    nonces: Mutex<HashMap<String, String>>,
    /// The authorization server's clock minus ours, whole seconds.
    offset_secs: AtomicI64,
}

impl DpopState {
    pub(crate) fn new() -> Self {
        Self {
            nonces: Mutex::new(HashMap::new()),
            offset_secs: AtomicI64::new(0),
        }
    }

    /// The nonce to put in a proof for `url`, if its origin sent one.
    pub(crate) fn nonce(&self, url: &Url) -> Option<String> {
        self.lock().get(&origin(url)).cloned()
    }

    /// Remembers the `DPoP-Nonce` of a resource server's response from `url`.
    #[cfg(feature = "reqwest")]
    pub(crate) fn observe_headers(&self, url: &Url, headers: &reqwest::header::HeaderMap) -> bool {
        self.observe(url, headers.get(NONCE_HEADER).and_then(|v| v.to_str().ok()))
    }

    /// Remembers the `DPoP-Nonce` value of a response from `url` (every response may
    /// carry a new one, §8.2). True if the nonce is new for that origin.
    pub(crate) fn observe(&self, url: &Url, nonce: Option<&str>) -> bool {
        let Some(nonce) = nonce.filter(|n| is_nonce(n)) else {
            return false;
        };
        let mut nonces = self.lock();
        let origin = origin(url);
        if nonces.get(&origin).is_some_and(|held| held == nonce) {
            return false;
        }
        if nonces.len() >= MAX_ORIGINS && !nonces.contains_key(&origin) {
            // Any entry: a dropped nonce costs one `use_dpop_nonce` round trip.
            if let Some(evicted) = nonces.keys().next().cloned() {
                nonces.remove(&evicted);
            }
        }
        nonces.insert(origin, nonce.to_owned());
        true
    }

    /// Measures the server's clock from a `Date` header received at local time `local`;
    /// true if the correction applied to `iat` changed.
    pub(crate) fn observe_date(&self, date: Option<SystemTime>, local: SystemTime) -> bool {
        let Some(date) = date else { return false };
        let offset = match date.duration_since(local) {
            Ok(ahead) => i64::try_from(ahead.as_secs()).unwrap_or(i64::MAX),
            Err(behind) => i64::try_from(behind.duration().as_secs()).map_or(i64::MIN, |s| -s),
        };
        let offset = if offset.abs() < IGNORED_OFFSET { 0 } else { offset };
        let previous = self.offset_secs.swap(offset, Ordering::Relaxed);
        // Seconds of jitter between two readings are not a change worth a retry.
        previous.abs_diff(offset) >= IGNORED_OFFSET.unsigned_abs()
    }

    /// The correction [`iat`](Self::iat) applies now, whole seconds. Read before a
    /// proof is made, it tells [`corrected_since`](Self::corrected_since) what that
    /// proof was built with.
    pub(crate) fn offset(&self) -> i64 {
        self.offset_secs.load(Ordering::Relaxed)
    }

    /// Whether the correction moved (by more than the `Date` noise) since a proof was
    /// built with `used`: then a refusal of that proof for its `iat` is worth one
    /// resend. Compared with what the proof used, not with the last reading, because
    /// concurrent requests refused together share one correction: the first answer
    /// moves it, and the others must resend too.
    pub(crate) fn corrected_since(&self, used: i64) -> bool {
        self.offset().abs_diff(used) >= IGNORED_OFFSET.unsigned_abs()
    }

    /// A proof's `iat`: `now` on the local clock, moved to the server's (RFC 9449 §11.1
    /// windows are often a minute; a phone's clock can be off by much more).
    pub(crate) fn iat(&self, now: SystemTime) -> u64 {
        let local = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs();
        let offset = self.offset_secs.load(Ordering::Relaxed);
        if offset >= 0 {
            local.saturating_add(offset.unsigned_abs())
        } else {
            local.saturating_sub(offset.unsigned_abs())
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.nonces.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// RFC 9449 §8.1: `nonce = 1*NQCHAR` (visible ASCII but `"` and `\`).
fn is_nonce(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_NONCE_LEN
        && value.bytes().all(|b| matches!(b, 0x21 | 0x23..=0x5b | 0x5d..=0x7e))
}

#[cfg(test)]
#[cfg(feature = "reqwest")]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn nonce_headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(NONCE_HEADER, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn nonces_are_remembered_per_origin_and_replaced() {
        let state = DpopState::new();
        let a = Url::parse("https://as.example.com/token").unwrap();
        let a_other_path = Url::parse("https://as.example.com:443/revoke?x").unwrap();
        let b = Url::parse("https://api.example.com/me").unwrap();
        assert!(state.observe_headers(&a, &nonce_headers("n1")));
        assert!(
            !state.observe_headers(&a, &nonce_headers("n1")),
            "the same nonce is not news"
        );
        assert_eq!(state.nonce(&a_other_path).as_deref(), Some("n1"));
        assert_eq!(state.nonce(&b), None);
        assert!(state.observe_headers(&a, &nonce_headers("n2")));
        assert_eq!(state.nonce(&a).as_deref(), Some("n2"));
        // Not NQCHAR: ignored.
        assert!(!state.observe_headers(&b, &nonce_headers("has\\backslash")));
        assert!(!state.observe_headers(&b, &nonce_headers(&"x".repeat(MAX_NONCE_LEN + 1))));
        assert_eq!(state.nonce(&b), None);
    }

    #[test]
    fn the_origin_map_stays_bounded() {
        let state = DpopState::new();
        for i in 0..(MAX_ORIGINS * 3) {
            let url = Url::parse(&format!("https://h{i}.example.com/")).unwrap();
            state.observe_headers(&url, &nonce_headers("n"));
        }
        assert!(state.lock().len() <= MAX_ORIGINS);
    }

    #[test]
    fn iat_follows_the_server_clock_when_it_is_off() {
        let state = DpopState::new();
        let local = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(state.iat(local), 1_000_000);
        assert!(state.observe_date(Some(local + Duration::from_secs(3600)), local));
        assert_eq!(state.iat(local), 1_003_600);
        assert!(
            !state.observe_date(Some(local + Duration::from_secs(3601)), local),
            "jitter"
        );
        state.observe_date(Some(local - Duration::from_secs(600)), local);
        assert_eq!(state.iat(local), 999_400);
        // Within the noise of the Date header: not moved.
        state.observe_date(Some(local + Duration::from_secs(2)), local);
        assert_eq!(state.iat(local), 1_000_000);
        state.observe_date(None, local);
        assert_eq!(state.iat(local), 1_000_000);
    }
}
