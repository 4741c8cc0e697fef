//! Per-response token rotation (seed 001): the resource server hands out the token
//! for the next request in a response header. Responses of a batch can arrive in
//! any order, so a rotated token is adopted only if its expiry is later than that of
//! the token the session already holds: the session never goes back to an older token.

use crate::internal::session_core::SessionCore;
use crate::internal::token_set::TokenSet;
use reqwest::header::{HeaderMap, DATE};
use std::time::{Duration, UNIX_EPOCH};

/// Adopts the rotated token in `headers`, if rotation is enabled and one is there.
pub(crate) fn observe(core: &SessionCore, headers: &HeaderMap) {
    let Some(rotation) = &core.ctx.config.token_rotation else {
        return;
    };
    if core.is_logged_out() {
        return;
    }
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let Some(token) = text(&rotation.token_header).filter(|t| is_plausible_token(t)) else {
        return;
    };
    let Some(expiry) = text(&rotation.expiry_header)
        .and_then(|e| e.parse::<f64>().ok())
        .filter(|e| e.is_finite() && *e > 0.0 && *e < 1e11)
    else {
        tracing::warn!("a rotated token came without a usable expiry header; ignored");
        return;
    };
    let now = core.ctx.clock().now();
    let server_expiry = UNIX_EPOCH + Duration::from_secs_f64(expiry);
    // The expiry is on the server's clock; re-base it on ours when `Date` says they differ.
    let expires_at = match text(DATE.as_str()).and_then(|d| httpdate::parse_http_date(d).ok()) {
        Some(server_now) => now
            .checked_add(server_expiry.duration_since(server_now).unwrap_or_default())
            .unwrap_or(now),
        None => server_expiry.max(now),
    };
    let scope = core.cached().and_then(|set| set.token.scope().map(str::to_owned));
    let candidate = TokenSet::new(
        token,
        scope.as_deref(),
        now,
        expires_at,
        core.ctx.config.refresh_margin,
        Some(expiry),
        core.tick(),
    );
    core.adopt_rotated(candidate);
}

fn is_plausible_token(token: &str) -> bool {
    !token.is_empty() && token.len() <= 16 * 1024 && token.bytes().all(|b| b.is_ascii_graphic())
}
