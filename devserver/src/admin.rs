//! The admin HTTP API under `/_admin`, for out-of-process users such as the
//! Kotlin JVM tests. It mirrors the [`DevServer`](crate::DevServer) methods:
//!
//! | request | effect |
//! | --- | --- |
//! | `GET /_admin/stats` | [`Stats`](crate::Stats) as JSON |
//! | `POST /_admin/reset-stats` | zero the statistics |
//! | `POST /_admin/revoke-subject?subject=alice` | revoke all of a subject's tokens |
//! | `POST /_admin/revoke-all` | revoke every token issued so far |
//! | `POST /_admin/revoke-token?token=...` | revoke one token |
//! | `POST /_admin/set-password?username=alice&password=...` | change (or add) a user |
//! | `POST /_admin/fault?endpoint=token\|revocation\|resource` + JSON body | queue a fault |
//! | `POST /_admin/clear-faults` | drop all queued faults |
//! | `POST /_admin/rotate-dpop-nonce` | a new DPoP nonce (RFC 9449 §8): the old one is refused |
//!
//! Fault bodies: `{"kind":"status","status":503,"body":"...","content_type":"...",
//! "headers":[["Retry-After","1"]]}` (a non-string `body` is sent as JSON),
//! `{"kind":"delay","millis":200}`, `{"kind":"hang"}`, `{"kind":"drop"}`,
//! `{"kind":"partial_body"}`, `{"kind":"oversized_body","bytes":1048576}`.
//! Admin requests are not counted in the statistics.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::faults::{Endpoint, Fault};
use crate::state::AppState;

type Params = Query<HashMap<String, String>>;

/// The `/_admin` routes.
pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/_admin/stats", get(stats))
        .route("/_admin/reset-stats", post(reset_stats))
        .route("/_admin/revoke-subject", post(revoke_subject))
        .route("/_admin/revoke-all", post(revoke_all))
        .route("/_admin/revoke-token", post(revoke_token))
        .route("/_admin/set-password", post(set_password))
        .route("/_admin/fault", post(fault))
        .route("/_admin/clear-faults", post(clear_faults))
        .route("/_admin/rotate-dpop-nonce", post(rotate_dpop_nonce))
}

async fn stats(State(state): State<Arc<AppState>>) -> Response {
    Json(state.lock().stats.clone()).into_response()
}

async fn reset_stats(State(state): State<Arc<AppState>>) -> StatusCode {
    state.lock().stats = Default::default();
    StatusCode::NO_CONTENT
}

async fn revoke_all(State(state): State<Arc<AppState>>) -> StatusCode {
    state.lock().revoke_all();
    StatusCode::NO_CONTENT
}

async fn revoke_subject(State(state): State<Arc<AppState>>, Query(q): Params) -> Response {
    match q.get("subject") {
        Some(subject) => {
            state.lock().revoke_subject(subject);
            StatusCode::NO_CONTENT.into_response()
        }
        None => bad_request("missing query parameter \"subject\""),
    }
}

async fn revoke_token(State(state): State<Arc<AppState>>, Query(q): Params) -> Response {
    match q.get("token") {
        Some(token) => {
            state.lock().revoke(token, None);
            StatusCode::NO_CONTENT.into_response()
        }
        None => bad_request("missing query parameter \"token\""),
    }
}

async fn set_password(State(state): State<Arc<AppState>>, Query(q): Params) -> Response {
    match (q.get("username"), q.get("password")) {
        (Some(username), Some(password)) => {
            state.lock().users.insert(username.clone(), password.clone());
            StatusCode::NO_CONTENT.into_response()
        }
        _ => bad_request("missing query parameter \"username\" or \"password\""),
    }
}

async fn rotate_dpop_nonce(State(state): State<Arc<AppState>>) -> StatusCode {
    state.lock().dpop.rotate_nonce();
    StatusCode::NO_CONTENT
}

async fn clear_faults(State(state): State<Arc<AppState>>) -> StatusCode {
    state.lock().faults.clear();
    StatusCode::NO_CONTENT
}

/// A fault as sent to `POST /_admin/fault`.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum FaultSpec {
    Delay {
        millis: u64,
    },
    Hang,
    Status {
        status: u16,
        #[serde(default)]
        body: Option<serde_json::Value>,
        #[serde(default)]
        content_type: Option<String>,
        #[serde(default)]
        headers: Vec<(String, String)>,
    },
    PartialBody,
    Drop,
    OversizedBody {
        bytes: usize,
    },
}

impl From<FaultSpec> for Fault {
    fn from(spec: FaultSpec) -> Fault {
        match spec {
            FaultSpec::Delay { millis } => Fault::Delay(Duration::from_millis(millis)),
            FaultSpec::Hang => Fault::Hang,
            FaultSpec::PartialBody => Fault::PartialBody,
            FaultSpec::Drop => Fault::Drop,
            FaultSpec::OversizedBody { bytes } => Fault::OversizedBody(bytes),
            FaultSpec::Status {
                status,
                body,
                content_type,
                headers,
            } => {
                let (body, content_type) = match body {
                    None | Some(serde_json::Value::Null) => (String::new(), content_type),
                    Some(serde_json::Value::String(text)) => (text, content_type),
                    Some(json) => (
                        json.to_string(),
                        content_type.or_else(|| Some("application/json".to_owned())),
                    ),
                };
                Fault::Status {
                    status,
                    body,
                    content_type,
                    headers,
                }
            }
        }
    }
}

async fn fault(State(state): State<Arc<AppState>>, Query(q): Params, body: Bytes) -> Response {
    let endpoint = match q.get("endpoint").map(|e| e.parse::<Endpoint>()) {
        Some(Ok(endpoint)) => endpoint,
        Some(Err(message)) => return bad_request(&message),
        None => return bad_request("missing query parameter \"endpoint\""),
    };
    let spec: FaultSpec = match serde_json::from_slice(&body) {
        Ok(spec) => spec,
        Err(e) => return bad_request(&format!("invalid fault: {e}")),
    };
    state.lock().faults.entry(endpoint).or_default().push_back(spec.into());
    StatusCode::NO_CONTENT.into_response()
}

fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(serde_json::json!({ "error": message }))).into_response()
}
