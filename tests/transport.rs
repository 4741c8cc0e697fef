//! The HTTP seam (`tokenkeeper::transport`) against the development server: every
//! request the SDK sends goes through the app's transport, and what the core
//! enforces whatever the stack does: its own timeout, the 64 KiB cap, and the
//! refusal of redirects, whether the stack hands one back or follows it.

mod common;

use common::{Harness, ALICE_PASSWORD};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokenkeeper::transport::{HttpRequest, HttpResponse, HttpTransport, ReqwestTransport, TransportFuture};
use tokenkeeper::{AuthClient, AuthConfig, AuthError, SecretString, TokenParams};
use tokenkeeper_devserver::{Endpoint, Fault};

/// What the transport saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    method: &'static str,
    path: String,
    sensitive_headers: Vec<String>,
    body_holds_password: bool,
}

/// The app's own stack: here reqwest underneath, recording each request on the way.
#[derive(Debug)]
struct Recording {
    inner: ReqwestTransport,
    seen: Mutex<Vec<Seen>>,
}

impl Recording {
    fn new(client: reqwest::Client) -> Arc<Self> {
        Arc::new(Self {
            inner: ReqwestTransport::new(client),
            seen: Mutex::default(),
        })
    }

    fn paths(&self) -> Vec<String> {
        self.seen.lock().unwrap().iter().map(|s| s.path.clone()).collect()
    }
}

impl HttpTransport for Recording {
    fn send(&self, request: HttpRequest) -> TransportFuture<'_> {
        // What an app's logging would print: no body, no sensitive header value.
        let printed = format!("{request:?}");
        assert!(
            !printed.contains(ALICE_PASSWORD) && !printed.contains("Basic"),
            "{printed}"
        );
        self.seen.lock().unwrap().push(Seen {
            method: request.method().as_str(),
            path: request.url().path().to_owned(),
            sensitive_headers: request
                .headers()
                .iter()
                .filter(|h| h.is_sensitive())
                .map(|h| h.name().to_ascii_lowercase())
                .collect(),
            body_holds_password: request
                .body()
                .windows(ALICE_PASSWORD.len())
                .any(|w| w == ALICE_PASSWORD.as_bytes()),
        });
        self.inner.send(request)
    }
}

fn plain_reqwest() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The error of the client's own token request through `transport`.
async fn token_error(h: &Harness, transport: Arc<dyn HttpTransport>) -> AuthError {
    let client = AuthClient::builder(h.config()).transport(transport).build().unwrap();
    client.client_credentials_session().access_token().await.unwrap_err()
}

#[tokio::test]
async fn every_request_the_sdk_sends_goes_through_the_apps_transport() {
    let h = Harness::start().await;
    let transport = Recording::new(plain_reqwest());

    // Discovery: the metadata GET.
    let discovered = AuthConfig::discover_through(transport.as_ref(), &h.server.base_url(), common::CLIENT_ID)
        .await
        .unwrap();
    assert_eq!(transport.paths().len(), 1, "found at the first well-known URL");
    drop(discovered);

    let client = AuthClient::builder(
        h.config()
            .device_authorization_endpoint(h.server.device_authorization_endpoint()),
    )
    .transport(transport.clone())
    .build()
    .unwrap();
    // Token endpoint (password grant, then a refresh), revocation at logout.
    let alice = client.login("alice", SecretString::from(ALICE_PASSWORD)).await.unwrap();
    alice.refresh().await.unwrap();
    // Device authorization (this client may not use the grant: the server's answer
    // came back through the transport).
    let device = client.start_device_authorization("tv", TokenParams::default()).await;
    assert!(matches!(device, Err(AuthError::UnauthorizedClient(_))), "{device:?}");
    alice.logout().await.unwrap();

    let paths = transport.paths();
    let token_calls = paths.iter().filter(|p| p.ends_with("/token")).count();
    assert!(paths[0].contains("/.well-known/"), "{paths:?}");
    assert_eq!(token_calls, 2, "{paths:?}");
    assert!(paths.iter().any(|p| p.contains("device")), "{paths:?}");
    assert!(paths.iter().any(|p| p.contains("revoke")), "{paths:?}");
    // The server saw exactly the token requests the transport carried: none went around it.
    assert_eq!(h.token_requests(), token_calls as u64);

    let seen = transport.seen.lock().unwrap().clone();
    assert_eq!(seen[0].method, "GET");
    let login = seen.iter().find(|s| s.body_holds_password).expect("the password grant");
    assert_eq!(login.method, "POST");
    assert_eq!(
        login.sensitive_headers,
        ["authorization"],
        "Basic client auth is marked sensitive"
    );
}

#[tokio::test]
async fn the_core_times_out_a_stack_that_never_answers() {
    let h = Harness::start().await;
    for _ in 0..3 {
        h.server.inject(Endpoint::Token, Fault::Hang);
    }
    // The app's client has no timeout of its own: only the core's bounds the request.
    let client = AuthClient::builder(h.config().request_timeout(Duration::from_millis(150)))
        .transport(Recording::new(plain_reqwest()))
        .build()
        .unwrap();
    let error = client.client_credentials_session().access_token().await.unwrap_err();
    assert!(
        matches!(&error, AuthError::TemporarilyUnavailable { reason, .. } if reason.contains("timed out")),
        "{error:?}"
    );
    assert_eq!(h.token_requests(), 3, "each attempt timed out, then retried");
}

#[tokio::test]
async fn a_redirect_handed_back_by_the_stack_is_refused() {
    let h = Harness::start().await;
    h.server.inject(
        Endpoint::Token,
        Fault::status(307).with_header("Location", "https://elsewhere.example/token"),
    );
    let error = token_error(&h, Recording::new(plain_reqwest())).await;
    assert!(
        matches!(&error, AuthError::InvalidResponse { status: 307, reason, .. } if reason.contains("redirect")),
        "{error:?}"
    );
    assert_eq!(h.token_requests(), 1, "a redirect is not retried");
}

/// A stack that followed a redirect: the answer comes from another URL.
#[derive(Debug)]
struct Following(ReqwestTransport);

impl HttpTransport for Following {
    fn send(&self, request: HttpRequest) -> TransportFuture<'_> {
        let mut elsewhere = request.url().clone();
        elsewhere.set_path("/moved/token");
        let sent = self.0.send(request);
        Box::pin(async move {
            let response = sent.await?;
            Ok(
                HttpResponse::new(response.status(), response.headers().to_vec(), response.body().to_vec())
                    .with_final_url(elsewhere),
            )
        })
    }
}

#[tokio::test]
async fn an_answer_from_a_followed_redirect_is_refused() {
    let h = Harness::start().await;
    let error = token_error(&h, Arc::new(Following(ReqwestTransport::new(plain_reqwest())))).await;
    assert!(
        matches!(&error, AuthError::InvalidResponse { reason, .. } if reason.contains("redirect")),
        "{error:?}"
    );
}

/// A stack that ignores `max_response_bytes` and hands over whatever it read.
#[derive(Debug)]
struct Unbounded;

impl HttpTransport for Unbounded {
    fn send(&self, _request: HttpRequest) -> TransportFuture<'_> {
        let mut body = br#"{"access_token":""#.to_vec();
        body.resize(64 * 1024 + 1, b'a');
        Box::pin(async move { Ok(HttpResponse::new(200, Vec::new(), body)) })
    }
}

#[tokio::test]
async fn the_core_caps_the_body_whatever_the_stack_read() {
    let h = Harness::start().await;
    let error = token_error(&h, Arc::new(Unbounded)).await;
    assert!(
        matches!(&error, AuthError::InvalidResponse { reason, .. } if reason.contains("larger than 64 KiB")),
        "{error:?}"
    );
}

#[tokio::test]
async fn the_reqwest_transport_stops_reading_past_the_cap() {
    let h = Harness::start().await;
    h.server.inject(Endpoint::Token, Fault::OversizedBody(64 * 1024 + 1));
    let error = token_error(&h, Recording::new(plain_reqwest())).await;
    assert!(
        matches!(&error, AuthError::InvalidResponse { status: 200, reason, .. } if reason.contains("larger than 64 KiB")),
        "{error:?}"
    );
}
