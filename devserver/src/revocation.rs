//! The revocation endpoint, `POST /oauth2/revoke` (RFC 7009).
//!
//! Every request is recorded in [`Stats::revocations`](crate::Stats::revocations).
//! Revoking a refresh token also revokes the access tokens issued with it;
//! revoking an access token revokes only that token. Unknown tokens, and
//! tokens of other clients (left untouched), still get 200 (§2.2).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::faults::{self, Endpoint};
use crate::oauth::{self, authenticate_client, Form, OAuthError};
use crate::state::{AppState, RevocationRecord};

/// `POST /oauth2/revoke`.
pub(crate) async fn revoke(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = oauth::parse_form(&headers, &body);
    record(&state, &headers, form.as_ref().ok());
    if let Some(response) = faults::intercept(&state, Endpoint::Revocation).await {
        return response;
    }
    match form.and_then(|form| handle(&state, &headers, &form)) {
        Ok(()) => {
            let mut response = StatusCode::OK.into_response();
            oauth::no_store(response.headers_mut());
            response
        }
        Err(error) => error.into_response(),
    }
}

fn record(state: &AppState, headers: &HeaderMap, form: Option<&Form>) {
    let empty = Form::new();
    let form = form.unwrap_or(&empty);
    let record = RevocationRecord {
        token: form.get("token").cloned().unwrap_or_default(),
        token_type_hint: form.get("token_type_hint").cloned(),
        client_id: oauth::claimed_client_id(headers, form),
        dpop_proof: headers.contains_key("dpop"),
    };
    state.lock().stats.revocations.push(record);
}

fn handle(state: &AppState, headers: &HeaderMap, form: &Form) -> Result<(), OAuthError> {
    let client = authenticate_client(state, headers, form)?;
    // A proof is optional here (RFC 7009 knows none), but one that is sent must hold.
    if let Some(proof) = headers.get("dpop").and_then(|v| v.to_str().ok()) {
        let uri = format!("{}/oauth2/revoke", state.base_url);
        match crate::dpop::verify(state, Some(proof), "POST", &uri, None) {
            Ok(_) => state.lock().stats.dpop_proofs_accepted += 1,
            Err(refusal) => {
                crate::dpop::count_refusal(state, refusal);
                return Err(match refusal {
                    crate::dpop::Refusal::Nonce => OAuthError::use_dpop_nonce(state.lock().dpop.current_nonce()),
                    other => OAuthError::code("invalid_dpop_proof", format!("DPoP proof refused: {}", other.name())),
                });
            }
        }
    }
    let token = form
        .get("token")
        .ok_or_else(|| OAuthError::invalid_request("missing parameter \"token\""))?;
    // token_type_hint only speeds up a real server's lookup; both tables are searched.
    state.lock().revoke(token, Some(&client.client_id));
    Ok(())
}
