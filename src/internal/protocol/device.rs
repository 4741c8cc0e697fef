//! The device authorization response (RFC 8628 §3.2) and the meaning of the
//! token endpoint's answers while polling (§3.5).

use crate::error::AuthError;
use crate::internal::protocol::error_response;
use crate::internal::transport::HttpResponse;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

/// RFC 8628 §3.2: "If no value is provided, clients MUST use 5 as the default."
pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// RFC 8628 §3.5: `slow_down` adds 5 seconds to the interval, for good.
pub(crate) const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);
/// Longest device-code lifetime believed (RFC 8628 suggests minutes): a hostile or
/// mistyped `expires_in` cannot overflow a clock or park a device for years.
pub(crate) const MAX_EXPIRES_IN: Duration = Duration::from_secs(24 * 3600);
/// A server asking for longer waits than this is capped, so a typo cannot park a device for hours.
const MAX_INTERVAL: Duration = Duration::from_secs(60);

/// A validated device authorization response.
pub(crate) struct DeviceGrant {
    pub device_code: SecretString,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub expires_in: Duration,
    pub interval: Duration,
}

#[derive(Deserialize)]
struct Raw {
    device_code: Option<SecretString>,
    user_code: Option<String>,
    verification_uri: Option<String>,
    /// Google's pre-RFC spelling.
    verification_url: Option<String>,
    verification_uri_complete: Option<String>,
    expires_in: Option<Value>,
    interval: Option<Value>,
}

/// Parses the answer of the device authorization endpoint.
pub(crate) fn parse(response: &HttpResponse) -> Result<DeviceGrant, AuthError> {
    if !(200..300).contains(&response.status) {
        return Err(error_response::error_for(response));
    }
    let invalid = |reason: &str| AuthError::InvalidResponse {
        status: response.status,
        reason: format!("device authorization response: {reason}"),
        source: None,
    };
    let raw: Raw = serde_json::from_slice(response.body.as_slice())
        .map_err(|_| invalid("not a JSON object of the expected shape"))?;
    let seconds = |v: Option<&Value>| v.and_then(Value::as_u64).filter(|s| *s > 0).map(Duration::from_secs);
    let device_code = raw.device_code.ok_or_else(|| invalid("no device_code"))?;
    let user_code = raw
        .user_code
        .filter(|c| !c.is_empty())
        .ok_or_else(|| invalid("no user_code"))?;
    let verification_uri = raw
        .verification_uri
        .or(raw.verification_url)
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .ok_or_else(|| invalid("no http(s) verification_uri"))?;
    let expires_in = seconds(raw.expires_in.as_ref())
        .ok_or_else(|| invalid("no positive expires_in"))?
        .min(MAX_EXPIRES_IN);
    let interval = seconds(raw.interval.as_ref())
        .unwrap_or(DEFAULT_INTERVAL)
        .min(MAX_INTERVAL);
    Ok(DeviceGrant {
        device_code,
        user_code,
        verification_uri,
        verification_uri_complete: raw.verification_uri_complete,
        expires_in,
        interval,
    })
}

/// What a failed poll means for the polling loop.
pub(crate) enum Poll {
    /// `authorization_pending`: ask again after the interval.
    Pending,
    /// `slow_down`: ask again after the interval plus 5 s.
    SlowDown,
    /// Stop with this error.
    Fail(AuthError),
}

/// Classifies a token endpoint error received while polling.
pub(crate) fn classify(error: AuthError) -> Poll {
    match error {
        AuthError::OAuth(e) if e.code == "authorization_pending" => Poll::Pending,
        AuthError::OAuth(e) if e.code == "slow_down" => Poll::SlowDown,
        AuthError::OAuth(e) if e.code == "access_denied" => Poll::Fail(AuthError::AccessDenied(e)),
        AuthError::OAuth(e) if e.code == "expired_token" => Poll::Fail(AuthError::DeviceCodeExpired),
        other => Poll::Fail(other),
    }
}

/// The next interval after a `slow_down`, capped.
pub(crate) fn slowed(interval: Duration) -> Duration {
    interval.saturating_add(SLOW_DOWN_STEP).min(MAX_INTERVAL)
}
