//! [`IdTokenValidator`]: the checks of OpenID Connect Core §3.1.3.7 on an ID token
//! whose signature [`JwksVerifier`] has verified, plus `auth_time` against `max_age`
//! (§3.1.2.1), `at_hash` (§3.1.3.6) and, after a refresh, the same `iss` and `sub`
//! as before (§12.2). Each failure names its [`JwtCheck`].

use crate::config::AuthConfig;
use crate::error::{AuthError, JwtCheck};
use crate::identity::Identity;
use crate::internal::context::ClientContext;
use crate::internal::jose::{b64url_encode, reject, JwksVerifier, VerifiedJwt};
use crate::internal::protocol::token_response::{self, IssuedToken};
use crate::oidc::IdTokenClaims;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How far the issuer's clock may be from ours (after correcting ours with the
/// server's `Date`) before `exp`, `iat` and `auth_time` are held against a token.
pub const ID_TOKEN_LEEWAY: Duration = Duration::from_secs(60);

/// What the ID token of one response must match besides the issuer and client.
#[derive(Clone, Copy, Debug, Default)]
pub struct IdTokenExpectations<'a> {
    /// The `nonce` the authorization request sent (none for a refresh or device grant).
    pub nonce: Option<&'a str>,
    /// The `max_age` the authorization request sent: `auth_time` is then required.
    pub max_age: Option<Duration>,
    /// The access token issued with it, for `at_hash`.
    pub access_token: Option<&'a str>,
    /// The session's claims before a refresh: `iss` and `sub` must not change.
    pub previous: Option<&'a IdTokenClaims>,
    /// The current time as the issuer sees it (the SDK corrects the local clock with
    /// the server's `Date` when they disagree).
    pub now: Option<SystemTime>,
}

/// Validates ID tokens of one issuer for one client: signature against the issuer's
/// JWK Set, then the claims. Cheap to clone.
///
/// ```no_run
/// # async fn run(id_token: &str) -> Result<(), tokenkeeper::AuthError> {
/// use tokenkeeper::oidc::{IdTokenExpectations, IdTokenValidator, JwksVerifier};
/// let verifier = JwksVerifier::new("https://as.example.com/jwks")?;
/// let validator = IdTokenValidator::new(verifier, "https://as.example.com", "my-app");
/// let claims = validator.validate(id_token, &IdTokenExpectations::default()).await?;
/// println!("signed in as {}", claims.subject);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct IdTokenValidator {
    verifier: JwksVerifier,
    issuer: String,
    client_id: String,
}

impl IdTokenValidator {
    /// Validates tokens signed with `verifier`'s keys, from `issuer`, for `client_id`.
    pub fn new(verifier: JwksVerifier, issuer: impl Into<String>, client_id: impl Into<String>) -> Self {
        Self {
            verifier,
            issuer: issuer.into(),
            client_id: client_id.into(),
        }
    }

    /// The issuer ID tokens must name.
    pub(crate) fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The client ID tokens are for.
    pub(crate) fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The key set verifier (shared with logout-token verification, say).
    pub fn verifier(&self) -> &JwksVerifier {
        &self.verifier
    }

    /// Verifies `id_token` and checks its claims; fails with
    /// [`AuthError::InvalidJwt`] naming the first check that failed.
    pub async fn validate(&self, id_token: &str, expect: &IdTokenExpectations<'_>) -> Result<IdTokenClaims, AuthError> {
        let jwt = self.verifier.verify(id_token).await?;
        self.check_claims(&jwt, expect).map_err(AuthError::InvalidJwt)
    }

    fn check_claims(
        &self,
        jwt: &VerifiedJwt,
        expect: &IdTokenExpectations<'_>,
    ) -> Result<IdTokenClaims, crate::error::JwtError> {
        let claims = &jwt.claims;
        let now = expect.now.unwrap_or_else(SystemTime::now);
        let now_secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
        let leeway = ID_TOKEN_LEEWAY.as_secs_f64();
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(reject(JwtCheck::Issuer, format!("iss is not exactly {}", self.issuer)));
        }
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 255)
            .ok_or_else(|| {
                reject(
                    JwtCheck::Malformed,
                    "sub is missing, empty or longer than 255 characters",
                )
            })?;
        let audiences: Vec<&str> = match claims.get("aud") {
            Some(Value::String(one)) => vec![one.as_str()],
            Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !audiences.contains(&self.client_id.as_str()) {
            return Err(reject(JwtCheck::Audience, "aud does not contain this client's id"));
        }
        match claims.get("azp").map(Value::as_str) {
            Some(Some(azp)) if azp == self.client_id => {}
            Some(_) => return Err(reject(JwtCheck::AuthorizedParty, "azp is not this client's id")),
            // OIDC Core §3.1.3.7 (5): with other audiences, the party it was issued to must be named.
            None if audiences.len() > 1 => {
                return Err(reject(JwtCheck::AuthorizedParty, "several audiences and no azp"))
            }
            None => {}
        }
        let exp = number(claims, "exp").ok_or_else(|| reject(JwtCheck::Malformed, "exp is missing or not a number"))?;
        if exp + leeway <= now_secs {
            return Err(reject(JwtCheck::Expired, "the ID token has expired"));
        }
        let iat = number(claims, "iat").ok_or_else(|| reject(JwtCheck::Malformed, "iat is missing or not a number"))?;
        if iat > now_secs + leeway {
            return Err(reject(JwtCheck::IssuedAt, "iat is in the future"));
        }
        let nonce = claims.get("nonce").and_then(Value::as_str);
        if let Some(sent) = expect.nonce {
            if nonce != Some(sent) {
                return Err(reject(
                    JwtCheck::Nonce,
                    "nonce is not the one the authorization request sent",
                ));
            }
        } else if let (Some(nonce), Some(previous)) = (nonce, expect.previous) {
            // OIDC Core §12.2: a refreshed ID token's nonce, if any, is the original's.
            if previous.all.get("nonce").and_then(Value::as_str) != Some(nonce) {
                return Err(reject(
                    JwtCheck::Nonce,
                    "the refreshed ID token's nonce is not the original's",
                ));
            }
        }
        let auth_time = number(claims, "auth_time");
        if let Some(max_age) = expect.max_age {
            let auth_time = auth_time
                .ok_or_else(|| reject(JwtCheck::AuthTime, "max_age was requested and auth_time is missing"))?;
            if auth_time + max_age.as_secs_f64() + leeway < now_secs {
                return Err(reject(
                    JwtCheck::AuthTime,
                    "the user authenticated longer ago than max_age allows",
                ));
            }
        }
        if let (Some(at_hash), Some(access_token)) = (claims.get("at_hash"), expect.access_token) {
            let digest = ring::digest::digest(jwt.algorithm.digest(), access_token.as_bytes());
            let half = &digest.as_ref()[..digest.as_ref().len() / 2];
            if at_hash.as_str() != Some(b64url_encode(half).as_str()) {
                return Err(reject(
                    JwtCheck::AccessTokenHash,
                    "at_hash does not match the access token",
                ));
            }
        }
        if let Some(previous) = expect.previous {
            if previous.issuer != self.issuer || previous.subject != sub {
                return Err(reject(
                    JwtCheck::SubjectChanged,
                    "the refreshed ID token names another iss or sub",
                ));
            }
        }
        // iss and sub were checked above, so the claims always build.
        IdTokenClaims::from_map(claims.clone()).ok_or_else(|| reject(JwtCheck::Malformed, "iss or sub is missing"))
    }
}

/// The validator a configuration implies: one when it names a key set. The issuer is
/// required with it, since `iss` is the first check.
pub(crate) fn validator_for(
    config: &AuthConfig,
    transport: &Arc<dyn crate::transport::HttpTransport>,
) -> Result<Option<IdTokenValidator>, AuthError> {
    let Some(jwks_uri) = &config.oidc.jwks_uri else {
        return Ok(None);
    };
    let issuer = config.issuer.as_deref().ok_or_else(|| {
        AuthError::config("jwks_uri is set without the issuer (AuthConfig::issuer) ID tokens must name")
    })?;
    let mut verifier = JwksVerifier::with_transport(jwks_uri, Arc::clone(transport), &config.development_http_hosts)?
        .clock(config.shared_clock());
    if let Some(algs) = &config.oidc.signing_algs {
        verifier = verifier.algorithms(algs.iter().copied());
    }
    Ok(Some(IdTokenValidator::new(verifier, issuer, config.client_id.clone())))
}

/// What a session keeps from its last validated ID token: the claims for the account
/// screen (also in the stored record), the token itself for `id_token_hint` at logout
/// (in memory only: `None` for claims a restore read from the store).
pub(crate) struct OidcState {
    pub claims: Arc<IdTokenClaims>,
    pub id_token: Option<SecretString>,
}

/// What a sign-in's authorization request asked for, checked in its ID token.
#[derive(Clone, Copy, Default)]
pub(crate) struct SignInChecks<'a> {
    pub nonce: Option<&'a str>,
    pub max_age: Option<Duration>,
}

/// Validates the ID token of a token-endpoint answer for `identity` before anything
/// of it is installed. `None` when `openid` is not in scope or the answer has no ID
/// token (a refresh may omit it, OIDC Core §12.2); an ID token with no key set
/// configured to verify it is refused ([`JwtCheck::KeySet`]). `previous` is the
/// session's claims, whose `iss` and `sub` a new ID token must keep.
pub(crate) async fn check_issued(
    ctx: &ClientContext,
    identity: &Identity,
    issued: &IssuedToken,
    sent_at: SystemTime,
    sign_in: SignInChecks<'_>,
    previous: Option<&IdTokenClaims>,
) -> Result<Option<OidcState>, AuthError> {
    if !identity.scopes.contains("openid") {
        return Ok(None);
    }
    let Some(id_token) = &issued.id_token else {
        return Ok(None);
    };
    let keep = |claims: IdTokenClaims| OidcState {
        claims: Arc::new(claims),
        id_token: Some(SecretString::from(id_token.expose_secret())),
    };
    if let Some(claims) = &issued.id_token_claims {
        // Validated by the sign-in flow with its nonce; only the identity is left to check.
        if let Some(previous) = previous {
            if previous.issuer != claims.issuer || previous.subject != claims.subject {
                return Err(AuthError::InvalidJwt(reject(
                    JwtCheck::SubjectChanged,
                    "the new sign-in is another user than the session's",
                )));
            }
        }
        return Ok(Some(keep((**claims).clone())));
    }
    let Some(validator) = ctx.id_tokens.as_ref() else {
        // Nothing to verify it against (no discovery, no jwks_uri): fail closed. An
        // unverified ID token is never trusted, and ignoring it would hand the app a
        // sign-in whose identity nobody checked. Apps that do not ask for `openid`
        // never get here.
        return Err(AuthError::InvalidJwt(reject(
            JwtCheck::KeySet,
            "an ID token arrived but no key set is configured to verify it (AuthConfig::discover or AuthConfig::jwks_uri with AuthConfig::issuer)",
        )));
    };
    let expect = IdTokenExpectations {
        nonce: sign_in.nonce,
        max_age: sign_in.max_age,
        access_token: Some(issued.access_token.expose_secret()),
        previous,
        now: Some(token_response::server_now(issued.server_date, sent_at)),
    };
    let claims = validator.validate(id_token.expose_secret(), &expect).await?;
    Ok(Some(keep(claims)))
}

/// A NumericDate (RFC 7519 §2): a finite, non-negative JSON number.
fn number(claims: &Map<String, Value>, name: &str) -> Option<f64> {
    claims
        .get(name)
        .and_then(Value::as_f64)
        .filter(|n| n.is_finite() && *n >= 0.0)
}
