//! Validates a successful token response (RFC 6749 §5.1) and works out the token's
//! lifetime: `expires_in`, else the JWT `exp` claim, else the configured default.

use crate::config::MAX_TOKEN_LIFETIME;
use crate::error::{AuthError, ErrorSource};
use crate::internal::protocol::{error_response, jwt};
use crate::internal::transport::HttpResponse;
use crate::token::TokenType;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use std::time::{Duration, SystemTime};

/// Clocks that disagree by less than this are treated as agreeing (the `Date`
/// header has one-second resolution and the exchange takes time).
const TOLERATED_CLOCK_SKEW: Duration = Duration::from_secs(5);

/// A refresh-token lifetime beyond this is treated as unknown rather than trusted.
const MAX_REFRESH_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Longest token accepted; real ones are far shorter, so this is a sanity bound.
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// A validated token response. `Debug` shows the secrets redacted.
#[derive(Debug)]
pub(crate) struct IssuedToken {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    pub scope: Option<String>,
    /// How long the access token is valid, counted from when the request was sent.
    pub lifetime: Duration,
    /// When the refresh token stops working, if the server said (Keycloak's
    /// `refresh_expires_in`, Microsoft's and GitHub's `refresh_token_expires_in`):
    /// recorded with the stored session so a restore after it needs no token request.
    pub refresh_expires_at: Option<SystemTime>,
    /// `Bearer` or `DPoP` (RFC 9449 §5); the caller checks it against what it sent.
    pub token_type: TokenType,
}

impl IssuedToken {
    /// A second copy, for a sign-in that must be retried after a busy flight.
    pub(crate) fn duplicate(&self) -> Self {
        Self {
            access_token: SecretString::from(self.access_token.expose_secret()),
            refresh_token: self
                .refresh_token
                .as_ref()
                .map(|t| SecretString::from(t.expose_secret())),
            scope: self.scope.clone(),
            lifetime: self.lifetime,
            refresh_expires_at: self.refresh_expires_at,
            token_type: self.token_type,
        }
    }
}

#[derive(Deserialize)]
struct RawTokenResponse {
    access_token: Option<SecretString>,
    token_type: Option<String>,
    expires_in: Option<Value>,
    refresh_token: Option<SecretString>,
    scope: Option<Value>,
    /// Keycloak's name.
    refresh_expires_in: Option<Value>,
    /// Microsoft's and GitHub's name (two fields, not a serde alias: a response carrying
    /// both must not fail to parse).
    refresh_token_expires_in: Option<Value>,
    /// An OAuth error code in a 2xx answer (GitHub answers errors, device-flow polling
    /// included, with HTTP 200).
    error: Option<Value>,
}

/// Parses `response`; `sent_at` is the local time the request left.
pub(crate) fn parse(
    response: &HttpResponse<'_>,
    sent_at: SystemTime,
    default_lifetime: Duration,
) -> Result<IssuedToken, AuthError> {
    if !(200..300).contains(&response.status) {
        return Err(error_response::error_for(response));
    }
    let invalid = |reason: String| AuthError::InvalidResponse {
        status: response.status,
        reason,
        source: None,
    };
    // serde's messages are not used: they could quote a value from the body.
    let raw: RawTokenResponse = serde_json::from_slice(response.body.as_slice()).map_err(|e| {
        let reason = if e.is_syntax() || e.is_eof() {
            error_response::describe_body(response)
        } else {
            format!(
                "the token response has a field of the wrong type (line {}, column {})",
                e.line(),
                e.column()
            )
        };
        AuthError::InvalidResponse {
            status: response.status,
            reason,
            source: Some(ErrorSource::json(e)),
        }
    })?;
    if raw.access_token.is_none() && matches!(raw.error, Some(Value::String(_))) {
        return Err(error_response::error_for(response));
    }
    let access_token = raw
        .access_token
        .filter(|t| !t.expose_secret().is_empty())
        .ok_or_else(|| invalid("the token response has no access_token".into()))?;
    check_token_chars(&access_token).map_err(|r| invalid(format!("access_token {r}")))?;
    let token_type = match raw.token_type.as_deref() {
        Some(t) if t.eq_ignore_ascii_case("bearer") => TokenType::Bearer,
        // RFC 9449 §5: whether a proof was sent for it is the caller's check.
        Some(t) if t.eq_ignore_ascii_case("dpop") => TokenType::Dpop,
        Some(_) => {
            return Err(invalid(
                "token_type is neither Bearer (RFC 6750) nor DPoP (RFC 9449); no other type is supported".into(),
            ))
        }
        // RFC 6749 §5.1 requires it, but some servers leave it out; the token is still
        // a bearer token (golang.org/x/oauth2 and AppAuth assume the same).
        None => {
            tracing::debug!("the token response has no token_type; treating the token as Bearer");
            TokenType::Bearer
        }
    };
    let refresh_token = raw.refresh_token.filter(|t| !t.expose_secret().is_empty());
    if let Some(token) = &refresh_token {
        check_token_chars(token).map_err(|r| invalid(format!("refresh_token {r}")))?;
    }
    let scope = match raw.scope {
        Some(Value::String(s)) => Some(s),
        // Some servers send an array; accept it rather than fail a good token.
        Some(Value::Array(items)) => Some(items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" ")),
        _ => None,
    };
    let lifetime = lifetime(
        raw.expires_in.as_ref(),
        &access_token,
        response.date,
        sent_at,
        default_lifetime,
    )?
    .min(MAX_TOKEN_LIFETIME);
    // Keycloak sends 0 for an offline token, which has no fixed expiry. A value that is
    // not a usable number is ignored: the refresh token is then simply tried.
    let refresh_lifetime = raw
        .refresh_expires_in
        .as_ref()
        .or(raw.refresh_token_expires_in.as_ref())
        .and_then(number)
        .filter(|secs| *secs > 0.0 && *secs <= MAX_REFRESH_LIFETIME.as_secs_f64())
        .map(Duration::from_secs_f64);
    let refresh_expires_at = refresh_token
        .as_ref()
        .and(refresh_lifetime)
        .and_then(|lifetime| sent_at.checked_add(lifetime));
    Ok(IssuedToken {
        access_token,
        refresh_token,
        scope,
        lifetime,
        refresh_expires_at,
        token_type,
    })
}

/// Tokens go into HTTP headers: they must be short, visible ASCII (RFC 6750 §2.1 b64token).
fn check_token_chars(token: &SecretString) -> Result<(), &'static str> {
    let value = token.expose_secret();
    if value.len() > MAX_TOKEN_LEN {
        return Err("is longer than 16 KiB");
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("contains characters not allowed in an HTTP header");
    }
    Ok(())
}

fn lifetime(
    expires_in: Option<&Value>,
    access_token: &SecretString,
    server_date: Option<SystemTime>,
    sent_at: SystemTime,
    default_lifetime: Duration,
) -> Result<Duration, AuthError> {
    if let Some(seconds) = expires_in.and_then(seconds) {
        // Relative to when we sent the request: never later than the server meant.
        // Zero is kept: a server that reuses a token sends 0 at the end of its life,
        // so the token is expired now and the next call gets a new one.
        return Ok(seconds);
    }
    if expires_in.is_some() {
        tracing::warn!("ignoring an unusable expires_in (negative or not a number)");
    }
    if let Some(exp) = jwt::expiry(access_token.expose_secret()) {
        // `exp` is on the server's clock: measure it from the server's `Date` when the
        // clocks disagree, so a phone with a wrong clock still gets the true lifetime.
        let server_now = match server_date {
            Some(date) if skew(date, sent_at) > TOLERATED_CLOCK_SKEW => date,
            _ => sent_at,
        };
        return exp.duration_since(server_now).map_err(|_| AuthError::InvalidResponse {
            status: 200,
            reason: "the access token's exp claim is already in the past".into(),
            source: None,
        });
    }
    Ok(default_lifetime)
}

fn skew(a: SystemTime, b: SystemTime) -> Duration {
    a.duration_since(b).or_else(|_| b.duration_since(a)).unwrap_or_default()
}

/// `expires_in` as a duration: a JSON number or a numeric string (some servers quote
/// it), fractions allowed, huge values capped. Negative, non-finite or non-numeric → None.
fn seconds(value: &Value) -> Option<Duration> {
    number(value).map(|seconds| Duration::from_secs_f64(seconds.min(MAX_TOKEN_LIFETIME.as_secs_f64())))
}

/// A count of seconds: a JSON number or a numeric string, finite and not negative.
fn number(value: &Value) -> Option<f64> {
    let seconds = match value {
        Value::Number(n) => n.as_f64()?,
        // Bounded before parsing: a long digit string is not worth the work.
        Value::String(s) if s.len() <= 64 => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    (seconds.is_finite() && seconds >= 0.0).then_some(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::internal::secrets::{BufKind, SecretBuf};
    use serde_json::json;

    fn response(status: u16, body: Value) -> HttpResponse<'static> {
        let bytes = serde_json::to_vec(&body).unwrap();
        let mut buf = SecretBuf::with_capacity(BufKind::ResponseBody, bytes.len());
        buf.extend(&bytes);
        HttpResponse {
            headers: Vec::new(),
            status,
            date: None,
            retry_after: None,
            content_type: Some("application/json".into()),
            freshness: None,
            body: buf,
            sent_secrets: Vec::new(),
        }
    }

    fn parse_ok(body: Value) -> IssuedToken {
        parse(&response(200, body), SystemTime::now(), Duration::from_secs(777)).unwrap()
    }

    #[test]
    fn expires_in_is_lenient_about_its_type_and_strict_about_its_value() {
        let base = |v: Value| json!({"access_token": "t", "token_type": "bearer", "expires_in": v});
        assert_eq!(parse_ok(base(json!(60))).lifetime, Duration::from_secs(60));
        assert_eq!(parse_ok(base(json!("120"))).lifetime, Duration::from_secs(120));
        assert_eq!(parse_ok(base(json!(0))).lifetime, Duration::ZERO);
        assert_eq!(parse_ok(base(json!(3600.5))).lifetime, Duration::from_millis(3_600_500));
        assert_eq!(parse_ok(base(json!(-30))).lifetime, Duration::from_secs(777));
        assert_eq!(parse_ok(base(json!(-1))).lifetime, Duration::from_secs(777));
        assert_eq!(parse_ok(base(json!(1e12))).lifetime, MAX_TOKEN_LIFETIME);
        assert_eq!(parse_ok(base(json!("soon"))).lifetime, Duration::from_secs(777));
        assert_eq!(parse_ok(base(json!(1e30))).lifetime, MAX_TOKEN_LIFETIME);
    }

    #[test]
    fn the_refresh_token_expiry_is_read_under_either_name_and_zero_means_none() {
        let sent_at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let with = |extra: Value| {
            let mut body = json!({"access_token": "t", "token_type": "Bearer", "refresh_token": "r"});
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            parse(&response(200, body), sent_at, Duration::from_secs(60))
                .unwrap()
                .refresh_expires_at
        };
        let after = |secs: u64| Some(sent_at + Duration::from_secs(secs));
        assert_eq!(with(json!({"refresh_expires_in": 1800})), after(1800));
        assert_eq!(with(json!({"refresh_token_expires_in": "7776000"})), after(7_776_000));
        assert_eq!(
            with(json!({"refresh_expires_in": 60, "refresh_token_expires_in": 90})),
            after(60),
            "both names: Keycloak's wins, and the response still parses"
        );
        assert_eq!(with(json!({"refresh_expires_in": 0})), None, "Keycloak offline token");
        assert_eq!(with(json!({"refresh_expires_in": -5})), None);
        assert_eq!(with(json!({"refresh_expires_in": "soon"})), None);
        assert_eq!(
            with(json!({"refresh_expires_in": 1e12})),
            None,
            "beyond ten years: unknown"
        );
        assert_eq!(with(json!({})), None);
        let no_refresh_token = json!({"access_token": "t", "token_type": "Bearer", "refresh_expires_in": 60});
        let issued = parse(&response(200, no_refresh_token), sent_at, Duration::from_secs(60)).unwrap();
        assert_eq!(issued.refresh_expires_at, None, "no refresh token, no refresh expiry");
    }

    #[test]
    fn an_oauth_error_in_a_200_is_that_error() {
        let r = response(
            200,
            json!({"error": "authorization_pending", "error_description": "wait"}),
        );
        match parse(&r, SystemTime::now(), Duration::from_secs(1)) {
            Err(AuthError::OAuth(e)) => assert_eq!((e.code.as_str(), e.status), ("authorization_pending", 200)),
            other => panic!("{other:?}"),
        }
        let r = response(200, json!({"error": "invalid_grant"}));
        assert!(matches!(
            parse(&r, SystemTime::now(), Duration::from_secs(1)),
            Err(AuthError::InvalidGrant(_))
        ));
        // A token next to a stray error field is still a token.
        let r = response(
            200,
            json!({"access_token": "t", "token_type": "Bearer", "error": "none"}),
        );
        assert!(parse(&r, SystemTime::now(), Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn token_type_must_be_bearer_or_dpop_when_given() {
        for (given, expected) in [
            ("bearer", TokenType::Bearer),
            ("DPoP", TokenType::Dpop),
            ("dpop", TokenType::Dpop),
        ] {
            let r = response(200, json!({"access_token": "t", "token_type": given}));
            assert_eq!(
                parse(&r, SystemTime::now(), Duration::from_secs(1)).unwrap().token_type,
                expected
            );
        }
        for other in ["mac", "N_A", "PoP"] {
            let r = response(200, json!({"access_token": "t", "token_type": other}));
            assert!(
                matches!(
                    parse(&r, SystemTime::now(), Duration::from_secs(1)),
                    Err(AuthError::InvalidResponse { .. })
                ),
                "{other}"
            );
        }
        let missing = response(200, json!({"access_token": "t", "expires_in": 60}));
        let issued = parse(&missing, SystemTime::now(), Duration::from_secs(1)).unwrap();
        assert_eq!(
            issued.lifetime,
            Duration::from_secs(60),
            "no token_type: a bearer token"
        );
    }

    #[test]
    fn wrong_types_are_reported_without_quoting_the_body() {
        let r = response(200, json!({"access_token": ["secret-looking"], "token_type": "Bearer"}));
        let err = parse(&r, SystemTime::now(), Duration::from_secs(1)).unwrap_err();
        assert!(!err.to_string().contains("secret-looking"), "{err}");
    }
}
