//! ID tokens (OpenID Connect Core §2) for `openid` requests, the key set at
//! `GET /oauth2/jwks` (cached per `Cache-Control: max-age`), key rotation, and the
//! faults a client must refuse: a bad signature, a wrong `aud`, `iss` or `nonce`,
//! an expired or future token, `alg: none`, an unknown `kid`, a wrong `at_hash`,
//! and another `sub`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::http::header::{CACHE_CONTROL, LOCATION};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::jose::{self, SigningAlg, SigningKey};
use crate::state::AppState;

/// How a queued ID token is spoiled (one fault per issued ID token, first in, first out).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdTokenFault {
    /// Signed, then one signature byte flipped.
    BadSignature,
    /// `aud` names another client.
    WrongAudience,
    /// `iss` is another issuer.
    WrongIssuer,
    /// `exp` an hour ago.
    Expired,
    /// `iat` an hour ahead.
    IssuedInFuture,
    /// `nonce` is not the one the authorization request sent.
    WrongNonce,
    /// An unsecured JWT (`alg: none`).
    AlgNone,
    /// Signed with a key the key set never publishes.
    UnknownKid,
    /// `at_hash` of another access token.
    WrongAtHash,
    /// `sub` of another user.
    OtherSubject,
    /// `aud` has a second audience and there is no `azp`.
    ExtraAudienceWithoutAzp,
    /// `auth_time` an hour ago: the login is older than any short `max_age`.
    StaleAuthTime,
}

/// The signing keys and queued faults.
pub(crate) struct Keys {
    pub current: SigningKey,
    generation: u32,
    pub faults: VecDeque<IdTokenFault>,
}

impl Default for Keys {
    fn default() -> Keys {
        Keys::new(SigningAlg::ES256)
    }
}

impl Keys {
    pub fn new(alg: SigningAlg) -> Keys {
        Keys {
            current: SigningKey::generate("key-1", alg),
            generation: 1,
            faults: VecDeque::new(),
        }
    }

    /// Replaces the signing key: the key set publishes only the new one.
    pub fn rotate(&mut self) -> String {
        self.generation = self.generation.saturating_add(1);
        let kid = format!("key-{}", self.generation);
        self.current = SigningKey::generate(&kid, self.current.alg());
        kid
    }
}

/// What an ID token says about one sign-in.
pub(crate) struct Subject<'a> {
    pub client_id: &'a str,
    pub subject: &'a str,
    pub nonce: Option<&'a str>,
    pub auth_time: Option<SystemTime>,
    pub access_token: &'a str,
}

fn secs(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// Mints the ID token for `who`, spoiled by the next queued fault if there is one.
pub(crate) fn mint(state: &AppState, who: &Subject<'_>) -> String {
    let now = state.now();
    let lifetime = state.config.access_token_lifetime.max(Duration::from_secs(60));
    let mut claims = profile(state, who.subject);
    for (name, value) in [
        ("iss", json!(state.issuer())),
        ("aud", json!(who.client_id)),
        ("iat", json!(secs(now))),
        ("exp", json!(secs(now + lifetime))),
        ("at_hash", json!(jose::at_hash(who.access_token))),
        (
            "sid",
            json!(crate::logout_token::session_id(who.client_id, who.subject)),
        ),
    ] {
        claims[name] = value;
    }
    if let Some(nonce) = who.nonce {
        claims["nonce"] = nonce.into();
    }
    if let Some(at) = who.auth_time {
        claims["auth_time"] = secs(at).into();
    }
    let mut inner = state.lock();
    let fault = inner.keys.faults.pop_front();
    match fault {
        Some(IdTokenFault::WrongAudience) => claims["aud"] = "someone-else".into(),
        Some(IdTokenFault::WrongIssuer) => claims["iss"] = "https://impostor.example".into(),
        Some(IdTokenFault::Expired) => {
            claims["iat"] = secs(now - Duration::from_secs(7200)).into();
            claims["exp"] = secs(now - Duration::from_secs(3600)).into();
        }
        Some(IdTokenFault::IssuedInFuture) => claims["iat"] = secs(now + Duration::from_secs(3600)).into(),
        Some(IdTokenFault::WrongNonce) => claims["nonce"] = "not-the-nonce".into(),
        Some(IdTokenFault::WrongAtHash) => claims["at_hash"] = jose::at_hash("another-token").into(),
        Some(IdTokenFault::OtherSubject) => claims["sub"] = "mallory".into(),
        Some(IdTokenFault::StaleAuthTime) => claims["auth_time"] = secs(now - Duration::from_secs(3600)).into(),
        Some(IdTokenFault::ExtraAudienceWithoutAzp) => claims["aud"] = json!([who.client_id, "another-api"]),
        _ => {}
    }
    match fault {
        Some(IdTokenFault::AlgNone) => jose::unsecured(&claims),
        Some(IdTokenFault::UnknownKid) => SigningKey::generate("never-published", SigningAlg::ES256).sign(&claims),
        Some(IdTokenFault::BadSignature) => {
            let token = inner.keys.current.sign(&claims);
            // Change the signature's first base64url character: r no longer matches.
            let dot = token.rfind('.').unwrap_or(0);
            let mut bytes = token.into_bytes();
            if let Some(c) = bytes.get_mut(dot + 1) {
                *c = if *c == b'A' { b'B' } else { b'A' };
            }
            String::from_utf8(bytes).unwrap_or_default()
        }
        _ => inner.keys.current.sign(&claims),
    }
}

/// The profile claims of `subject`, in the ID token and at UserInfo (`/api/userinfo`).
pub(crate) fn profile(state: &AppState, subject: &str) -> Value {
    json!({
        "sub": subject,
        "name": format!("{} Example", capitalize(subject)),
        "preferred_username": subject,
        "email": format!("{subject}@example.test"),
        "email_verified": true,
        "picture": format!("{}/avatars/{subject}.png", state.base_url),
    })
}

/// `GET /oauth2/logout`: RP-initiated logout (OIDC RP-Initiated Logout 1.0 §2). The
/// subject named by `id_token_hint` is signed out everywhere (its tokens are revoked,
/// as a provider ending the browser session does) and recorded in
/// [`Stats::end_sessions`](crate::Stats::end_sessions); a registered
/// `post_logout_redirect_uri` is answered with a 303 carrying `state`.
pub(crate) async fn end_session(
    State(state): State<Arc<AppState>>,
    Query(params): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let subject = params
        .get("id_token_hint")
        .and_then(|hint| hint.split('.').nth(1))
        .and_then(|payload| URL_SAFE_NO_PAD.decode(payload).ok())
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|claims| claims["sub"].as_str().map(str::to_owned));
    {
        let mut inner = state.lock();
        if let Some(subject) = &subject {
            inner.revoke_subject(subject);
        }
        inner.stats.end_sessions.push(subject.unwrap_or_default());
    }
    let client = params.get("client_id").and_then(|id| state.client(id));
    match (params.get("post_logout_redirect_uri"), client) {
        (Some(uri), Some(client)) if crate::authorize::redirect_uri_registered(client, uri) => {
            let mut query = form_urlencoded::Serializer::new(String::new());
            if let Some(s) = params.get("state") {
                query.append_pair("state", s);
            }
            let separator = if uri.contains('?') { '&' } else { '?' };
            let location = format!("{uri}{separator}{}", query.finish());
            match HeaderValue::from_str(&location) {
                Ok(value) => (StatusCode::SEE_OTHER, [(LOCATION, value)]).into_response(),
                Err(_) => StatusCode::BAD_REQUEST.into_response(),
            }
        }
        (Some(_), _) => (StatusCode::BAD_REQUEST, "post_logout_redirect_uri is not registered").into_response(),
        (None, _) => Html("<!doctype html><title>Signed out</title><p>You are signed out.</p>").into_response(),
    }
}

fn capitalize(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// `GET /oauth2/jwks`: the current public key, cacheable for `jwks_max_age`.
pub(crate) async fn jwks(State(state): State<Arc<AppState>>) -> Response {
    state.lock().stats.jwks_requests += 1;
    if let Some(response) = crate::faults::intercept(&state, crate::faults::Endpoint::Jwks).await {
        return response;
    }
    let body = {
        let inner = state.lock();
        json!({"keys": [inner.keys.current.jwk()]})
    };
    let mut response = Json::<Value>(body).into_response();
    if let Some(max_age) = state.config.jwks_max_age {
        if let Ok(value) = HeaderValue::from_str(&format!("public, max-age={}", max_age.as_secs())) {
            response.headers_mut().insert(CACHE_CONTROL, value);
        }
    }
    response
}
