//! [`HttpTransport`] as a foreign trait: the app's own HTTP stack (OkHttp on Android,
//! URLSession on iOS) carries every request the core sends, so the platform's trust
//! store, proxy, pinning and network tools apply. [`ForeignTransport`] adapts it to the
//! core's `tokenkeeper::transport::HttpTransport`; the timeout, the 64 KiB cap and the
//! refusal of redirects stay in the core.
//!
//! Copies of a secret body: the core's buffer is wiped after the call, and the Kotlin
//! and Swift transports wipe their `ByteArray`/`Data` once the stack is done. UniFFI
//! carries the bytes across in a buffer of its own, which it frees without wiping;
//! the platform stack may keep copies in its own buffers (docs/android.md, docs/ios.md).

use std::fmt;
use std::sync::Arc;

/// One request header. `sensitive` marks a secret (`Authorization: Basic …`): never
/// log it.
#[derive(Clone, uniffi::Record)]
pub struct HttpHeader {
    /// The name (compare case-insensitively).
    pub name: String,
    /// The value.
    pub value: String,
    /// Whether the value is a secret.
    pub sensitive: bool,
}

impl fmt::Debug for HttpHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = if self.sensitive { "[redacted]" } else { &self.value };
        write!(f, "{}: {value}", self.name)
    }
}

/// A request to send. The body may hold secrets (a client secret, a password, a
/// refresh token): never log it, and wipe the array once the stack is done with it.
#[derive(uniffi::Record)]
pub struct HttpRequest {
    /// `GET` or `POST`.
    pub method: String,
    /// The URL. Do not follow redirects away from it.
    pub url: String,
    /// The headers, in order. The user agent and `Content-Length` are the stack's.
    pub headers: Vec<HttpHeader>,
    /// The body (empty for a `GET`).
    pub body: Vec<u8>,
    /// How long the core waits for the answer; the stack may apply it too.
    pub timeout_ms: u64,
    /// The largest body the core accepts: stop reading past it (`HttpException.TooLarge`).
    pub max_response_bytes: u64,
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("headers", &self.headers)
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// One response header.
#[derive(Clone, Debug, uniffi::Record)]
pub struct HttpResponseHeader {
    /// The name, in any case.
    pub name: String,
    /// The value.
    pub value: String,
}

/// The answer: status, every header (a header may repeat), the whole body, and the
/// URL it came from if the stack knows it (an answer from another URL is refused).
#[derive(uniffi::Record)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Every header, `Date`, `Retry-After` and `WWW-Authenticate` included.
    pub headers: Vec<HttpResponseHeader>,
    /// The body; it may hold tokens.
    pub body: Vec<u8>,
    /// The URL of the answer, if the stack reports it.
    pub final_url: Option<String>,
}

/// Why the stack got no answer. The message must name no URL query and no body.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum HttpError {
    /// No connection (DNS, refused, TLS handshake, untrusted certificate, pinning).
    #[error("could not connect: {reason}")]
    Connect {
        /// What failed.
        reason: String,
    },
    /// The stack's own timeout fired.
    #[error("timed out")]
    Timeout,
    /// The connection broke before the whole answer arrived.
    #[error("interrupted: {reason}")]
    Interrupted {
        /// What failed.
        reason: String,
    },
    /// The body was larger than `max_response_bytes`.
    #[error("response body too large")]
    TooLarge {
        /// The answer's status.
        status: u16,
    },
    /// Anything else.
    #[error("{reason}")]
    Other {
        /// What failed.
        reason: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for HttpError {
    fn from(error: uniffi::UnexpectedUniFFICallbackError) -> Self {
        Self::Other {
            reason: format!("the app's HttpTransport threw: {}", error.reason),
        }
    }
}

/// The app's HTTP stack. Implemented in Kotlin by `OkHttpTransport` and in Swift by
/// `URLSessionTransport`; an app may write its own. `send` is called from
/// tokenkeeper's own threads; it must not follow redirects.
#[uniffi::export(with_foreign)]
#[async_trait::async_trait]
pub trait HttpTransport: Send + Sync {
    /// Sends `request` and returns the whole answer, whatever its status.
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError>;
}

/// The core's view of the app's stack.
pub(crate) struct ForeignTransport(pub(crate) Arc<dyn HttpTransport>);

impl fmt::Debug for ForeignTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ForeignTransport")
    }
}

impl sdk::transport::HttpTransport for ForeignTransport {
    fn send(&self, request: sdk::transport::HttpRequest) -> sdk::transport::TransportFuture<'_> {
        let foreign = HttpRequest {
            method: request.method().as_str().to_owned(),
            url: request.url().as_str().to_owned(),
            headers: request
                .headers()
                .iter()
                .map(|h| HttpHeader {
                    name: h.name().to_owned(),
                    value: h.value_str().unwrap_or_default().to_owned(),
                    sensitive: h.is_sensitive(),
                })
                .collect(),
            body: request.body().to_vec(),
            timeout_ms: u64::try_from(request.timeout().as_millis()).unwrap_or(u64::MAX),
            max_response_bytes: u64::try_from(request.max_response_bytes()).unwrap_or(u64::MAX),
        };
        // The core's own copy of the body is wiped here, before the stack runs.
        drop(request);
        let transport = Arc::clone(&self.0);
        Box::pin(async move {
            let response = transport.send(foreign).await.map_err(core_error)?;
            let mut answer = sdk::transport::HttpResponse::new(
                response.status,
                response.headers.into_iter().map(|h| (h.name, h.value)).collect(),
                response.body,
            );
            if let Some(url) = response.final_url.as_deref().and_then(|u| u.parse().ok()) {
                answer = answer.with_final_url(url);
            }
            Ok(answer)
        })
    }
}

fn core_error(error: HttpError) -> sdk::transport::TransportError {
    use sdk::transport::{TransportError, TransportErrorKind as Kind};
    let kind = match &error {
        HttpError::Connect { .. } => Kind::Connect,
        HttpError::Timeout => Kind::Timeout,
        HttpError::Interrupted { .. } => Kind::Interrupted,
        HttpError::TooLarge { status } => return TransportError::new(Kind::ResponseTooLarge).with_status(*status),
        HttpError::Other { .. } => Kind::Other,
    };
    TransportError::new(kind).with_source(error)
}
