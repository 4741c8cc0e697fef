//! Fault injection: the [`Endpoint`] and [`Fault`] types, and how a queued
//! fault turns into a (broken) HTTP response.
//!
//! Faults are queued per endpoint with [`DevServer::inject`](crate::DevServer::inject);
//! each applies to exactly one upcoming request to that endpoint, first in,
//! first out. The request is still counted in the statistics.

use std::convert::Infallible;
use std::str::FromStr;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use futures_util::stream::{self, StreamExt};

use crate::state::AppState;

/// An endpoint of the server that faults can be injected into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /oauth2/token`
    Token,
    /// `POST /oauth2/revoke`
    Revocation,
    /// `/api/...` (any method)
    Resource,
    /// `GET /oauth2/jwks`
    Jwks,
    /// `POST /oauth2/device_authorization` (RFC 8628 §3.1)
    DeviceAuthorization,
}

impl FromStr for Endpoint {
    type Err = String;

    /// Parses `token`, `revocation` (or `revoke`), `resource`, `jwks` and
    /// `device_authorization` (or `device`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "token" => Ok(Endpoint::Token),
            "revocation" | "revoke" => Ok(Endpoint::Revocation),
            "resource" => Ok(Endpoint::Resource),
            "jwks" => Ok(Endpoint::Jwks),
            "device_authorization" | "device" => Ok(Endpoint::DeviceAuthorization),
            other => Err(format!(
                "unknown endpoint {other:?} (expected token, revocation, resource, jwks or device_authorization)"
            )),
        }
    }
}

/// A misbehaviour applied to one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Wait this long, then handle the request normally.
    Delay(Duration),
    /// Never answer (until the server shuts down): the client's timeout must fire.
    Hang,
    /// Answer with this status, body, optional `Content-Type` and extra headers
    /// instead of handling the request (e.g. 503, 429 with `Retry-After`,
    /// 200 with an HTML body, 400 with a custom JSON error).
    Status {
        /// HTTP status code (an invalid code becomes 500).
        status: u16,
        /// Response body.
        body: String,
        /// `Content-Type` header, if any.
        content_type: Option<String>,
        /// Extra headers (invalid names or values are skipped).
        headers: Vec<(String, String)>,
    },
    /// Status 200 with a `Content-Length` larger than what is sent, then the
    /// connection is closed: a truncated body.
    PartialBody,
    /// Abort the connection without a complete response (best effort: the
    /// response body fails immediately, so hyper closes the connection).
    Drop,
    /// Status 200, `application/json`, whose body is this many bytes: a
    /// JSON-looking prefix and padding.
    OversizedBody(usize),
}

impl Fault {
    /// A bare status response with an empty body, e.g. `Fault::status(503)`.
    pub fn status(status: u16) -> Fault {
        Fault::Status {
            status,
            body: String::new(),
            content_type: None,
            headers: Vec::new(),
        }
    }

    /// A JSON response, e.g.
    /// `Fault::json(400, serde_json::json!({"error": "invalid_grant"}))`.
    pub fn json(status: u16, body: serde_json::Value) -> Fault {
        Fault::Status {
            status,
            body: body.to_string(),
            content_type: Some("application/json".to_owned()),
            headers: Vec::new(),
        }
    }

    /// A `text/html` response, like a proxy's or captive portal's error page.
    pub fn html(status: u16, body: &str) -> Fault {
        Fault::Status {
            status,
            body: body.to_owned(),
            content_type: Some("text/html; charset=utf-8".to_owned()),
            headers: Vec::new(),
        }
    }

    /// Adds a header to a [`Fault::Status`] (other kinds are returned unchanged),
    /// e.g. `Fault::status(429).with_header("Retry-After", "2")`.
    pub fn with_header(mut self, name: &str, value: &str) -> Fault {
        if let Fault::Status { headers, .. } = &mut self {
            headers.push((name.to_owned(), value.to_owned()));
        }
        self
    }

    /// [`Fault::Delay`] of this many milliseconds.
    pub fn delay_ms(millis: u64) -> Fault {
        Fault::Delay(Duration::from_millis(millis))
    }
}

/// Applies the next queued fault for `endpoint`, if any. Returns the response
/// to send instead of handling the request, or `None` to handle it normally
/// (no fault, or a delay that has elapsed).
pub(crate) async fn intercept(state: &AppState, endpoint: Endpoint) -> Option<Response> {
    let fault = state.lock().next_fault(endpoint)?;
    match fault {
        Fault::Delay(duration) => {
            tokio::select! {
                () = tokio::time::sleep(duration) => None,
                () = state.shutdown_signal() => Some(dropped_connection()),
            }
        }
        Fault::Hang => {
            // If the client gives up, hyper drops this future with the connection.
            state.shutdown_signal().await;
            Some(dropped_connection())
        }
        Fault::Status {
            status,
            body,
            content_type,
            headers,
        } => Some(status_response(status, body, content_type, &headers)),
        Fault::PartialBody => Some(partial_body()),
        Fault::Drop => Some(dropped_connection()),
        Fault::OversizedBody(size) => Some(oversized_body(size)),
    }
}

fn status_response(status: u16, body: String, content_type: Option<String>, headers: &[(String, String)]) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let map = response.headers_mut();
    if let Some(value) = content_type.and_then(|ct| HeaderValue::from_str(&ct).ok()) {
        map.insert(CONTENT_TYPE, value);
    }
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            map.append(name, value);
        }
    }
    response
}

/// The error a faulted body stream fails with; hyper then aborts the connection.
fn broken_pipe() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "devserver fault: connection dropped",
    )
}

fn dropped_connection() -> Response {
    let body = stream::once(async { Err::<Bytes, _>(broken_pipe()) });
    json_response_with_length(Body::from_stream(body), 64)
}

fn partial_body() -> Response {
    const SENT: &[u8] = br#"{"access_token":"truncated-by-devse"#;
    let body = stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(SENT))]).chain(stream::once(async {
        // Let hyper flush the first chunk before the connection goes away.
        tokio::time::sleep(Duration::from_millis(30)).await;
        Err(broken_pipe())
    }));
    json_response_with_length(Body::from_stream(body), SENT.len() as u64 + 512)
}

fn oversized_body(size: usize) -> Response {
    const PREFIX: &[u8] = br#"{"access_token":"oversized","padding":""#;
    const SUFFIX: &[u8] = br#""}"#;
    const CHUNK: usize = 64 * 1024;
    let total = size;
    // Chunks generated lazily so a huge body costs no memory.
    let body = stream::unfold(0usize, move |sent| async move {
        if sent >= total {
            return None;
        }
        let len = (total - sent).min(CHUNK);
        let chunk: Vec<u8> = (sent..sent + len)
            .map(|i| body_byte(i, total, PREFIX, SUFFIX))
            .collect();
        Some((Ok::<_, Infallible>(Bytes::from(chunk)), sent + len))
    });
    json_response_with_length(Body::from_stream(body), size as u64)
}

/// Byte `i` of an oversized body of `total` bytes: the prefix, `x` padding,
/// and the suffix closing the JSON when it fits.
fn body_byte(i: usize, total: usize, prefix: &[u8], suffix: &[u8]) -> u8 {
    if i < prefix.len() {
        prefix[i]
    } else if total >= prefix.len() + suffix.len() && i >= total - suffix.len() {
        suffix[i - (total - suffix.len())]
    } else {
        b'x'
    }
}

fn json_response_with_length(body: Body, length: u64) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_body_is_valid_json_when_large_enough() {
        let prefix = br#"{"a":""#;
        let suffix = br#""}"#;
        let body: Vec<u8> = (0..20).map(|i| body_byte(i, 20, prefix, suffix)).collect();
        let text = String::from_utf8(body).expect("ascii");
        assert_eq!(text.len(), 20);
        assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok(), "{text}");
    }

    #[test]
    fn endpoint_parses() {
        assert_eq!("token".parse::<Endpoint>(), Ok(Endpoint::Token));
        assert_eq!("revoke".parse::<Endpoint>(), Ok(Endpoint::Revocation));
        assert!("nope".parse::<Endpoint>().is_err());
    }
}
