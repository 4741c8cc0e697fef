//! [`ReqwestTransport`]: the desktop and server implementation of the seam, over
//! reqwest with rustls (feature `reqwest`, on by default).

use super::{HttpRequest, HttpResponse, HttpTransport, TransportError, TransportErrorKind, TransportFuture};
use crate::internal::secrets::{BufKind, SecretBuf};
use reqwest::header::{HeaderName, HeaderValue};

/// Carries the SDK's requests over a [`reqwest::Client`].
///
/// The SDK's default client never follows redirects; give yours
/// `redirect::Policy::none()` too (a followed redirect is refused by the core, but
/// only after it has carried the request to the other host).
#[derive(Clone, Debug)]
pub struct ReqwestTransport {
    client: reqwest::Client,
}

impl ReqwestTransport {
    /// A transport over `client` (its pool, proxy, roots and timeouts).
    pub fn new(client: reqwest::Client) -> Self {
        Self { client }
    }

    /// The client it sends with.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    async fn execute(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let method = match request.method() {
            super::HttpMethod::Get => reqwest::Method::GET,
            super::HttpMethod::Post => reqwest::Method::POST,
        };
        let mut builder = self.client.request(method, request.url().clone());
        for header in request.headers() {
            let name = HeaderName::from_bytes(header.name().as_bytes())
                .map_err(|_| TransportError::new(TransportErrorKind::Other))?;
            // Shares the (self-wiping) buffer: no plain copy of a secret header.
            let mut value = HeaderValue::from_maybe_shared(header.shared_value())
                .map_err(|_| TransportError::new(TransportErrorKind::Other))?;
            value.set_sensitive(header.is_sensitive());
            builder = builder.header(name, value);
        }
        if !request.body().is_empty() {
            builder = builder.body(request.shared_body());
        }
        let max = request.max_response_bytes();
        // The request (and our clone of its body) is gone once hyper has written it.
        drop(request);
        let mut response = builder.send().await.map_err(from_reqwest)?;
        let status = response.status().as_u16();
        let too_big = || TransportError::new(TransportErrorKind::ResponseTooLarge).with_status(status);
        let capacity = match response.content_length() {
            Some(len) if len > max as u64 => return Err(too_big()),
            Some(len) => usize::try_from(len).unwrap_or(max),
            // Unknown length: room for the largest body we accept, so it never grows.
            None => max,
        };
        let headers = response
            .headers()
            .iter()
            .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())))
            .collect();
        let mut body = SecretBuf::with_capacity(BufKind::ResponseBody, capacity);
        while let Some(chunk) = response.chunk().await.map_err(from_reqwest)? {
            if body.len().saturating_add(chunk.len()) > max {
                return Err(too_big());
            }
            body.extend(&chunk);
        }
        let url = response.url().clone();
        Ok(HttpResponse::new(status, headers, body.into_vec()).with_final_url(url))
    }
}

impl HttpTransport for ReqwestTransport {
    fn send(&self, request: HttpRequest) -> TransportFuture<'_> {
        Box::pin(self.execute(request))
    }
}

/// reqwest's error classified, and stripped of its URL (a query could hold a secret).
pub(crate) fn from_reqwest(error: reqwest::Error) -> TransportError {
    let kind = if error.is_timeout() {
        TransportErrorKind::Timeout
    } else if error.is_connect() {
        TransportErrorKind::Connect
    } else if error.is_body() || error.is_decode() {
        TransportErrorKind::Interrupted
    } else if error.is_redirect() {
        TransportErrorKind::Redirect
    } else {
        TransportErrorKind::Other
    };
    TransportError::new(kind).with_source(error.without_url())
}
