//! Authorization server metadata (RFC 8414 §3) at
//! `/.well-known/oauth-authorization-server`, and the same document at the
//! OpenID Connect discovery path `/.well-known/openid-configuration`.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::config::DEVICE_CODE_GRANT;
use crate::state::AppState;

/// `GET /.well-known/oauth-authorization-server` and `/.well-known/openid-configuration`.
pub(crate) async fn metadata(State(state): State<Arc<AppState>>) -> Json<Value> {
    let base = &state.base_url;
    let mut document = json!({
        "issuer": state.issuer(),
        "authorization_endpoint": format!("{base}/oauth2/authorize"),
        "token_endpoint": format!("{base}/oauth2/token"),
        "revocation_endpoint": format!("{base}/oauth2/revoke"),
        "device_authorization_endpoint": format!("{base}/oauth2/device_authorization"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token", "password", "client_credentials", DEVICE_CODE_GRANT],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "authorization_response_iss_parameter_supported": state.config.authorization_response_iss,
        "scopes_supported": ["openid", "profile", "email", "read", "write", "admin"],
        "jwks_uri": format!("{base}/oauth2/jwks"),
        "userinfo_endpoint": format!("{base}/api/userinfo"),
        "end_session_endpoint": format!("{base}/oauth2/logout"),
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "pushed_authorization_request_endpoint": format!("{base}/oauth2/par"),
        "require_pushed_authorization_requests": state.config.require_pushed_authorization_requests,
        "id_token_signing_alg_values_supported": [state.config.id_token_alg.name()],
        "subject_types_supported": ["public"],
    });
    if state.config.dpop.advertise {
        document["dpop_signing_alg_values_supported"] = json!(["ES256"]);
    }
    Json(document)
}
