//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`, off by default;
//! never enable it in an app). Each function feeds raw bytes to one parser of data
//! from the network and checks the invariants that must hold for every input; a
//! broken invariant panics, which is how the fuzzer reports it.

use crate::config::MAX_TOKEN_LIFETIME;
use crate::internal::protocol::{error_response, jwt, token_response};
use crate::internal::secrets::{BufKind, SecretBuf};
use crate::internal::transport::{self, HttpResponse};
use crate::internal::{rotation, www_authenticate};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use crate::internal::secrets::wipe_hook;

/// A fixed "now" (2026-01-01T00:00:00Z) so that runs are reproducible.
pub const NOW: Duration = Duration::from_secs(1_767_225_600);

fn now() -> SystemTime {
    UNIX_EPOCH + NOW
}

fn response<'a>(status: u16, date: Option<&str>, body: &[u8], sent_secrets: Vec<&'a str>) -> HttpResponse<'a> {
    let mut buf = SecretBuf::with_capacity(BufKind::ResponseBody, body.len().min(transport::MAX_BODY_BYTES));
    buf.extend(&body[..body.len().min(transport::MAX_BODY_BYTES)]);
    HttpResponse {
        headers: Vec::new(),
        status,
        date: date.and_then(|d| httpdate::parse_http_date(d).ok()),
        retry_after: None,
        content_type: Some("application/json".into()),
        freshness: None,
        body: buf,
        sent_secrets,
    }
}

/// A token endpoint answer (RFC 6749 §5.1/§5.2) with this status, `Date` and body.
/// Checks: a token is header-safe and its lifetime is within [`MAX_TOKEN_LIFETIME`].
pub fn token_response(status: u16, date: Option<&str>, body: &[u8]) {
    let response = response(status, date, body, Vec::new());
    if let Ok(issued) = token_response::parse(&response, now(), Duration::from_secs(3600)) {
        use secrecy::ExposeSecret;
        assert!((200..300).contains(&status));
        assert!(issued.lifetime <= MAX_TOKEN_LIFETIME);
        assert!(issued
            .access_token
            .expose_secret()
            .bytes()
            .all(|b| b.is_ascii_graphic()));
    }
}

/// An error answer whose request carried a secret made from `secret`. Checks: the
/// secret never appears in the error's `Display` or `Debug`. It starts with a
/// character the SDK's own text never uses, so any occurrence came from the server.
pub fn error_response(status: u16, body: &[u8], secret: &str) {
    let secret = format!("\u{1F511}{secret}");
    let response = response(status, None, body, vec![secret.as_str()]);
    let error = error_response::error_for(&response);
    let text = format!("{error} {error:?}");
    assert!(!text.contains(&secret), "the secret leaked into {text:?}");
}

/// `WWW-Authenticate` header values (RFC 9110 §11.6.1, RFC 6750 §3).
pub fn www_authenticate(values: &[&str]) {
    for value in values {
        let challenges = www_authenticate::parse_challenges(value);
        assert!(challenges.len() <= value.len());
    }
    let _ = www_authenticate::bearer_verdict(values.iter().copied());
}

/// The JWT `exp` fallback (RFC 7519 §4.1.4), decoded, not verified.
pub fn jwt_exp(token: &str) {
    if let Some(exp) = jwt::expiry(token) {
        assert!(exp > UNIX_EPOCH);
    }
}

/// Per-response rotation headers: token, expiry and `Date`.
pub fn rotation(token: Option<&str>, expiry: Option<&str>, date: Option<&str>) {
    if let Some(rotated) = rotation::parse(token, expiry, date, now()) {
        assert!(!rotated.token.is_empty());
        assert!(rotated.order.is_finite());
    }
}

/// `Retry-After` (RFC 9110 §10.2.3) and the retry loop's deadline arithmetic.
pub fn retry_after(value: &str) {
    if let Some(wait) = transport::parse_retry_after(value, now()) {
        // What `with_retries` does with it: must never overflow.
        let _ = Duration::from_secs(29).saturating_add(wait) > Duration::from_secs(30);
    }
}

/// An HTTP `Date` (RFC 9110 §5.6.7), as read from token and rotation responses.
pub fn http_date(value: &str) {
    if let Ok(date) = httpdate::parse_http_date(value) {
        let _ = date.duration_since(now());
    }
}

/// A stored session record (any format ever written), as read back from a
/// `TokenStore` that another process, an older version or a hostile app may have
/// filled; decoding then re-encoding must never panic.
pub fn session_record(raw: &str) {
    if let Ok(record) = crate::storage::record::Record::decode(raw) {
        let _ = record.encode();
    }
}
