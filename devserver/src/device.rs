//! The device authorization grant (RFC 8628): `POST /oauth2/device_authorization`
//! (§3.1), the verification page `GET|POST /device` (§3.3, a test login that
//! needs no browser), and the token endpoint's device-code polling (§3.5).
//!
//! Tests steer a pending code with [`DevServer::approve_device`],
//! [`DevServer::deny_device`], [`DevServer::throttle_device`] (the next poll
//! gets `slow_down`) and [`DevServer::expire_device`].
//!
//! [`DevServer::approve_device`]: crate::DevServer::approve_device
//! [`DevServer::deny_device`]: crate::DevServer::deny_device
//! [`DevServer::throttle_device`]: crate::DevServer::throttle_device
//! [`DevServer::expire_device`]: crate::DevServer::expire_device

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::authorize::escape;
use crate::config::DEVICE_CODE_GRANT;
use crate::oauth::{self, authenticate_client, OAuthError};
use crate::state::{random_bytes, AppState};

/// RFC 8628 §3.5: each `slow_down` adds 5 seconds to the interval.
const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// Where a device code stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DeviceStatus {
    Pending,
    Approved(String),
    Denied,
    /// Tokens were issued; the code is spent.
    Redeemed,
}

/// An issued device code.
#[derive(Clone, Debug)]
pub(crate) struct DeviceRecord {
    pub client_id: String,
    pub user_code: String,
    pub scope: Vec<String>,
    pub expires_at: SystemTime,
    pub interval: Duration,
    pub status: DeviceStatus,
    /// Answer the next poll with `slow_down`.
    pub throttle: bool,
}

/// `POST /oauth2/device_authorization`.
pub(crate) async fn authorize(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(response) = crate::faults::intercept(&state, crate::faults::Endpoint::DeviceAuthorization).await {
        return response;
    }
    match start(&state, &headers, &body) {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

fn start(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<Response, OAuthError> {
    let form = oauth::parse_form(headers, body)?;
    let client = authenticate_client(state, headers, &form)?;
    if !client.grants.iter().any(|g| g == DEVICE_CODE_GRANT) {
        return Err(OAuthError::unauthorized_client(
            "the client may not use the device grant",
        ));
    }
    let scope = match form.get("scope") {
        None => client.scopes.clone(),
        Some(scope) => {
            let wanted: Vec<String> = scope.split_whitespace().map(str::to_owned).collect();
            if wanted.iter().any(|s| !client.scopes.contains(s)) {
                return Err(OAuthError::invalid_scope(
                    "a requested scope is not allowed for this client",
                ));
            }
            wanted
        }
    };
    let device_code = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    let user_code = user_code();
    let config = &state.config;
    state.lock().devices.insert(
        device_code.clone(),
        DeviceRecord {
            client_id: client.client_id.clone(),
            user_code: user_code.clone(),
            scope,
            expires_at: state.now() + config.device_code_lifetime,
            interval: config.device_poll_interval,
            status: DeviceStatus::Pending,
            throttle: false,
        },
    );
    let verification_uri = format!("{}/device", state.base_url);
    let mut response = Json(serde_json::json!({
        "device_code": device_code,
        "user_code": user_code,
        "verification_uri": verification_uri,
        "verification_uri_complete": format!("{verification_uri}?user_code={user_code}"),
        "expires_in": config.device_code_lifetime.as_secs(),
        "interval": config.device_poll_interval.as_secs(),
    }))
    .into_response();
    oauth::no_store(response.headers_mut());
    Ok(response)
}

/// Eight letters from an alphabet without vowels or look-alikes (RFC 8628 §6.1),
/// shown as `BCDF-GHJK`.
fn user_code() -> String {
    const ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
    let letters: String = random_bytes::<8>()
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    format!("{}-{}", &letters[..4], &letters[4..])
}

/// `GET /device`: the verification page.
pub(crate) async fn verification_page() -> Html<&'static str> {
    Html(
        r#"<!doctype html><meta charset="utf-8"><title>Activate a device</title>
<form method="post" action="/device">
<label>Code <input name="user_code"></label>
<label>User <input name="username"></label>
<label>Password <input name="password" type="password"></label>
<button name="action" value="approve">Allow</button> <button name="action" value="deny">Deny</button></form>"#,
    )
}

/// `POST /device` with `user_code`, `username`, `password` and optionally
/// `action=deny`: approves (or denies) the pending code.
pub(crate) async fn verify(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = match oauth::parse_form(&headers, &body) {
        Ok(form) => form,
        Err(error) => return error.into_response(),
    };
    let field = |name: &str| form.get(name).cloned().unwrap_or_default();
    let user_code = field("user_code");
    let outcome = if field("action") == "deny" {
        state.lock().set_device_status(&user_code, DeviceStatus::Denied)
    } else {
        let username = field("username");
        let mut inner = state.lock();
        if inner.users.get(&username) != Some(&field("password")) {
            return page(StatusCode::UNAUTHORIZED, "Wrong user name or password.");
        }
        inner.set_device_status(&user_code, DeviceStatus::Approved(username))
    };
    if outcome {
        page(StatusCode::OK, "Done. You can go back to your device.")
    } else {
        page(StatusCode::NOT_FOUND, "This code is unknown, used or expired.")
    }
}

fn page(status: StatusCode, text: &str) -> Response {
    (
        status,
        Html(format!("<!doctype html><title>Device</title><p>{}</p>", escape(text))),
    )
        .into_response()
}

impl crate::state::Inner {
    /// Moves the pending code `user_code` to `status`; false if there is none.
    pub(crate) fn set_device_status(&mut self, user_code: &str, status: DeviceStatus) -> bool {
        let wanted = user_code.trim().to_ascii_uppercase();
        match self
            .devices
            .values_mut()
            .find(|d| d.user_code == wanted && d.status == DeviceStatus::Pending)
        {
            Some(record) => {
                record.status = status;
                true
            }
            None => false,
        }
    }

    /// The record of a still-unredeemed `user_code`.
    pub(crate) fn device_by_user_code(&mut self, user_code: &str) -> Option<&mut DeviceRecord> {
        self.devices
            .values_mut()
            .find(|d| d.user_code == user_code && d.status != DeviceStatus::Redeemed)
    }
}

/// The token endpoint's device-code grant (RFC 8628 §3.4, §3.5): the subject and
/// scope once approved, else the error the client must act on.
pub(crate) fn redeem(
    state: &AppState,
    client_id: &str,
    form: &oauth::Form,
) -> Result<(String, Vec<String>), OAuthError> {
    let device_code = form
        .get("device_code")
        .ok_or_else(|| OAuthError::invalid_request("missing parameter \"device_code\""))?;
    let now = state.now();
    let mut inner = state.lock();
    let record = inner
        .devices
        .get_mut(device_code)
        .filter(|d| d.client_id == client_id)
        .ok_or_else(|| OAuthError::invalid_grant("unknown device code"))?;
    if record.status == DeviceStatus::Redeemed {
        return Err(OAuthError::invalid_grant("the device code was already used"));
    }
    if record.expires_at <= now {
        return Err(OAuthError::code("expired_token", "the device code expired"));
    }
    if record.throttle {
        record.throttle = false;
        record.interval += SLOW_DOWN_STEP;
        return Err(OAuthError::code("slow_down", "polling too fast"));
    }
    match std::mem::replace(&mut record.status, DeviceStatus::Redeemed) {
        DeviceStatus::Approved(subject) => Ok((subject, record.scope.clone())),
        DeviceStatus::Denied => Err(OAuthError::code("access_denied", "the user denied the request")),
        other => {
            record.status = other;
            Err(OAuthError::code(
                "authorization_pending",
                "the user has not approved yet",
            ))
        }
    }
}
