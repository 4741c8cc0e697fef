//! OIDC Back-Channel Logout 1.0 logout tokens (§2.4), signed with the ID token key,
//! for testing a relying party's receiver: a valid one, and the forgeries it must
//! refuse. The `sid` of a sign-in is [`session_id`]: stable per client and user, so a
//! refresh keeps it, the way a provider's browser session outlives its tokens.

use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::jose::{SigningAlg, SigningKey};
use crate::state::AppState;

/// The `events` member that makes a JWT a logout token.
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// How a minted logout token is spoiled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogoutTokenFault {
    /// Signed, then one signature character changed.
    BadSignature,
    /// Signed with a key the key set never publishes.
    UnknownKid,
    /// `aud` names another client.
    WrongAudience,
    /// `iss` is another issuer.
    WrongIssuer,
    /// No `events` claim.
    MissingEvents,
    /// A `nonce` claim (prohibited in logout tokens).
    WithNonce,
    /// `iat` an hour ago.
    Stale,
}

/// The `sid` the ID tokens of `client_id`'s sign-ins of `subject` carry.
pub fn session_id(client_id: &str, subject: &str) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(client_id.as_bytes());
    context.update(&[0]);
    context.update(subject.as_bytes());
    let digest = context.finish();
    let hex: String = digest.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("sid-{hex}")
}

/// A logout token for `client_id` naming `subject` and/or `sid`, with a fresh `jti`.
pub(crate) fn mint(
    state: &AppState,
    client_id: &str,
    subject: Option<&str>,
    sid: Option<&str>,
    fault: Option<LogoutTokenFault>,
) -> String {
    let now = state.now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut inner = state.lock();
    inner.logout_tokens_minted = inner.logout_tokens_minted.saturating_add(1);
    let jti = format!("lt-{}-{}", now.as_nanos(), inner.logout_tokens_minted);
    let mut claims = json!({
        "iss": state.issuer(),
        "aud": client_id,
        "iat": now.as_secs(),
        "exp": (now + Duration::from_secs(120)).as_secs(),
        "jti": jti,
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
    });
    if let Some(subject) = subject {
        claims["sub"] = subject.into();
    }
    if let Some(sid) = sid {
        claims["sid"] = sid.into();
    }
    match fault {
        Some(LogoutTokenFault::WrongAudience) => claims["aud"] = "someone-else".into(),
        Some(LogoutTokenFault::WrongIssuer) => claims["iss"] = "https://impostor.example".into(),
        Some(LogoutTokenFault::MissingEvents) => {
            if let Some(map) = claims.as_object_mut() {
                map.remove("events");
            }
        }
        Some(LogoutTokenFault::WithNonce) => claims["nonce"] = "n-0S6_WzA2Mj".into(),
        Some(LogoutTokenFault::Stale) => {
            claims["iat"] = now.as_secs().saturating_sub(3600).into();
            claims["exp"] = Value::from(now.as_secs().saturating_sub(3500));
        }
        _ => {}
    }
    let header = |key: &SigningKey| json!({"alg": key.alg().name(), "kid": key.kid(), "typ": "logout+jwt"});
    match fault {
        Some(LogoutTokenFault::UnknownKid) => {
            let key = SigningKey::generate("never-published", SigningAlg::ES256);
            key.sign_with_header(&header(&key), &claims)
        }
        Some(LogoutTokenFault::BadSignature) => {
            let token = inner
                .keys
                .current
                .sign_with_header(&header(&inner.keys.current), &claims);
            let dot = token.rfind('.').unwrap_or(0);
            let mut bytes = token.into_bytes();
            if let Some(c) = bytes.get_mut(dot + 1) {
                *c = if *c == b'A' { b'B' } else { b'A' };
            }
            String::from_utf8(bytes).unwrap_or_default()
        }
        _ => inner
            .keys
            .current
            .sign_with_header(&header(&inner.keys.current), &claims),
    }
}
