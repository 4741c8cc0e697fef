//! [`AccessToken`] as a record: the token value, its expiry and its scopes.

use super::units::Moment;
use secrecy::ExposeSecret;
use std::fmt;
use std::time::{Duration, UNIX_EPOCH};

/// A bearer access token, ready for an `Authorization: Bearer` header.
///
/// `value` is the secret: read it only to build that header, never log it. The
/// record's `toString()` (Kotlin) / description (Swift) comes from Rust and redacts it.
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
#[uniffi::export(Debug)]
pub struct AccessToken {
    /// The token itself. Security: send it only to the resource server; never log it.
    pub value: String,
    /// When it expires, in seconds since the Unix epoch (local clock, skew-corrected).
    pub expires_at_epoch_seconds: i64,
    /// The same instant as a platform type: `java.util.Date` in Kotlin (every Android
    /// API level; `.toInstant()` on API 26+), `Date` in Swift.
    pub expires_at: Moment,
    /// The scopes the server granted, when it said (RFC 6749 §5.1 `scope`).
    pub scopes: Vec<String>,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("value", &"[redacted]")
            .field("expires_at_epoch_seconds", &self.expires_at_epoch_seconds)
            .field("expires_at", &self.expires_at)
            .field("scopes", &self.scopes)
            .finish()
    }
}

impl From<sdk::AccessToken> for AccessToken {
    fn from(token: sdk::AccessToken) -> Self {
        Self {
            value: token.expose_secret().to_owned(),
            expires_at_epoch_seconds: i64::try_from(token.expires_at().epoch_seconds()).unwrap_or(i64::MAX),
            expires_at: Moment(token.expires_at().as_system_time()),
            scopes: token.scopes().map(str::to_owned).collect(),
        }
    }
}

impl From<AccessToken> for sdk::AccessToken {
    /// Rebuilds the core token an app hands back (to `Session.recover`).
    fn from(token: AccessToken) -> Self {
        // An app may hand back any number: never let it overflow the clock.
        let seconds = u64::try_from(token.expires_at_epoch_seconds).unwrap_or(0);
        let expires_at = UNIX_EPOCH
            .checked_add(Duration::from_secs(seconds))
            .unwrap_or(UNIX_EPOCH);
        let scope = token.scopes.join(" ");
        sdk::AccessToken::from_parts(&token.value, Some(&scope), expires_at)
    }
}
