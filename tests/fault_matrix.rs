//! The rows of docs/faults.md that no other test file covers: hostile numbers from
//! the network, DNS failure, a server that stalls after its headers, a 429 without
//! `Retry-After`, odd `expires_in` and `scope` values, a device clock that jumps,
//! and a revocation endpoint that is down at logout.

mod common;

use common::{password, Harness, ALICE_PASSWORD};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokenkeeper::{
    AuthClient, AuthConfig, AuthError, Clock, RetryPolicy, Sleep, DEFAULT_TOKEN_LIFETIME, MAX_TOKEN_LIFETIME,
};
use tokenkeeper_devserver::{Endpoint, Fault};

fn one_attempt() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    }
}

fn now(h: &Harness) -> SystemTime {
    Clock::now(h.clock.as_ref())
}

#[tokio::test]
async fn retry_after_of_u64_max_never_panics() {
    let h = Harness::start().await;
    for status in [429, 503] {
        // A first wait, so time has elapsed when the huge value arrives (elapsed + wait).
        h.server
            .inject(Endpoint::Token, Fault::status(503).with_header("Retry-After", "1"));
        h.server.inject(
            Endpoint::Token,
            Fault::status(status).with_header("Retry-After", "18446744073709551615"),
        );
        let error = h
            .client()
            .client_credentials_session()
            .access_token()
            .await
            .unwrap_err();
        assert!(
            matches!(error, AuthError::TemporarilyUnavailable { retry_after: Some(d), .. } if d == Duration::from_secs(u64::MAX)),
            "{error:?}"
        );
    }
    // Past the deadline: returned at once, never slept on.
    assert_eq!(h.token_requests(), 4);
    assert_eq!(h.clock.sleeps(), [Duration::from_secs(1), Duration::from_secs(1)]);
}

async fn lifetime_for(h: &Harness, expires_in: serde_json::Value) -> Duration {
    h.server.inject(
        Endpoint::Token,
        Fault::json(
            200,
            json!({"access_token": "odd-lifetime", "token_type": "Bearer", "expires_in": expires_in}),
        ),
    );
    let session = AuthClient::new(h.config()).unwrap().client_credentials_session();
    let token = session.access_token().await.unwrap();
    token.expires_at().remaining_from(now(h))
}

#[tokio::test]
async fn expires_in_of_1e12_or_minus_1_never_panics() {
    let h = Harness::start().await;
    assert_eq!(lifetime_for(&h, json!(1e12)).await, MAX_TOKEN_LIFETIME, "capped");
    assert_eq!(lifetime_for(&h, json!("1e12")).await, MAX_TOKEN_LIFETIME, "capped");
    assert_eq!(lifetime_for(&h, json!(1e308)).await, MAX_TOKEN_LIFETIME, "capped");
    // Negative is not a lifetime: ignored, the configured default applies.
    assert_eq!(lifetime_for(&h, json!(-1)).await, DEFAULT_TOKEN_LIFETIME);
    assert_eq!(lifetime_for(&h, json!(-1e300)).await, DEFAULT_TOKEN_LIFETIME);
}

#[tokio::test]
async fn expires_in_fractions_and_numeric_strings_are_accepted() {
    let h = Harness::start().await;
    assert_eq!(lifetime_for(&h, json!(3600.5)).await, Duration::from_millis(3_600_500));
    assert_eq!(lifetime_for(&h, json!("3600")).await, Duration::from_secs(3600));
    assert_eq!(lifetime_for(&h, json!(3600)).await, Duration::from_secs(3600));
}

#[tokio::test]
async fn expires_in_zero_means_expired_now() {
    let h = Harness::start().await;
    h.server.inject(
        Endpoint::Token,
        Fault::json(
            200,
            json!({"access_token": "at-end-of-life", "token_type": "Bearer", "expires_in": 0}),
        ),
    );
    let session = h.client().client_credentials_session();
    let first = session.access_token().await.unwrap();
    assert_eq!(
        first.expires_at().as_system_time(),
        now(&h),
        "expired at once, not in an hour"
    );
    assert!(
        session.cached_access_token().is_none(),
        "an expired token is not served from the cache"
    );
    // The next call does not reuse it: it gets a new token.
    let second = session.access_token().await.unwrap();
    assert!(!second.is_same_token(&first));
    assert_eq!(h.token_requests(), 2);
    assert!(second.expires_at().remaining_from(now(&h)) > Duration::from_secs(60));
}

#[tokio::test]
async fn a_scope_given_as_an_array_is_accepted() {
    let h = Harness::start().await;
    h.server.inject(
        Endpoint::Token,
        Fault::json(
            200,
            json!({"access_token": "t", "token_type": "Bearer", "expires_in": 60, "scope": ["read", "write", 7]}),
        ),
    );
    let token = h.client().client_credentials_session().access_token().await.unwrap();
    assert_eq!(token.scopes().collect::<Vec<_>>(), ["read", "write"]);
}

#[tokio::test]
async fn a_429_without_retry_after_backs_off_exponentially() {
    let h = Harness::start().await;
    h.server.inject(Endpoint::Token, Fault::status(429));
    h.server.inject(Endpoint::Token, Fault::status(429));
    h.client().client_credentials_session().access_token().await.unwrap();
    assert_eq!(h.token_requests(), 3);
    let sleeps = h.clock.sleeps();
    assert_eq!(sleeps.len(), 2, "{sleeps:?}");
    assert!(sleeps[1] > sleeps[0], "the second wait is longer: {sleeps:?}");
}

#[tokio::test]
async fn a_dns_failure_is_temporarily_unavailable() {
    // RFC 6761 §6.4: names under .invalid never resolve.
    let config = AuthConfig::new("https://as.tokenkeeper.invalid/oauth2/token", "c")
        .retry_policy(one_attempt())
        .connect_timeout(Duration::from_secs(5));
    let error = AuthClient::new(config)
        .unwrap()
        .client_credentials_session()
        .access_token()
        .await
        .unwrap_err();
    assert!(
        matches!(&error, AuthError::TemporarilyUnavailable { status: None, .. }),
        "{error:?}"
    );
    assert!(error.is_retryable());
}

/// A server that sends a complete header block announcing a body, then nothing.
async fn stalling_server() -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/oauth2/token", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{\"acc")
                .await;
            open.push(socket); // keep the connection open, send nothing more
        }
    });
    (url, task)
}

#[tokio::test]
async fn headers_then_a_stall_is_bounded_by_the_request_timeout() {
    let (url, server) = stalling_server().await;
    let config = AuthConfig::new(url, "c")
        .retry_policy(one_attempt())
        .request_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let error = AuthClient::new(config)
        .unwrap()
        .client_credentials_session()
        .access_token()
        .await
        .unwrap_err();
    assert!(
        matches!(&error, AuthError::TemporarilyUnavailable { reason, .. } if reason.contains("timed out") || reason.contains("broke")),
        "{error:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "bounded: {:?}",
        started.elapsed()
    );
    server.abort();
}

/// A device clock that can be set backwards too (a user changing the time, or NTP).
#[derive(Debug)]
struct JumpingClock(Mutex<SystemTime>);

impl JumpingClock {
    fn set(&self, to: SystemTime) {
        *self.0.lock().unwrap() = to;
    }
}

impl Clock for JumpingClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap()
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        *self.0.lock().unwrap() += duration;
        Box::pin(std::future::ready(()))
    }
}

#[tokio::test]
async fn the_device_clock_jumping_forward_and_back_costs_one_token_and_never_panics() {
    let h = Harness::start().await; // tokens live 1 h on the development server
    let start = SystemTime::now();
    let clock = Arc::new(JumpingClock(Mutex::new(start)));
    let client = AuthClient::new(h.config().clock(clock.clone())).unwrap();
    let session = client.client_credentials_session();
    let first = session.access_token().await.unwrap();
    assert_eq!(h.token_requests(), 1);

    // Forward past the expiry: exactly one new token.
    clock.set(start + Duration::from_secs(2 * 3600));
    let second = session.access_token().await.unwrap();
    session.access_token().await.unwrap();
    assert!(!second.is_same_token(&first));
    assert_eq!(h.token_requests(), 2);

    // Back before the first token was even issued: the cached token is served, no request.
    for back in [start, start - Duration::from_secs(24 * 3600), SystemTime::UNIX_EPOCH] {
        clock.set(back);
        let served = session.access_token().await.unwrap();
        assert!(served.is_same_token(&second));
    }
    assert_eq!(h.token_requests(), 2);
}

#[tokio::test]
async fn a_revocation_endpoint_that_is_down_at_logout_still_forgets_locally() {
    let h = Harness::start().await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = AuthClient::new(
        h.config()
            .retry_policy(one_attempt())
            .revocation_endpoint(format!("http://127.0.0.1:{closed}/oauth2/revoke")),
    )
    .unwrap();
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    let error = alice.logout().await.unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
    assert!(client.session("alice").is_none());
    assert!(alice.cached_access_token().is_none());
    assert!(matches!(
        alice.access_token().await,
        Err(AuthError::ReauthenticationRequired { .. })
    ));
}
