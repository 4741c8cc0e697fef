//! [`AccessToken`], what callers get from a session, and [`Timestamp`], its expiry.
//!
//! The token value is a [`SecretString`]: it is redacted in `Debug`, has no `Display`,
//! is zeroized on drop, and is read only through an explicit `expose_secret()`.

use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A bearer access token, ready to put in an `Authorization` header.
///
/// An `AccessToken` shares one immutable, zeroizing buffer with the session's cache:
/// a clone (what [`Session::access_token`](crate::Session::access_token) hands out)
/// is a reference-count increment, not a copy, and no later change can alter it in
/// place: a new token is a new buffer, and the old one is wiped when its last holder
/// drops it. The value is read through [`ExposeSecret::expose_secret`], a greppable
/// call; it is redacted in `Debug` and has no `Display`.
///
/// ```
/// use secrecy::ExposeSecret;
/// fn header_value(token: &tokenkeeper::AccessToken) -> String {
///     format!("Bearer {}", token.expose_secret())
/// }
/// ```
#[derive(Clone)]
pub struct AccessToken {
    material: Arc<Material>,
    expires_at: SystemTime,
    token_type: TokenType,
}

/// How an access token is presented to a resource server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TokenType {
    /// `Authorization: Bearer <token>` (RFC 6750).
    #[default]
    Bearer,
    /// `Authorization: DPoP <token>` with a `DPoP` proof header for each request
    /// (RFC 9449 §7.1): the token is bound to the session's key and useless without it.
    Dpop,
}

impl TokenType {
    /// The `Authorization` scheme: `Bearer` or `DPoP`.
    pub fn scheme(self) -> &'static str {
        match self {
            TokenType::Bearer => "Bearer",
            TokenType::Dpop => "DPoP",
        }
    }
}

/// The token followed by the granted scope, in one buffer that is zeroized when the
/// last `AccessToken` sharing it is dropped. Aligned to two cache lines so that the
/// reference counts of the session's replicas (see `TokenSet`) never share one, nor a
/// pair that the adjacent-line prefetchers of x86 cores fetch together (at 64 bytes
/// the 2-thread read scaled 1.84–1.89×, at 128 bytes 2.04–2.24×).
#[repr(align(128))]
struct Material {
    text: SecretString,
    token_len: usize,
}

impl AccessToken {
    pub(crate) fn new(token: &str, scope: Option<&str>, expires_at: SystemTime) -> Self {
        let scope = scope.unwrap_or("");
        let mut text = String::with_capacity(token.len() + scope.len());
        text.push_str(token);
        text.push_str(scope);
        Self {
            material: Arc::new(Material {
                text: SecretString::from(text),
                token_len: token.len(),
            }),
            expires_at,
            token_type: TokenType::Bearer,
        }
    }

    /// The same token, presented as `token_type`.
    pub(crate) fn with_type(mut self, token_type: TokenType) -> Self {
        self.token_type = token_type;
        self
    }

    /// How to present the token: [`TokenType::Dpop`] needs a proof with every request
    /// (see [`Session::authorization_headers`](crate::Session::authorization_headers)).
    pub fn token_type(&self) -> TokenType {
        self.token_type
    }

    /// Rebuilds a token from its parts: the value, the granted scope (space-separated,
    /// RFC 6749 §3.3) and the expiry on the local clock.
    ///
    /// For a token that left the SDK and comes back to it: the Kotlin and Swift bindings
    /// hand one back to `recover`, a test builds the token a server rejected. Sessions
    /// compare tokens by value only, so a token built here is "the same token" as the
    /// one the session issued when the values match.
    pub fn from_parts(token: &str, scope: Option<&str>, expires_at: SystemTime) -> Self {
        Self::new(token, scope, expires_at)
    }

    /// Where the shared buffer is, to tell replicas apart in tests.
    #[cfg(test)]
    pub(crate) fn buffer(&self) -> *const () {
        Arc::as_ptr(&self.material).cast()
    }

    /// The same token in a buffer of its own (its own reference count).
    pub(crate) fn replica(&self) -> Self {
        Self::new(self.expose_secret(), self.scope(), self.expires_at).with_type(self.token_type)
    }

    /// When the token expires, on the local clock (corrected for server clock skew).
    pub fn expires_at(&self) -> Timestamp {
        Timestamp(self.expires_at)
    }

    /// The scopes the server granted (RFC 6749 §5.1 `scope`), if it said.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope().unwrap_or("").split_ascii_whitespace()
    }

    /// True when both hold the same token value.
    pub fn is_same_token(&self, other: &AccessToken) -> bool {
        self.expose_secret() == other.expose_secret()
    }

    pub(crate) fn scope(&self) -> Option<&str> {
        self.material
            .text
            .expose_secret()
            .get(self.material.token_len..)
            .filter(|s| !s.is_empty())
    }
}

/// Security: the token value goes into an `Authorization` header and nowhere else.
impl ExposeSecret<str> for AccessToken {
    fn expose_secret(&self) -> &str {
        self.material
            .text
            .expose_secret()
            .get(..self.material.token_len)
            .unwrap_or("")
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("secret", &"[redacted]")
            .field("expires_at", &self.expires_at())
            .field("token_type", &self.token_type)
            .field("scope", &self.scope())
            .finish()
    }
}

/// A point in time that prints as an HTTP date (`Tue, 24 Nov 2026 10:00:00 GMT`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub(crate) SystemTime);

impl Timestamp {
    /// The underlying `SystemTime`.
    pub fn as_system_time(self) -> SystemTime {
        self.0
    }

    /// Seconds since the Unix epoch (0 for times before it).
    pub fn epoch_seconds(self) -> u64 {
        self.0.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
    }

    /// How long from `now` until this time (zero if it has passed).
    pub fn remaining_from(self, now: SystemTime) -> Duration {
        self.0.duration_since(now).unwrap_or(Duration::ZERO)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&httpdate::fmt_http_date(self.0))
    }
}
