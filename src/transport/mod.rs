//! The HTTP seam: every request the SDK itself sends (token endpoint, revocation,
//! discovery, device authorization, and whatever later features add) goes through
//! one [`HttpTransport`]. The app's own HTTP stack can carry them, so the
//! platform's trust store, proxy, pinning and network tools apply: OkHttp on
//! Android, URLSession on iOS (through the FFI crate), or any Rust client.
//!
//! What stays in the core whatever the stack is: the request timeout
//! ([`HttpRequest::timeout`], enforced around [`HttpTransport::send`]), the
//! 64 KiB response cap ([`HttpRequest::max_response_bytes`], checked again on the
//! answer), the refusal of redirects (a 3xx answer, or an answer from another URL
//! than the one asked, is an error), and the protocol, retry, backoff and clock
//! logic. A transport moves bytes and nothing else.
//!
//! Secrets in a request (a client secret, a password, a refresh token, a code
//! verifier) are in its body or in a header marked
//! [`sensitive`](HttpHeader::is_sensitive); both are held in buffers that are wiped
//! when the request is dropped, so a transport should drop the request (or wipe its
//! own copies) once the bytes are written. The response body is wiped on drop too.
//!
//! With the default `reqwest` feature, [`ReqwestTransport`] is the implementation
//! and the one used when the app gives none.

#[cfg(feature = "reqwest")]
mod reqwest_transport;

#[cfg(feature = "reqwest")]
pub(crate) use reqwest_transport::from_reqwest as reqwest_transport_error;
#[cfg(feature = "reqwest")]
pub use reqwest_transport::ReqwestTransport;

use bytes::Bytes;
use std::borrow::Cow;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use url::Url;
use zeroize::Zeroizing;

/// The largest response body the core accepts from an authorization server.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The future returned by [`HttpTransport::send`].
pub type TransportFuture<'a> = Pin<Box<dyn Future<Output = Result<HttpResponse, TransportError>> + Send + 'a>>;

/// The one thing the SDK asks of an HTTP stack: send this request, return the answer.
///
/// Implementations must not follow redirects (the core refuses a redirected answer
/// anyway, but a followed redirect has already carried the request's secrets to
/// another host), should stop reading a body larger than
/// [`HttpRequest::max_response_bytes`], and must not log a request body or a
/// sensitive header. The core applies [`HttpRequest::timeout`] around the call; a
/// transport may apply its own as well.
///
/// ```
/// use tokenkeeper::transport::{HttpRequest, HttpResponse, HttpTransport, TransportFuture};
///
/// /// Answers every request with 503, as a captive portal might.
/// #[derive(Debug)]
/// struct Offline;
///
/// impl HttpTransport for Offline {
///     fn send(&self, _request: HttpRequest) -> TransportFuture<'_> {
///         Box::pin(async { Ok(HttpResponse::new(503, Vec::new(), Vec::new())) })
///     }
/// }
/// ```
pub trait HttpTransport: Send + Sync + fmt::Debug + 'static {
    /// Sends `request` and reads the whole response.
    fn send(&self, request: HttpRequest) -> TransportFuture<'_>;
}

/// The HTTP method of an [`HttpRequest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HttpMethod {
    /// `GET` (discovery, and JWKS or UserInfo in later features).
    Get,
    /// `POST` (token, revocation, device authorization).
    Post,
}

impl HttpMethod {
    /// The method's name on the wire: `"GET"`, `"POST"`.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
        }
    }
}

impl fmt::Display for HttpMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One request header. A sensitive one (`Authorization: Basic …`, a DPoP proof) is
/// kept in a buffer that is wiped when the last request holding it is gone, and its
/// value is never printed by `Debug`.
#[derive(Clone)]
pub struct HttpHeader {
    name: Cow<'static, str>,
    value: Bytes,
    sensitive: bool,
}

impl HttpHeader {
    /// The header's name, as the SDK spells it (compare case-insensitively).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The header's value (visible ASCII for every header the SDK builds).
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// The value as text, if it is valid UTF-8.
    pub fn value_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.value).ok()
    }

    /// Whether the value is a secret: never log it, and wipe any copy of it.
    pub fn is_sensitive(&self) -> bool {
        self.sensitive
    }

    #[cfg(feature = "reqwest")]
    pub(crate) fn shared_value(&self) -> Bytes {
        self.value.clone()
    }
}

impl fmt::Debug for HttpHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.sensitive {
            write!(f, "{}: [redacted]", self.name)
        } else {
            write!(f, "{}: {:?}", self.name, String::from_utf8_lossy(&self.value))
        }
    }
}

/// A request the SDK sends: method, URL, headers and body, plus the limits the core
/// applies to it. The body of a token request holds secrets; it is wiped when the
/// request (and every clone of its body) is dropped.
pub struct HttpRequest {
    method: HttpMethod,
    url: Url,
    headers: Vec<HttpHeader>,
    body: Bytes,
    timeout: Duration,
    max_response_bytes: usize,
}

impl HttpRequest {
    /// A request with no headers and no body, a 30 s timeout and the 64 KiB cap.
    pub fn new(method: HttpMethod, url: Url) -> Self {
        Self {
            method,
            url,
            headers: Vec::with_capacity(4),
            body: Bytes::new(),
            timeout: Duration::from_secs(30),
            max_response_bytes: MAX_RESPONSE_BYTES,
        }
    }

    /// Adds a header that holds no secret.
    pub fn header(mut self, name: impl Into<Cow<'static, str>>, value: impl Into<String>) -> Self {
        self.headers.push(HttpHeader {
            name: name.into(),
            value: Bytes::from(value.into()),
            sensitive: false,
        });
        self
    }

    /// Adds a header whose value is a secret, in a buffer the caller owns (the SDK
    /// passes one that wipes itself when its last holder drops it).
    pub(crate) fn sensitive_header(mut self, name: &'static str, value: Bytes) -> Self {
        self.headers.push(HttpHeader {
            name: Cow::Borrowed(name),
            value,
            sensitive: true,
        });
        self
    }

    /// Sets the body (the SDK passes a buffer that wipes itself when dropped).
    pub(crate) fn with_body(mut self, body: Bytes) -> Self {
        self.body = body;
        self
    }

    pub(crate) fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The HTTP method.
    pub fn method(&self) -> HttpMethod {
        self.method
    }

    /// The URL (no redirect may take the request elsewhere).
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The headers, in the order the SDK added them. The user agent is the
    /// transport's own; `Content-Length` is the transport's to set.
    pub fn headers(&self) -> &[HttpHeader] {
        &self.headers
    }

    /// The body, empty for a `GET`. It may hold secrets: never log it.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as a shared buffer (no copy), for transports that take `Bytes`.
    /// The buffer is wiped when the last clone of it is dropped.
    #[cfg(feature = "reqwest")]
    pub(crate) fn shared_body(&self) -> Bytes {
        self.body.clone()
    }

    /// How long the core waits for the whole answer before it gives up.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The largest response body the core accepts; a transport can stop reading there.
    pub fn max_response_bytes(&self) -> usize {
        self.max_response_bytes
    }
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Neither the body nor the query (an authorization request could carry state).
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("host", &self.url.host_str())
            .field("path", &self.url.path())
            .field("headers", &self.headers)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

/// What a transport returns: status, headers (all of them, including `Date`,
/// `Retry-After`, `WWW-Authenticate`, `DPoP-Nonce`) and the whole body.
pub struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Zeroizing<Vec<u8>>,
    url: Option<Url>,
}

impl HttpResponse {
    /// A response with this status, headers (name, value; names in any case; a
    /// header may repeat) and body. The body is wiped when the response is dropped.
    pub fn new(status: u16, headers: Vec<(String, String)>, body: Vec<u8>) -> Self {
        Self {
            status,
            headers,
            body: Zeroizing::new(body),
            url: None,
        }
    }

    /// Records the URL the answer came from, if the stack reports it: if it is not
    /// the request's URL, a redirect was followed and the core refuses the answer.
    pub fn with_final_url(mut self, url: Url) -> Self {
        self.url = Some(url);
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Every header, in the order the transport gave them.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The first value of the header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of the header `name` (case-insensitive), e.g. several
    /// `WWW-Authenticate` challenges.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body. A token response holds tokens: never log it.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The URL the answer came from, if the transport reported it.
    pub fn final_url(&self) -> Option<&Url> {
        self.url.as_ref()
    }

    pub(crate) fn take_headers(&mut self) -> Vec<(String, String)> {
        std::mem::take(&mut self.headers)
    }

    /// The body, moved out without a copy (the caller must wipe it).
    pub(crate) fn take_body(&mut self) -> Vec<u8> {
        std::mem::take(&mut *self.body)
    }
}

impl fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("headers", &self.headers.len())
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

/// Why a transport got no answer. Its message is the kind's fixed text: never a
/// URL (a query could carry a secret) or a body fragment.
#[derive(Debug)]
pub struct TransportError {
    kind: TransportErrorKind,
    status: Option<u16>,
    source: Option<Box<dyn Error + Send + Sync + 'static>>,
}

/// The kind of a [`TransportError`], which decides the message the app sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportErrorKind {
    /// No connection could be made (DNS, refused, TLS handshake, untrusted certificate).
    Connect,
    /// The stack's own timeout fired.
    Timeout,
    /// The connection broke before the whole response arrived.
    Interrupted,
    /// The stack was about to follow a redirect and refused.
    Redirect,
    /// The body was larger than [`HttpRequest::max_response_bytes`].
    ResponseTooLarge,
    /// Anything else.
    Other,
}

impl TransportError {
    /// An error of this kind with no further cause.
    pub fn new(kind: TransportErrorKind) -> Self {
        Self {
            kind,
            status: None,
            source: None,
        }
    }

    /// Keeps `source` (stripped of any URL or secret) as the cause.
    pub fn with_source(mut self, source: impl Into<Box<dyn Error + Send + Sync + 'static>>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Records the status of the answer that failed (for
    /// [`ResponseTooLarge`](TransportErrorKind::ResponseTooLarge)).
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// The kind.
    pub fn kind(&self) -> TransportErrorKind {
        self.kind
    }

    /// The status of the answer, if one had started to arrive.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    pub(crate) fn into_source(self) -> Option<Box<dyn Error + Send + Sync + 'static>> {
        self.source
    }
}

impl TransportErrorKind {
    pub(crate) fn message(self) -> &'static str {
        match self {
            TransportErrorKind::Connect => "could not connect to the server",
            TransportErrorKind::Timeout => "the request timed out",
            TransportErrorKind::Interrupted => "the connection broke before the whole response arrived",
            TransportErrorKind::Redirect => "the server redirected the request, which is not followed",
            TransportErrorKind::ResponseTooLarge => "the response body is too large",
            TransportErrorKind::Other => "the HTTP request failed",
        }
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.message())
    }
}

impl Error for TransportError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}
