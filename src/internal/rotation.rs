//! Per-response token rotation (seed 001): the resource server hands out the token
//! for the next request in a response header. Responses of a batch can arrive in
//! any order, so a rotated token is adopted only if its expiry is later than that of
//! the token the session already holds: the session never goes back to an older token.

use crate::internal::session_core::SessionCore;
use crate::internal::token_set::TokenSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// [`observe`] for a reqwest response's headers.
#[cfg(feature = "reqwest")]
pub(crate) fn observe_map(core: &SessionCore, headers: &reqwest::header::HeaderMap) {
    observe(core, |name| headers.get(name).and_then(|v| v.to_str().ok()))
}

/// Adopts the rotated token in the headers `header` looks up (by name, in any case),
/// if rotation is enabled and one is there.
pub(crate) fn observe<'h>(core: &SessionCore, header: impl Fn(&str) -> Option<&'h str>) {
    let Some(rotation) = &core.ctx.config.token_rotation else {
        return;
    };
    if core.is_logged_out() {
        return;
    }
    let text = |name: &str| header(name);
    let now = core.ctx.clock().now();
    let Some(Rotated {
        token,
        expires_at,
        order: expiry,
    }) = parse(
        text(&rotation.token_header),
        text(&rotation.expiry_header),
        text("date"),
        now,
    )
    else {
        return;
    };
    let cached = core.cached();
    let scope = cached.as_ref().and_then(|set| set.token.scope().map(str::to_owned));
    // A rotated token is presented the way the one it replaces was (Bearer or DPoP).
    let token_type = cached.as_ref().map(|set| set.token.token_type()).unwrap_or_default();
    let mut candidate = TokenSet::new(
        token,
        scope.as_deref(),
        now,
        expires_at,
        core.ctx.config.refresh_margin,
        Some(expiry),
        core.tick(),
    );
    candidate.token = candidate.token.with_type(token_type);
    core.adopt_rotated(candidate);
}

/// A rotated token read from a response's headers.
#[derive(Debug, PartialEq)]
pub(crate) struct Rotated<'a> {
    pub token: &'a str,
    /// On our clock.
    pub expires_at: SystemTime,
    /// The server's expiry value, which orders rotated tokens.
    pub order: f64,
}

/// The pure part of [`observe`]: the token, its expiry (seconds since the epoch on the
/// server's clock) and the response's `Date`, re-based on our clock `now`.
pub(crate) fn parse<'a>(
    token: Option<&'a str>,
    expiry: Option<&str>,
    date: Option<&str>,
    now: SystemTime,
) -> Option<Rotated<'a>> {
    let token = token.map(str::trim).filter(|t| is_plausible_token(t))?;
    let Some(order) = expiry
        .map(str::trim)
        .filter(|e| e.len() <= 64)
        .and_then(|e| e.parse::<f64>().ok())
        .filter(|e| e.is_finite() && *e > 0.0 && *e < 1e11)
    else {
        tracing::warn!("a rotated token came without a usable expiry header; ignored");
        return None;
    };
    let server_expiry = UNIX_EPOCH.checked_add(Duration::from_secs_f64(order))?;
    // The expiry is on the server's clock; re-base it on ours when `Date` says they differ.
    let expires_at = match date.and_then(|d| httpdate::parse_http_date(d.trim()).ok()) {
        Some(server_now) => now
            .checked_add(server_expiry.duration_since(server_now).unwrap_or_default())
            .unwrap_or(now),
        None => server_expiry.max(now),
    };
    Some(Rotated {
        token,
        expires_at,
        order,
    })
}

fn is_plausible_token(token: &str) -> bool {
    !token.is_empty() && token.len() <= 16 * 1024 && token.bytes().all(|b| b.is_ascii_graphic())
}
