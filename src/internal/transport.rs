//! HTTP exchanges with the authorization server: one bounded request/response
//! ([`exchange`]) and the retry loop for transient failures ([`with_retries`]).
//!
//! Bodies are capped at 64 KiB, the `Date` and `Retry-After` headers are read, and
//! transport errors are turned into messages that name no URL query or secret.

use crate::clock::Clock;
use crate::config::RetryPolicy;
use crate::error::{AuthError, ErrorSource};
use crate::internal::protocol::request::Outgoing;
use crate::internal::random;
use crate::internal::secrets::{BufKind, SecretBuf};
use crate::transport::{HttpTransport, TransportError, TransportErrorKind};
use std::future::Future;
use std::time::{Duration, SystemTime};

/// Largest response body read from an authorization server.
pub(crate) const MAX_BODY_BYTES: usize = crate::transport::MAX_RESPONSE_BYTES;

/// A complete, size-bounded response.
pub(crate) struct HttpResponse<'a> {
    pub status: u16,
    pub date: Option<SystemTime>,
    pub retry_after: Option<Duration>,
    pub content_type: Option<String>,
    /// Every header the server sent (`DPoP-Nonce`, `WWW-Authenticate`, …).
    pub headers: Vec<(String, String)>,
    /// How long the response may be reused (RFC 9111 §4.2.1: `Cache-Control`
    /// `max-age` less `Age`, else `Expires` less `Date`; zero for `no-store`/`no-cache`),
    /// when the server said. Only the issuer's key set is cached.
    pub freshness: Option<Duration>,
    /// Wiped on drop: a token response holds the tokens.
    pub body: SecretBuf,
    /// The secrets the request carried, scrubbed from any server text we keep.
    pub sent_secrets: Vec<&'a str>,
}

impl HttpResponse<'_> {
    /// The first value of the header `name` (case-insensitive).
    #[allow(dead_code)] // read by the DPoP and OIDC work that routes through the seam
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `outgoing` through `transport` within the request's timeout, refuses a
/// redirected answer and keeps at most [`MAX_BODY_BYTES`] of the body.
pub(crate) async fn exchange<'a>(
    transport: &dyn HttpTransport,
    outgoing: Outgoing<'a>,
    now: SystemTime,
) -> Result<HttpResponse<'a>, AuthError> {
    let Outgoing { request, sent_secrets } = outgoing;
    let url = request.url().clone();
    let host = url.host_str().map(|h| format!(" ({h})")).unwrap_or_default();
    // The core's own deadline: a platform stack without one (or a hung callback
    // across the FFI) cannot hold a token request, and its single-flight, forever.
    let sent = tokio::time::timeout(request.timeout(), transport.send(request)).await;
    let mut response = match sent {
        Err(_elapsed) => return Err(unavailable(TransportError::new(TransportErrorKind::Timeout), &host)),
        Ok(Err(error)) if error.kind() == TransportErrorKind::ResponseTooLarge => {
            return Err(too_big(error.status().unwrap_or(200)))
        }
        Ok(Err(error)) => return Err(unavailable(error, &host)),
        Ok(Ok(response)) => response,
    };
    let status = response.status();
    // Redirects are refused whatever the stack would do: one that was followed (the
    // answer comes from elsewhere) or one handed back (3xx). Either could carry a
    // client secret or a refresh token to a host the app never named.
    let redirected = response.final_url().is_some_and(|final_url| *final_url != url);
    if redirected || (300..400).contains(&status) {
        return Err(AuthError::InvalidResponse {
            status,
            reason: format!("the server{host} answered with a redirect, which is not followed"),
            source: None,
        });
    }
    let body = SecretBuf::from_vec(BufKind::ResponseBody, response.take_body());
    if body.len() > MAX_BODY_BYTES {
        return Err(too_big(status));
    }
    let date = response.header("date").and_then(|d| httpdate::parse_http_date(d).ok());
    let retry_after = response.header("retry-after").and_then(|v| parse_retry_after(v, now));
    let content_type = response.header("content-type").map(str::to_ascii_lowercase);
    let freshness = freshness(|name| response.header(name), date);
    let headers = response.take_headers();
    Ok(HttpResponse {
        status,
        date,
        retry_after,
        content_type,
        headers,
        freshness,
        body,
        sent_secrets,
    })
}

fn too_big(status: u16) -> AuthError {
    AuthError::InvalidResponse {
        status,
        reason: format!("the response body is larger than {} KiB", MAX_BODY_BYTES / 1024),
        source: None,
    }
}

/// A transport failure as a retryable error. The message is ours, not the stack's,
/// so no URL (with a possible query) or body fragment reaches logs; the stack's error,
/// stripped of its URL, is the source (it chains down to the I/O or TLS error).
pub(crate) fn unavailable(error: TransportError, host: &str) -> AuthError {
    let what = error.kind().message();
    AuthError::TemporarilyUnavailable {
        reason: format!("{what}{host}"),
        status: None,
        retry_after: None,
        source: error.into_source().map(ErrorSource::from_boxed),
    }
}

/// The freshness lifetime of a response (RFC 9111 §4.2.1), as a private cache sees it.
pub(crate) fn freshness<'h>(header: impl Fn(&str) -> Option<&'h str>, date: Option<SystemTime>) -> Option<Duration> {
    let age = header("age")
        .and_then(|a| a.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or_default();
    if let Some(cache_control) = header("cache-control") {
        let mut max_age = None;
        for directive in cache_control.split(',').map(|d| d.trim().to_ascii_lowercase()) {
            if directive == "no-store" || directive == "no-cache" {
                return Some(Duration::ZERO);
            }
            if let Some(value) = directive.strip_prefix("max-age=") {
                max_age = value.trim_matches('"').parse::<u64>().ok().map(Duration::from_secs);
            }
        }
        if let Some(max_age) = max_age {
            return Some(max_age.saturating_sub(age));
        }
    }
    let expires = header("expires")?;
    // An invalid Expires (often "0" or "-1") means already expired (RFC 9111 §5.3).
    let Ok(expires) = httpdate::parse_http_date(expires) else {
        return Some(Duration::ZERO);
    };
    let date = date?;
    Some(expires.duration_since(date).unwrap_or_default().saturating_sub(age))
}

/// RFC 9110 §10.2.3: either delay-seconds or an HTTP-date. Any number is accepted
/// (even `u64::MAX`): the retry loop compares it with its deadline, never adds it to a time.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    httpdate::parse_http_date(value)
        .ok()
        .map(|at| at.duration_since(now).unwrap_or_default())
}

/// Runs `attempt` until it succeeds, fails for good, or the retry policy is spent.
/// Only [`AuthError::TemporarilyUnavailable`] is retried: an OAuth error answer will
/// not change by asking again. `Retry-After` (RFC 6585 §4) replaces the backoff when
/// the server sends it; if it points past the deadline, the error is returned at once.
pub(crate) async fn with_retries<T, F, Fut>(
    clock: &dyn Clock,
    policy: &RetryPolicy,
    mut attempt: F,
) -> Result<T, AuthError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AuthError>>,
{
    let started = clock.now();
    let mut backoff = policy.initial_backoff;
    let mut attempts = 0u32;
    loop {
        attempts = attempts.saturating_add(1);
        let error = match attempt().await {
            Err(error @ AuthError::TemporarilyUnavailable { .. }) => error,
            other => return other,
        };
        let retry_after = match &error {
            AuthError::TemporarilyUnavailable { retry_after, .. } => *retry_after,
            _ => None,
        };
        let wait = retry_after.unwrap_or_else(|| random::jittered(backoff));
        let elapsed = clock.now().duration_since(started).unwrap_or_default();
        // Saturating: `Retry-After: 18446744073709551615` must end the loop, not overflow.
        if attempts >= policy.max_attempts || elapsed.saturating_add(wait) > policy.deadline {
            return Err(error);
        }
        tracing::debug!(
            attempt = attempts,
            wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            "retrying token request"
        );
        clock.sleep(wait).await;
        backoff = backoff.saturating_mul(2).min(policy.max_backoff);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn freshness_follows_cache_control_then_expires() {
        let date = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let headers = |pairs: &[(&'static str, String)]| pairs.to_vec();
        let freshness = |pairs: &Vec<(&'static str, String)>, date| {
            let lookup = |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.as_str())
            };
            freshness(lookup, date)
        };
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(
            freshness(&headers(&[("cache-control", "public, max-age=600".into())]), None),
            secs(600)
        );
        let aged = headers(&[("cache-control", "max-age=600".into()), ("age", "100".into())]);
        assert_eq!(freshness(&aged, None), secs(500));
        assert_eq!(
            freshness(&headers(&[("cache-control", "no-cache".into())]), None),
            secs(0)
        );
        let expires = headers(&[("expires", httpdate::fmt_http_date(date + Duration::from_secs(60)))]);
        assert_eq!(freshness(&expires, Some(date)), secs(60));
        assert_eq!(freshness(&headers(&[("expires", "0".into())]), Some(date)), secs(0));
        assert_eq!(freshness(&headers(&[]), Some(date)), None);
        let huge = headers(&[("cache-control", "max-age=99999999999999999999".into())]);
        assert_eq!(freshness(&huge, None), None, "an unparsable max-age is no max-age");
    }

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(
            parse_retry_after("18446744073709551615", now),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", now),
            Some(Duration::ZERO)
        );
    }
}
