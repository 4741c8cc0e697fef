//! [`JwksVerifier`]: an issuer's JWK Set, fetched from its `jwks_uri`, cached for as
//! long as the response's caching headers allow, and refetched once when a token
//! names a key it does not hold, at most once per [`UNKNOWN_KEY_COOLDOWN`] so tokens
//! with made-up `kid`s cannot make us hammer the provider.
//!
//! It fails closed: no key set (the fetch failed) means no verified token, never an
//! unverified one.

use super::jwk::{self, Jwk};
use super::jws::{Compact, JwsAlgorithm, VerifiedJwt};
use super::reject;
use crate::clock::{Clock, SystemClock};
use crate::error::{AuthError, JwtCheck};
use crate::internal::protocol::request;
use crate::internal::transport;
use crate::transport::HttpTransport;
use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use url::Url;

/// How long a key set is used when its response had no caching headers.
pub(crate) const DEFAULT_FRESHNESS: Duration = Duration::from_secs(3600);
/// Never longer than this, whatever `max-age` says: a rotated-out key must age out.
pub(crate) const MAX_FRESHNESS: Duration = Duration::from_secs(24 * 3600);
/// The shortest interval between two refetches caused by an unknown `kid`.
pub(crate) const UNKNOWN_KEY_COOLDOWN: Duration = Duration::from_secs(30);
/// How long one key-set request may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Verifies JWS signatures against an issuer's JWK Set (RFC 7517), for ID tokens and
/// OIDC back-channel logout tokens. Cheap to clone; clones share one cache, and
/// concurrent callers share one fetch.
///
/// ```no_run
/// # async fn run(logout_token: &str) -> Result<(), tokenkeeper::AuthError> {
/// use tokenkeeper::oidc::{JwksVerifier, JwsAlgorithm};
/// let verifier = JwksVerifier::new("https://as.example.com/oauth2/jwks")?
///     .algorithms([JwsAlgorithm::RS256, JwsAlgorithm::ES256]);
/// let jwt = verifier.verify(logout_token).await?; // signature only; check the claims next
/// println!("{:?}", jwt.claims.get("iss"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct JwksVerifier {
    uri: Url,
    transport: Arc<dyn HttpTransport>,
    clock: Arc<dyn Clock>,
    algorithms: Vec<JwsAlgorithm>,
    shared: Arc<Shared>,
}

struct Shared {
    /// Held across a fetch: that is the single flight. A cancelled caller drops the
    /// guard before the new keys are stored, so the old cache stays whole.
    cache: tokio::sync::Mutex<Cache>,
    fetches: AtomicU64,
    /// The issuer's clock minus ours in milliseconds, from the `Date` of its last
    /// key-set answer (0 until one arrives): the measured skew that logout tokens'
    /// `iat` is judged with.
    offset_ms: AtomicI64,
}

#[derive(Default)]
struct Cache {
    keys: Vec<Jwk>,
    fresh_until: Option<SystemTime>,
    last_unknown_key_fetch: Option<SystemTime>,
}

impl JwksVerifier {
    /// A verifier for the key set at `jwks_uri` (https, or http on a loopback host),
    /// with its own reqwest client (no redirects, 10 s connect and 30 s total
    /// timeouts), the system clock, and every algorithm in [`JwsAlgorithm::ALL`].
    /// (Feature `reqwest`; see [`through`](Self::through) for another HTTP stack.)
    #[cfg(feature = "reqwest")]
    pub fn new(jwks_uri: &str) -> Result<Self, AuthError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|_| AuthError::config("could not initialise the HTTP client (TLS backend)"))?;
        Self::through(jwks_uri, Arc::new(crate::transport::ReqwestTransport::new(http)))
    }

    /// A verifier fetching the key set through `transport` (the app's own HTTP stack).
    pub fn through(jwks_uri: &str, transport: Arc<dyn HttpTransport>) -> Result<Self, AuthError> {
        Self::with_transport(jwks_uri, transport, &[])
    }

    /// A verifier sending its requests through the [`AuthClient`](crate::AuthClient)'s
    /// transport; `development_http_hosts` may allow plain http on more hosts, as in
    /// [`AuthConfig`](crate::AuthConfig).
    pub(crate) fn with_transport(
        jwks_uri: &str,
        transport: Arc<dyn HttpTransport>,
        development_http_hosts: &[String],
    ) -> Result<Self, AuthError> {
        let uri = crate::config::checked_endpoint("jwks_uri", jwks_uri, development_http_hosts)?;
        Ok(Self {
            uri,
            transport,
            clock: Arc::new(SystemClock),
            algorithms: JwsAlgorithm::ALL.to_vec(),
            shared: Arc::new(Shared {
                cache: tokio::sync::Mutex::new(Cache::default()),
                fetches: AtomicU64::new(0),
                offset_ms: AtomicI64::new(0),
            }),
        })
    }

    /// Accepts only `algorithms` (the provider's `id_token_signing_alg_values_supported`
    /// that tokenkeeper verifies). An empty list is refused at verification time.
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = JwsAlgorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// Reads time (cache freshness, the refetch cooldown) from `clock`.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How many times the key set has been fetched (for diagnostics and tests).
    pub fn fetch_count(&self) -> u64 {
        self.shared.fetches.load(Ordering::Relaxed)
    }

    /// The issuer's time now, as its last key-set answer's `Date` measured it against
    /// our clock (ours until then, or while the two agree within a few seconds).
    pub(crate) fn issuer_now(&self) -> SystemTime {
        let now = self.clock.now();
        let offset = self.shared.offset_ms.load(Ordering::Relaxed);
        let shift = Duration::from_millis(offset.unsigned_abs());
        let shifted = if offset >= 0 {
            now.checked_add(shift)
        } else {
            now.checked_sub(shift)
        };
        shifted.unwrap_or(now)
    }

    /// Verifies the signature of the compact JWS `token` and returns its claims,
    /// unchecked. Fails with [`AuthError::InvalidJwt`] naming the check (algorithm,
    /// unknown key, signature, malformed token or key set), or with
    /// [`AuthError::TemporarilyUnavailable`] when the key set cannot be fetched.
    pub async fn verify(&self, token: &str) -> Result<VerifiedJwt, AuthError> {
        let jws = Compact::parse(token, &self.algorithms).map_err(AuthError::InvalidJwt)?;
        let mut cache = self.shared.cache.lock().await;
        let now = self.clock.now();
        if cache.fresh_until.is_none_or(|until| now >= until) {
            self.fetch(&mut cache).await?;
        }
        if let Some(verified) = check(&cache.keys, &jws) {
            return verified.then(|| jws.into_verified()).ok_or_else(signature_error);
        }
        // An unknown key: the provider may have rotated. One refetch, rate limited.
        let may_refetch = cache
            .last_unknown_key_fetch
            .is_none_or(|at| now.duration_since(at).unwrap_or_default() >= UNKNOWN_KEY_COOLDOWN);
        if may_refetch {
            cache.last_unknown_key_fetch = Some(now);
            self.fetch(&mut cache).await?;
            if let Some(verified) = check(&cache.keys, &jws) {
                return verified.then(|| jws.into_verified()).ok_or_else(signature_error);
            }
        }
        Err(AuthError::InvalidJwt(reject(
            JwtCheck::UnknownKey,
            match &jws.kid {
                Some(_) => "no key in the issuer's key set has the token's kid",
                None => "no key in the issuer's key set fits the token's alg",
            },
        )))
    }

    async fn fetch(&self, cache: &mut Cache) -> Result<(), AuthError> {
        self.shared.fetches.fetch_add(1, Ordering::Relaxed);
        let sent_at = self.clock.now();
        let outgoing = request::get(self.uri.clone(), FETCH_TIMEOUT);
        let response = transport::exchange(&*self.transport, outgoing, sent_at).await?;
        if response.status >= 500 || response.status == 429 {
            return Err(AuthError::TemporarilyUnavailable {
                reason: format!("the issuer's key set (jwks_uri) answered HTTP {}", response.status),
                status: Some(response.status),
                retry_after: response.retry_after,
                source: None,
            });
        }
        let keys = (200..300)
            .contains(&response.status)
            .then(|| jwk::parse_set(response.body.as_slice()))
            .flatten()
            .ok_or_else(|| {
                AuthError::InvalidJwt(reject(
                    JwtCheck::KeySet,
                    format!("the jwks_uri answered HTTP {} without a JWK Set", response.status),
                ))
            })?;
        cache.keys = keys;
        let issuer_now = crate::internal::protocol::token_response::server_now(response.date, sent_at);
        let offset_ms = match issuer_now.duration_since(sent_at) {
            Ok(ahead) => i64::try_from(ahead.as_millis()).unwrap_or(i64::MAX),
            Err(behind) => i64::try_from(behind.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
        };
        self.shared.offset_ms.store(offset_ms, Ordering::Relaxed);
        let lifetime = transport::freshness(&response)
            .unwrap_or(DEFAULT_FRESHNESS)
            .min(MAX_FRESHNESS);
        cache.fresh_until = sent_at.checked_add(lifetime);
        tracing::debug!(
            keys = cache.keys.len(),
            fresh_secs = lifetime.as_secs(),
            "fetched the issuer's key set"
        );
        Ok(())
    }
}

/// `Some(true)`: a key verified it; `Some(false)`: candidate keys exist but none
/// verified it; `None`: no candidate (an unknown key).
fn check(keys: &[Jwk], jws: &Compact<'_>) -> Option<bool> {
    let mut candidates = keys
        .iter()
        .filter(|key| key.fits(jws.algorithm))
        .filter(|key| jws.kid.is_none() || key.kid == jws.kid)
        .peekable();
    candidates.peek()?;
    Some(candidates.any(|key| jws.verified_by(key)))
}

fn signature_error() -> AuthError {
    AuthError::InvalidJwt(reject(
        JwtCheck::Signature,
        "the signature does not verify with the issuer's key",
    ))
}

impl fmt::Debug for JwksVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksVerifier")
            .field("jwks_uri", &self.uri.as_str())
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}
