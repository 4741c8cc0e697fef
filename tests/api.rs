//! The public API as an app sees it (issue 15): a 403 reaches the app whole, errors
//! name the party that failed and chain to their cause, and no message or cause
//! carries a secret.

mod common;

use common::{password, value, Harness, ALICE_PASSWORD, CLIENT_SECRET};
use serde_json::json;
use std::error::Error;
use std::sync::Arc;
use std::time::Duration;
use tokenkeeper::{
    AuthClient, AuthConfig, AuthError, InsufficientScope, RetryPolicy, SecretString, StoreError, TokenStore,
};
use tokenkeeper_devserver::{Endpoint, Fault};

/// Every message in `error`'s chain, outermost first.
fn chain(error: &(dyn Error + 'static)) -> Vec<String> {
    let mut messages = vec![error.to_string()];
    let mut next = error.source();
    while let Some(cause) = next {
        messages.push(cause.to_string());
        next = cause.source();
    }
    messages
}

/// The first cause of type `T` in `error`'s chain.
fn find_cause<'a, T: Error + 'static>(error: &'a (dyn Error + 'static)) -> Option<&'a T> {
    let mut next = error.source();
    while let Some(cause) = next {
        if let Some(found) = cause.downcast_ref::<T>() {
            return Some(found);
        }
        next = cause.source();
    }
    None
}

/// A loopback URL on which nothing listens: the port was just bound and released.
fn closed_port_url(path: &str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}{path}")
}

#[tokio::test]
async fn a_403_body_and_headers_reach_the_app() {
    let h = Harness::start().await;
    let client = h.client();
    let machine = client.client_credentials_session();
    machine.access_token().await.unwrap();
    let body = json!({"error": "forbidden", "detail": "the billing plan does not include exports"});
    h.server.inject(
        Endpoint::Resource,
        Fault::json(403, body.clone())
            .with_header(
                "WWW-Authenticate",
                r#"Bearer error="insufficient_scope", scope="exports", error_description="needs exports""#,
            )
            .with_header("X-Request-Id", "req-42"),
    );

    let response = machine
        .send(client.http().get(h.server.resource_url("/exports")))
        .await
        .expect("a 403 is a response, not an error");

    assert_eq!(response.status(), 403);
    assert_eq!(response.headers()["x-request-id"], "req-42");
    let refusal = tokenkeeper::insufficient_scope(&response).expect("the challenge says insufficient_scope");
    assert_eq!(refusal.scope.as_deref(), Some("exports"));
    assert_eq!(refusal.description.as_deref(), Some("needs exports"));
    let received: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(received, body, "the body is intact");
    assert_eq!(h.token_requests(), 1, "no token request for a 403");
    assert!(machine.cached_access_token().is_some(), "the token is kept");
}

#[tokio::test]
async fn a_403_without_a_scope_challenge_is_returned_and_is_not_read_as_insufficient_scope() {
    let h = Harness::start().await;
    let client = h.client();
    let machine = client.client_credentials_session();
    h.server
        .inject(Endpoint::Resource, Fault::html(403, "<h1>Blocked by the firewall</h1>"));

    let response = machine
        .send(client.http().get(h.server.resource_url("/me")))
        .await
        .unwrap();

    assert_eq!(response.status(), 403);
    assert_eq!(tokenkeeper::insufficient_scope(&response), None);
    assert_eq!(response.text().await.unwrap(), "<h1>Blocked by the firewall</h1>");
}

#[tokio::test]
async fn a_401_that_says_insufficient_scope_is_still_a_typed_error_naming_the_resource_server() {
    let h = Harness::start().await;
    let client = h.client();
    let machine = client.client_credentials_session();
    machine.access_token().await.unwrap();
    h.server.inject(
        Endpoint::Resource,
        Fault::status(401).with_header(
            "WWW-Authenticate",
            r#"Bearer error="insufficient_scope", scope="admin""#,
        ),
    );

    let error = machine
        .send(client.http().get(h.server.resource_url("/me")))
        .await
        .unwrap_err();

    assert_eq!(
        error,
        AuthError::InsufficientScope {
            required_scope: Some("admin".into())
        }
    );
    assert!(error.to_string().starts_with("the resource server refused"), "{error}");
    assert!(!error.is_retryable());
    assert_eq!(h.token_requests(), 1, "no recovery");
}

#[test]
fn insufficient_scope_reads_challenges_from_any_http_stack() {
    let headers = [
        r#"Basic realm="x""#,
        r#"Bearer realm="api", error="insufficient_scope""#,
    ];
    let refusal = InsufficientScope::from_challenges(headers).unwrap();
    assert_eq!(refusal.scope, None);
    assert_eq!(InsufficientScope::from_challenges([r#"Basic realm="x""#]), None);
    assert_eq!(InsufficientScope::from_challenges(Vec::<&str>::new()), None);
}

#[tokio::test]
async fn a_refused_api_connection_names_the_resource_server_and_chains_to_the_io_error() {
    let h = Harness::start().await;
    let client = h.client();
    let machine = client.client_credentials_session();
    let token = machine.access_token().await.unwrap();

    let url = closed_port_url("/api/me?api_key=private-query-value");
    let error = machine.send(client.http().get(url)).await.unwrap_err();

    assert!(
        matches!(error, AuthError::ResourceServerUnavailable { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.starts_with("the resource server could not be reached"),
        "{message}"
    );
    assert!(!message.contains("authorization server"), "{message}");
    assert!(error.is_retryable());
    let io = find_cause::<std::io::Error>(&error).expect("the chain reaches the I/O error");
    assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
    for text in chain(&error) {
        assert!(!text.contains("private-query-value"), "a URL leaked into {text:?}");
        assert!(!text.contains(&value(&token)), "the token leaked into {text:?}");
    }
    assert_eq!(
        machine.cached_access_token().map(|t| value(&t)),
        Some(value(&token)),
        "the token is kept"
    );
    assert_eq!(h.token_requests(), 1);
}

#[tokio::test]
async fn an_api_request_timeout_names_the_resource_server() {
    let h = Harness::start().await;
    let client = h.client();
    let machine = client.client_credentials_session();
    machine.access_token().await.unwrap();
    h.server.inject(Endpoint::Resource, Fault::Hang);

    let request = client
        .http()
        .get(h.server.resource_url("/me"))
        .timeout(Duration::from_millis(300));
    let error = machine.send(request).await.unwrap_err();

    assert!(
        matches!(&error, AuthError::ResourceServerUnavailable { reason, .. } if reason.contains("timed out")),
        "{error:?}"
    );
    assert!(error.source().is_some());
    assert_eq!(h.token_requests(), 1, "a slow API is not a token problem");
}

#[tokio::test]
async fn an_unreachable_authorization_server_is_named_and_chains_to_the_io_error() {
    let h = Harness::start().await;
    let config = AuthConfig::new(closed_port_url("/oauth2/token"), common::CLIENT_ID)
        .client_secret(SecretString::from(CLIENT_SECRET))
        .clock(h.clock.clone())
        .retry_policy(RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        });
    let client = AuthClient::new(config).unwrap();

    let error = client.client_credentials_session().access_token().await.unwrap_err();

    assert!(matches!(error, AuthError::TemporarilyUnavailable { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with("the authorization server is temporarily unavailable"),
        "{error}"
    );
    let io = find_cause::<std::io::Error>(&error).expect("the chain reaches the I/O error");
    assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
    for text in chain(&error) {
        assert!(!text.contains(CLIENT_SECRET), "the secret leaked into {text:?}");
        assert!(!text.contains("/oauth2/token"), "the URL leaked into {text:?}");
    }
}

#[tokio::test]
async fn a_malformed_token_response_chains_to_the_json_error() {
    let h = Harness::start().await;
    let client = h.client();
    h.server.inject(
        Endpoint::Token,
        Fault::Status {
            status: 200,
            body: r#"{"access_token": "half-a-token", "token_ty"#.into(),
            content_type: Some("application/json".into()),
            headers: Vec::new(),
        },
    );

    let error = client.client_credentials_session().access_token().await.unwrap_err();

    assert!(
        matches!(error, AuthError::InvalidResponse { status: 200, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("from the authorization server"), "{error}");
    let json = error
        .source()
        .and_then(|cause| cause.downcast_ref::<serde_json::Error>())
        .expect("the source is the JSON error itself");
    assert!(json.is_eof(), "{json}");
    for text in chain(&error) {
        assert!(!text.contains("half-a-token"), "the body leaked into {text:?}");
    }
}

#[tokio::test]
async fn a_json_type_error_keeps_its_position_but_never_quotes_the_body() {
    let h = Harness::start().await;
    let client = h.client();
    // A server that sends the refresh token as a number: serde's own message would
    // quote it ("invalid type: integer `…`").
    h.server.inject(
        Endpoint::Token,
        Fault::json(
            200,
            json!({"access_token": "a", "token_type": "Bearer", "refresh_token": 98765432123456789u64}),
        ),
    );

    let error = client.client_credentials_session().access_token().await.unwrap_err();

    assert!(matches!(error, AuthError::InvalidResponse { .. }), "{error:?}");
    let json = error
        .source()
        .and_then(|cause| cause.downcast_ref::<serde_json::Error>())
        .expect("the source is a JSON error");
    assert!(json.to_string().contains("line 1 column"), "{json}");
    for text in chain(&error) {
        assert!(!text.contains("98765432123456789"), "the body leaked into {text:?}");
    }
}

/// A store whose every call fails, as a full disk or a locked keychain would.
struct BrokenStore;

impl TokenStore for BrokenStore {
    fn load(&self, _key: &str) -> Result<Option<SecretString>, StoreError> {
        Err(StoreError("the keychain is locked".into()))
    }
    fn save(&self, _key: &str, _refresh_token: &SecretString) -> Result<(), StoreError> {
        Err(StoreError("the keychain is locked".into()))
    }
    fn remove(&self, _key: &str) -> Result<(), StoreError> {
        Err(StoreError("the keychain is locked".into()))
    }
}

#[tokio::test]
async fn a_store_failure_names_the_token_store_and_chains_to_the_store_error() {
    let h = Harness::start().await;
    let client = h.builder().store(Arc::new(BrokenStore)).build().unwrap();

    let error = client.restore("alice").await.unwrap_err();

    assert!(matches!(error, AuthError::Storage { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.starts_with("the token store failed: "), "{message}");
    assert!(message.ends_with("the keychain is locked"), "{message}");
    let cause = error
        .source()
        .and_then(|cause| cause.downcast_ref::<StoreError>())
        .expect("the source is the store's error");
    assert_eq!(cause, &StoreError("the keychain is locked".into()));
}

#[tokio::test]
async fn messages_name_the_party_that_failed_and_never_a_secret() {
    let h = Harness::start().await;
    let client = h.client();
    let alice_error = client.login("alice", password("wrong-password")).await.unwrap_err();
    assert!(matches!(alice_error, AuthError::InvalidGrant(_)), "{alice_error:?}");
    assert!(alice_error.to_string().starts_with("the authorization server rejected"));

    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    let token = alice.access_token().await.unwrap();
    h.server.revoke_subject("alice");
    let error = alice
        .send(client.http().post(h.server.resource_url("/orders")).body("{}"))
        .await
        .unwrap_err();
    assert!(matches!(error, AuthError::RequestNotReplayed { .. }), "{error:?}");
    assert!(error
        .to_string()
        .starts_with("the resource server rejected the access token"));
    for e in [&alice_error, &error] {
        for text in chain(e) {
            for secret in [ALICE_PASSWORD, "wrong-password", CLIENT_SECRET, &value(&token)] {
                assert!(!text.contains(secret), "a secret leaked into {text:?}");
            }
        }
    }
}

#[tokio::test]
async fn a_cloned_error_shares_its_source_and_compares_equal() {
    let h = Harness::start().await;
    let client = h.client();
    let machine = client.client_credentials_session();
    let error = machine
        .send(client.http().get(closed_port_url("/api/me")))
        .await
        .unwrap_err();

    let copy = error.clone();

    assert_eq!(copy, error);
    let (a, b) = (error.source().unwrap(), copy.source().unwrap());
    assert!(std::ptr::addr_eq(a, b), "one shared cause, not a copy");
    assert_ne!(
        error,
        AuthError::ResourceServerUnavailable {
            reason: "could not connect to the server".into(),
            source: None,
        },
        "a different cause is a different error"
    );
}
