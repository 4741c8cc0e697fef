//! [`LogoutTokenValidator`]: the checks of OpenID Connect Back-Channel Logout 1.0 §2.6
//! on a logout token, after [`JwksVerifier`] has verified its signature: `iss`, `aud`,
//! the `iat` window (against the issuer's clock as its key-set answers measure it),
//! `exp` if present, `sub` and/or `sid`, the back-channel logout event, no `nonce`,
//! and a `jti`. Whether the `jti` was seen before is the receiver's
//! (`oidc::backchannel`), since it needs a memory shared by the fleet.

use crate::error::{AuthError, JwtCheck, JwtError};
use crate::internal::id_token::ID_TOKEN_LEEWAY;
use crate::internal::jose::reject;
use crate::oidc::JwksVerifier;
use serde_json::{Map, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The member of the `events` claim that makes a JWT a logout token (§2.4).
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// How old a logout token's `iat` may be (beyond [`ID_TOKEN_LEEWAY`]) by default:
/// providers send them at once, and a `jti` is remembered this long.
pub const LOGOUT_TOKEN_MAX_AGE: Duration = Duration::from_secs(300);

/// What a valid logout token says: end the sessions of `subject` and/or the one
/// named `session_id` at `issuer`. `Debug` shows the claims (identifiers of a user,
/// not credentials).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogoutToken {
    /// `iss`.
    pub issuer: String,
    /// `sub`: every session of this user ends (with `session_id`, only that one).
    pub subject: Option<String>,
    /// `sid`: the provider's session id, as in the ID token's `sid` claim.
    pub session_id: Option<String>,
    /// `jti`: the token's unique id, remembered against replays.
    pub jti: String,
    /// `iat`, seconds since the Unix epoch.
    pub issued_at: u64,
}

impl LogoutToken {
    /// A logout token's claims, for a fleet that passes a validated one on to its
    /// other instances (they end sessions with it; they do not validate it again).
    pub fn new(
        issuer: impl Into<String>,
        subject: Option<String>,
        session_id: Option<String>,
        jti: String,
        issued_at: u64,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            subject,
            session_id,
            jti,
            issued_at,
        }
    }

    /// Whether a session whose ID token had these claims is one this token ends:
    /// the same issuer, and the same `sub` and `sid` wherever the token names them.
    pub fn matches(&self, claims: &crate::oidc::IdTokenClaims) -> bool {
        claims.issuer == self.issuer
            && self.subject.as_ref().is_none_or(|sub| *sub == claims.subject)
            && self
                .session_id
                .as_deref()
                .is_none_or(|sid| Some(sid) == claims.session_id())
    }
}

/// Validates the logout tokens of one issuer for one client. Cheap to clone.
///
/// ```no_run
/// # async fn run(logout_token: &str) -> Result<(), tokenkeeper::AuthError> {
/// use tokenkeeper::oidc::{JwksVerifier, LogoutTokenValidator};
/// let verifier = JwksVerifier::new("https://as.example.com/jwks")?;
/// let validator = LogoutTokenValidator::new(verifier, "https://as.example.com", "my-app");
/// let token = validator.validate(logout_token).await?;
/// println!("end the sessions of {:?} / {:?}", token.subject, token.session_id);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct LogoutTokenValidator {
    verifier: JwksVerifier,
    issuer: String,
    client_id: String,
    max_age: Duration,
}

impl LogoutTokenValidator {
    /// Validates tokens signed with `verifier`'s keys, from `issuer`, for `client_id`.
    pub fn new(verifier: JwksVerifier, issuer: impl Into<String>, client_id: impl Into<String>) -> Self {
        Self {
            verifier,
            issuer: issuer.into(),
            client_id: client_id.into(),
            max_age: LOGOUT_TOKEN_MAX_AGE,
        }
    }

    /// Refuses tokens issued longer ago than `max_age` (default [`LOGOUT_TOKEN_MAX_AGE`]).
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// How long a `jti` must be remembered: past it, `iat` alone refuses the token.
    pub fn replay_window(&self) -> Duration {
        self.max_age.saturating_add(ID_TOKEN_LEEWAY.saturating_mul(2))
    }

    /// Verifies `token`'s signature and its claims; fails with [`AuthError::InvalidJwt`]
    /// naming the first check that failed, or [`AuthError::TemporarilyUnavailable`]
    /// when the key set cannot be fetched.
    pub async fn validate(&self, token: &str) -> Result<LogoutToken, AuthError> {
        let jwt = self.verifier.verify(token).await?;
        let expect = Expected {
            issuer: &self.issuer,
            client_id: &self.client_id,
            max_age: self.max_age,
        };
        check_claims(&expect, &jwt.claims, self.verifier.issuer_now()).map_err(AuthError::InvalidJwt)
    }
}

/// What a logout token must name.
struct Expected<'a> {
    issuer: &'a str,
    client_id: &'a str,
    max_age: Duration,
}

fn check_claims(expect: &Expected<'_>, claims: &Map<String, Value>, now: SystemTime) -> Result<LogoutToken, JwtError> {
    let now_secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
    let leeway = ID_TOKEN_LEEWAY.as_secs_f64();
    let text = |name: &str| claims.get(name).and_then(Value::as_str).filter(|s| !s.is_empty());
    if text("iss") != Some(expect.issuer) {
        return Err(reject(
            JwtCheck::Issuer,
            format!("iss is not exactly {}", expect.issuer),
        ));
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(one)) => one == expect.client_id,
        Some(Value::Array(many)) => many.iter().any(|a| a.as_str() == Some(expect.client_id)),
        _ => false,
    };
    if !audience_ok {
        return Err(reject(JwtCheck::Audience, "aud does not contain this client's id"));
    }
    let iat = number(claims, "iat").ok_or_else(|| reject(JwtCheck::Malformed, "iat is missing or not a number"))?;
    if iat > now_secs + leeway {
        return Err(reject(JwtCheck::IssuedAt, "iat is in the future"));
    }
    if iat + expect.max_age.as_secs_f64() + leeway < now_secs {
        return Err(reject(JwtCheck::IssuedAt, "the logout token was issued too long ago"));
    }
    if let Some(exp) = claims.get("exp") {
        let exp = exp
            .as_f64()
            .ok_or_else(|| reject(JwtCheck::Malformed, "exp is not a number"))?;
        if exp + leeway <= now_secs {
            return Err(reject(JwtCheck::Expired, "the logout token has expired"));
        }
    }
    let subject = text("sub").map(str::to_owned);
    let session_id = text("sid").map(str::to_owned);
    if subject.is_none() && session_id.is_none() {
        return Err(reject(JwtCheck::Malformed, "neither sub nor sid is present"));
    }
    // §2.4: the member's value is a JSON object (empty for this event).
    let has_event = claims
        .get("events")
        .and_then(Value::as_object)
        .and_then(|events| events.get(BACKCHANNEL_LOGOUT_EVENT))
        .is_some_and(Value::is_object);
    if !has_event {
        return Err(reject(JwtCheck::Events, "events lacks the back-channel logout event"));
    }
    // §2.4: a nonce is prohibited, so an ID token cannot pass for a logout token.
    if claims.contains_key("nonce") {
        return Err(reject(JwtCheck::Nonce, "a logout token must not contain a nonce"));
    }
    let jti = text("jti")
        .filter(|jti| jti.len() <= 256)
        .ok_or_else(|| reject(JwtCheck::Malformed, "jti is missing, empty or too long"))?;
    Ok(LogoutToken {
        issuer: expect.issuer.to_owned(),
        subject,
        session_id,
        jti: jti.to_owned(),
        // Checked finite and non-negative above; whole seconds.
        issued_at: iat as u64,
    })
}

/// A NumericDate (RFC 7519 §2): a finite, non-negative JSON number.
fn number(claims: &Map<String, Value>, name: &str) -> Option<f64> {
    claims
        .get(name)
        .and_then(Value::as_f64)
        .filter(|n| n.is_finite() && *n >= 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(extra: Value) -> Map<String, Value> {
        let mut base = json!({
            "iss": "https://as.example", "aud": "app", "iat": 1_000_000, "jti": "j1", "sid": "s1",
            "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                base.as_object_mut().unwrap().remove(k);
            } else {
                base[k] = v.clone();
            }
        }
        base.as_object().unwrap().clone()
    }

    fn check(extra: Value) -> Result<LogoutToken, JwtCheck> {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_010);
        let expect = Expected {
            issuer: "https://as.example",
            client_id: "app",
            max_age: LOGOUT_TOKEN_MAX_AGE,
        };
        check_claims(&expect, &claims(extra), now).map_err(|e| e.check)
    }

    #[test]
    fn each_claim_rule_of_section_2_6_refuses_with_its_check() {
        let token = check(json!({})).unwrap();
        assert_eq!((token.session_id.as_deref(), token.subject), (Some("s1"), None));
        assert_eq!(check(json!({"aud": ["other", "app"]})).map(|t| t.jti), Ok("j1".into()));
        assert_eq!(check(json!({"iss": "https://other"})), Err(JwtCheck::Issuer));
        assert_eq!(check(json!({"aud": "other"})), Err(JwtCheck::Audience));
        assert_eq!(check(json!({"iat": 1_000_200})), Err(JwtCheck::IssuedAt));
        assert_eq!(check(json!({"iat": 999_000})), Err(JwtCheck::IssuedAt));
        assert_eq!(check(json!({"exp": 999_900})), Err(JwtCheck::Expired));
        assert_eq!(check(json!({"sid": null})), Err(JwtCheck::Malformed));
        assert_eq!(check(json!({"events": null})), Err(JwtCheck::Events));
        assert_eq!(check(json!({"events": {"other": {}}})), Err(JwtCheck::Events));
        assert_eq!(
            check(json!({"events": {BACKCHANNEL_LOGOUT_EVENT: "x"}})),
            Err(JwtCheck::Events)
        );
        assert_eq!(check(json!({"nonce": "n"})), Err(JwtCheck::Nonce));
        assert_eq!(check(json!({"jti": null})), Err(JwtCheck::Malformed));
    }
}
