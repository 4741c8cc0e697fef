//! Reads the `exp` claim of a JWT access token (RFC 7519 §4.1.4), decoded but not
//! verified: it is used only to guess a lifetime when `expires_in` is missing, never
//! to trust the token.

use std::time::{Duration, UNIX_EPOCH};

/// The `exp` claim as a point in time, if `token` looks like a JWT and has one.
pub(crate) fn expiry(token: &str) -> Option<std::time::SystemTime> {
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || payload.len() > 16 * 1024 {
        return None;
    }
    let bytes = crate::internal::jose::b64url_decode(payload.trim_end_matches('='))?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?.as_f64()?;
    if !exp.is_finite() || exp <= 0.0 || exp > 1e11 {
        return None;
    }
    UNIX_EPOCH.checked_add(Duration::from_secs_f64(exp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn jwt(payload: &str) -> String {
        let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.sig", enc(r#"{"alg":"none"}"#), enc(payload))
    }

    #[test]
    fn reads_exp_from_a_jwt() {
        assert_eq!(
            expiry(&jwt(r#"{"exp":2000000000}"#)),
            Some(UNIX_EPOCH + Duration::from_secs(2_000_000_000))
        );
    }

    #[test]
    fn ignores_opaque_tokens_and_bad_claims() {
        assert_eq!(expiry("opaque-token"), None);
        assert_eq!(expiry("a.b.c"), None);
        assert_eq!(expiry(&jwt(r#"{"exp":"soon"}"#)), None);
        assert_eq!(expiry(&jwt(r#"{"exp":-5}"#)), None);
        assert_eq!(expiry(&jwt(r#"{"exp":1e300}"#)), None);
        assert_eq!(expiry(&jwt(r#"{"sub":"x"}"#)), None);
    }
}
