//! Secrets in memory: buffers that are wiped when dropped and never leave a freed,
//! un-wiped copy behind when they grow, and the scrubbing of server text that echoes
//! a secret the SDK sent.
//!
//! A `Vec` that grows copies its bytes into a new allocation and frees the old one
//! without clearing it, so a secret would survive in freed heap memory. [`SecretBuf`]
//! is allocated at its final size up front, and if it must still grow it moves to a
//! new allocation itself and wipes the old one.

use bytes::Bytes;
#[cfg(feature = "reqwest")]
use reqwest::header::HeaderValue;
use std::fmt;
use zeroize::Zeroize;

/// What a [`SecretBuf`] holds; only used by the test hook to tell buffers apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BufKind {
    /// A form-encoded token or revocation request body.
    RequestBody,
    /// The body of a response from the authorization server.
    ResponseBody,
    /// An `Authorization` header value (`Basic …` or `Bearer …`).
    Authorization,
}

/// A byte buffer that is zeroized on drop.
pub(crate) struct SecretBuf {
    bytes: Vec<u8>,
    kind: BufKind,
}

impl SecretBuf {
    /// An empty buffer with room for `capacity` bytes.
    pub(crate) fn with_capacity(kind: BufKind, capacity: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(capacity),
            kind,
        }
    }

    /// Appends `data`. If it does not fit, the contents move to a new, larger
    /// allocation and the old one is wiped before it is freed.
    pub(crate) fn extend(&mut self, data: &[u8]) {
        let needed = self.bytes.len().saturating_add(data.len());
        if needed > self.bytes.capacity() {
            let mut grown = Vec::with_capacity(needed.max(self.bytes.capacity().saturating_mul(2)));
            grown.extend_from_slice(&self.bytes);
            let mut old = std::mem::replace(&mut self.bytes, grown);
            wipe(self.kind, &mut old);
        }
        self.bytes.extend_from_slice(data);
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes
    }

    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// A buffer that takes over `bytes` (no copy) and wipes it when dropped.
    pub(crate) fn from_vec(kind: BufKind, bytes: Vec<u8>) -> Self {
        Self { bytes, kind }
    }

    /// The bytes, moved out without a copy; the caller takes over wiping them.
    #[cfg(feature = "reqwest")]
    pub(crate) fn into_vec(mut self) -> Vec<u8> {
        std::mem::take(&mut self.bytes)
    }

    /// A `Bytes` that owns this buffer: reqwest and hyper share it without copying,
    /// and the buffer is wiped when the last of them drops it.
    pub(crate) fn into_bytes(self) -> Bytes {
        Bytes::from_owner(self)
    }

    /// A sensitive header value backed by this buffer (no plain copy is made).
    #[cfg(feature = "reqwest")]
    pub(crate) fn into_header_value(self) -> Option<HeaderValue> {
        let mut value = HeaderValue::from_maybe_shared(self.into_bytes()).ok()?;
        value.set_sensitive(true);
        Some(value)
    }
}

impl AsRef<[u8]> for SecretBuf {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for SecretBuf {
    fn drop(&mut self) {
        wipe(self.kind, &mut self.bytes);
    }
}

/// Zeroes `bytes` (its whole capacity) before its allocation is freed.
fn wipe(kind: BufKind, bytes: &mut Vec<u8>) {
    #[cfg(any(test, feature = "fuzzing"))]
    let held = wipe_hook::markers_in(bytes);
    bytes.as_mut_slice().zeroize();
    #[cfg(any(test, feature = "fuzzing"))]
    wipe_hook::record(kind, held, bytes.iter().all(|b| *b == 0));
    #[cfg(not(any(test, feature = "fuzzing")))]
    let _ = kind;
    // Also clears the spare capacity and sets the length to zero.
    bytes.zeroize();
}

impl fmt::Debug for SecretBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBuf({:?}, {} bytes)", self.kind, self.bytes.len())
    }
}

/// Replaces every occurrence of a secret the SDK sent in `text` (server text such as
/// `error_description`, which some servers fill with the rejected request).
pub(crate) fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        if out.contains(secret) {
            out = out.replace(secret, "[redacted]");
        }
    }
    out
}

/// A test hook that sees every [`SecretBuf`] as it is dropped: tests plant a unique
/// marker (a password), and learn which kinds of buffer held it and whether those
/// bytes were all zero after the wipe, without reading freed memory.
#[cfg(any(test, feature = "fuzzing"))]
pub mod wipe_hook {
    use super::BufKind;
    use std::sync::Mutex;

    /// One observed drop of a buffer that held a watched marker.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Wiped {
        /// What the buffer was: "request body", "response body" or "authorization header".
        pub kind: &'static str,
        /// The watched markers it held before the wipe.
        pub held: Vec<String>,
        /// Whether every byte was zero after the wipe, before the memory was freed.
        pub all_zero: bool,
    }

    static WATCHED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    static SEEN: Mutex<Vec<Wiped>> = Mutex::new(Vec::new());

    /// Starts watching for buffers that hold `marker`.
    pub fn watch(marker: &str) {
        WATCHED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(marker.to_owned());
    }

    /// The drops seen so far of buffers that held `marker`.
    pub fn seen(marker: &str) -> Vec<Wiped> {
        SEEN.lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|w| w.held.iter().any(|m| m == marker))
            .cloned()
            .collect()
    }

    pub(super) fn markers_in(bytes: &[u8]) -> Vec<String> {
        let watched = WATCHED.lock().unwrap_or_else(|p| p.into_inner());
        watched
            .iter()
            .filter(|m| !m.is_empty() && bytes.windows(m.len()).any(|w| w == m.as_bytes()))
            .cloned()
            .collect()
    }

    pub(super) fn record(kind: BufKind, held: Vec<String>, all_zero: bool) {
        if held.is_empty() {
            return;
        }
        let kind = match kind {
            BufKind::RequestBody => "request body",
            BufKind::ResponseBody => "response body",
            BufKind::Authorization => "authorization header",
        };
        SEEN.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Wiped { kind, held, all_zero });
    }
}

#[cfg(test)]
mod tests {
    use super::wipe_hook::{seen, watch};
    use super::*;
    use crate::{AuthClient, AuthConfig, ExposeSecret, SecretString};
    use base64::Engine;
    use std::time::Duration;
    use tokenkeeper_devserver::{ClientSpec, DevServer, DevServerConfig, Endpoint, Fault, UserSpec};

    #[test]
    fn a_buffer_that_grows_wipes_its_old_allocation_and_itself() {
        watch("grow-marker-5b1e");
        let mut buf = SecretBuf::with_capacity(BufKind::RequestBody, 4);
        buf.extend(b"grow-marker-5b1e");
        buf.extend(&[b'x'; 100]);
        drop(buf);
        let wiped = seen("grow-marker-5b1e");
        // The first allocation (after the first growth) and the final one.
        assert!(wiped.len() >= 2, "{wiped:?}");
        assert!(wiped.iter().all(|w| w.all_zero), "{wiped:?}");
    }

    /// Waits (bounded) until the wipe of `kind` holding `marker` has been seen: hyper
    /// drops a request body on its own task once the request is written.
    async fn wiped(marker: &str, kind: &str) -> bool {
        for _ in 0..200 {
            if seen(marker).iter().any(|w| w.kind == kind) {
                return seen(marker).iter().filter(|w| w.kind == kind).all(|w| w.all_zero);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    // Over reqwest (it sends a resource request through `Session::send`); the phone
    // build's transport is the app's and is covered by the next test.
    #[cfg(feature = "reqwest")]
    #[tokio::test]
    async fn request_and_response_buffers_are_zeroized_after_a_token_request() {
        // Unique values, so parallel tests cannot be mistaken for this one.
        let (client_secret, password) = ("zz-secret-3f9a2c", "zz-password-8d41e7");
        let (issued, refreshed) = ("zz-issued-token-c0ffee", "zz-refreshed-token-beef42");
        let server = DevServer::start(DevServerConfig {
            clients: vec![ClientSpec::confidential(
                "zz-client",
                client_secret,
                &["read"],
                &["password", "refresh_token"],
            )],
            users: vec![UserSpec::new("zz-user", password)],
            ..Default::default()
        })
        .await
        .unwrap();
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("zz-client:{client_secret}"))
        );
        for marker in [password, issued, refreshed, basic.as_str()] {
            watch(marker);
        }
        let client = AuthClient::new(
            AuthConfig::new(server.token_endpoint(), "zz-client")
                .client_secret(SecretString::from(client_secret))
                .revocation_endpoint(server.revocation_endpoint()),
        )
        .unwrap();

        // The password grant: the request body held the password.
        let session = client.login("zz-user", SecretString::from(password)).await.unwrap();
        assert!(wiped(password, "request body").await, "{:?}", seen(password));

        // A token response we know the content of: its body buffer held the token.
        server.inject(
            Endpoint::Token,
            Fault::json(
                200,
                serde_json::json!({"access_token": issued, "token_type": "Bearer", "expires_in": 600}),
            ),
        );
        let token = session.refresh().await.unwrap();
        assert_eq!(token.expose_secret(), issued);
        assert!(wiped(issued, "response body").await, "{:?}", seen(issued));

        // The Bearer header of `send` (the resource server rejects this unknown token;
        // the header was built and sent all the same).
        let _ = session.send(client.http().get(server.resource_url("/me"))).await;
        assert!(wiped(issued, "authorization header").await, "{:?}", seen(issued));

        // The Basic value lives as long as the client: wiped once it is gone.
        assert!(seen(&basic).is_empty(), "still in use: {:?}", seen(&basic));
        drop((session, token, client));
        assert!(wiped(&basic, "authorization header").await, "{:?}", seen(&basic));
    }

    /// The app's own stack (any `HttpTransport`) gets the body as bytes that are
    /// wiped once it drops the request, and its answer is wiped once parsed.
    #[tokio::test]
    async fn a_custom_transport_gets_a_body_that_is_wiped_after_the_call() {
        use crate::transport::{HttpRequest, HttpResponse, HttpTransport, TransportFuture};

        #[derive(Debug)]
        struct Answering;
        impl HttpTransport for Answering {
            fn send(&self, request: HttpRequest) -> TransportFuture<'_> {
                // Keep a fact about the body, not the body.
                let held = request.body().windows(19).any(|w| w == b"zz-password-custom1");
                drop(request);
                let body = serde_json::json!({
                    "access_token": if held { "zz-custom-token-7e" } else { "no-password-seen" },
                    "token_type": "Bearer",
                    "expires_in": 600,
                });
                Box::pin(async move { Ok(HttpResponse::new(200, Vec::new(), body.to_string().into_bytes())) })
            }
        }

        let (password, issued) = ("zz-password-custom1", "zz-custom-token-7e");
        watch(password);
        watch(issued);
        let client = AuthClient::builder(AuthConfig::new("https://as.example/token", "zz-custom-client"))
            .transport(std::sync::Arc::new(Answering))
            .build()
            .unwrap();
        let session = client.login("zz-user", SecretString::from(password)).await.unwrap();
        let token = session.access_token().await.unwrap();
        assert_eq!(
            token.expose_secret(),
            issued,
            "the transport saw the password in the body"
        );
        assert!(wiped(password, "request body").await, "{:?}", seen(password));
        assert!(wiped(issued, "response body").await, "{:?}", seen(issued));
    }
}
