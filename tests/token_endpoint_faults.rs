//! What the SDK does with every kind of bad answer from the token endpoint.

mod common;

use common::{password, Harness};
use serde_json::json;
use std::time::{Duration, Instant, SystemTime};
use tokenkeeper::{AuthClient, AuthConfig, AuthError, RetryPolicy, TokenRotation};
use tokenkeeper_devserver::{DevServerConfig, Endpoint, Fault};

fn no_retries(h: &Harness) -> AuthClient {
    AuthClient::new(h.config().retry_policy(RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    }))
    .unwrap()
}

#[tokio::test]
async fn every_rfc6749_error_code_maps_to_its_variant_with_description_and_hint() {
    let h = Harness::start().await;
    let client = no_retries(&h);
    let machine = client.client_credentials_session();
    type Case = (&'static str, fn(&AuthError) -> bool, &'static str);
    let cases: [Case; 7] = [
        (
            "invalid_client",
            |e| matches!(e, AuthError::InvalidClient(_)),
            "check the client id and secret",
        ),
        (
            "invalid_grant",
            |e| matches!(e, AuthError::InvalidGrant(_)),
            "sign in again",
        ),
        (
            "invalid_scope",
            |e| matches!(e, AuthError::InvalidScope(_)),
            "check the scope names",
        ),
        (
            "unauthorized_client",
            |e| matches!(e, AuthError::UnauthorizedClient(_)),
            "enable the grant type",
        ),
        (
            "unsupported_grant_type",
            |e| matches!(e, AuthError::UnsupportedGrantType(_)),
            "supported grant types",
        ),
        (
            "invalid_request",
            |e| matches!(e, AuthError::InvalidRequest(_)),
            "client authentication method",
        ),
        ("something_new", |e| matches!(e, AuthError::OAuth(_)), "something_new"),
    ];
    for (code, is_variant, hint) in cases {
        // Past the backoff the previous failure started (failures are not retried per call).
        h.advance(60);
        let description = format!("the server says {code}");
        h.server.inject(
            Endpoint::Token,
            Fault::json(400, json!({"error": code, "error_description": description})),
        );
        let error = machine.access_token().await.unwrap_err();
        assert!(is_variant(&error), "{code} gave {error:?}");
        assert_eq!(
            error.server_error().unwrap().description.as_deref(),
            Some(description.as_str())
        );
        assert!(error.to_string().contains(hint), "{error}");
        assert!(!error.is_retryable());
    }
    assert_eq!(h.token_requests(), 7, "OAuth errors are never retried");
}

#[tokio::test]
async fn a_wrong_client_secret_and_an_unknown_scope_are_reported_by_the_real_server() {
    let h = Harness::start().await;
    let wrong_secret = AuthClient::new(h.config().client_secret(password("not-the-secret"))).unwrap();
    let error = wrong_secret
        .client_credentials_session()
        .access_token()
        .await
        .unwrap_err();
    assert!(
        matches!(error, AuthError::InvalidClient(ref e) if e.status == 401),
        "{error:?}"
    );

    let bad_scope = AuthClient::new(h.config().scopes(["nope"])).unwrap();
    let error = bad_scope.client_credentials_session().access_token().await.unwrap_err();
    assert!(matches!(error, AuthError::InvalidScope(_)), "{error:?}");

    let error = h.client().login("alice", password("wrong")).await.unwrap_err();
    assert!(matches!(error, AuthError::InvalidGrant(_)), "{error:?}");
}

#[tokio::test]
async fn malformed_html_oversized_and_partial_bodies_are_typed_errors() {
    let h = Harness::start().await;
    let machine = no_retries(&h).client_credentials_session();
    let check = async |fault: Fault, expect: fn(&AuthError) -> bool| {
        h.advance(60);
        h.server.inject(Endpoint::Token, fault);
        let error = machine.access_token().await.unwrap_err();
        assert!(expect(&error), "{error:?}");
        error
    };
    let e = check(Fault::html(200, "<html><body>Login</body></html>"), |e| {
        matches!(e, AuthError::InvalidResponse { status: 200, .. })
    })
    .await;
    assert!(e.to_string().contains("HTML"), "{e}");
    check(Fault::html(404, "<html>Not found</html>"), |e| {
        matches!(e, AuthError::InvalidResponse { status: 404, .. })
    })
    .await;
    check(
        Fault::Status {
            status: 200,
            body: "{\"access_token\": ".into(),
            content_type: Some("application/json".into()),
            headers: vec![],
        },
        |e| matches!(e, AuthError::InvalidResponse { status: 200, .. }),
    )
    .await;
    check(Fault::json(200, json!({"token_type": "Bearer"})), |e| {
        matches!(e, AuthError::InvalidResponse { .. })
    })
    .await;
    check(
        Fault::json(200, json!({"access_token": "x", "token_type": "mac"})),
        |e| matches!(e, AuthError::InvalidResponse { .. }),
    )
    .await;
    check(
        Fault::json(200, json!({"access_token": "bad token\n", "token_type": "Bearer"})),
        |e| matches!(e, AuthError::InvalidResponse { .. }),
    )
    .await;
    let e = check(Fault::OversizedBody(10 * 1024 * 1024), |e| {
        matches!(e, AuthError::InvalidResponse { .. })
    })
    .await;
    assert!(e.to_string().contains("64 KiB"), "{e}");
    check(Fault::PartialBody, |e| {
        matches!(e, AuthError::TemporarilyUnavailable { .. })
    })
    .await;
    check(Fault::Drop, |e| matches!(e, AuthError::TemporarilyUnavailable { .. })).await;
    check(Fault::html(502, "<html>Bad gateway</html>"), |e| {
        matches!(e, AuthError::TemporarilyUnavailable { status: Some(502), .. })
    })
    .await;
    check(
        Fault::status(302).with_header("Location", "http://127.0.0.1:1/elsewhere"),
        |e| matches!(e, AuthError::InvalidResponse { status: 302, .. }),
    )
    .await;

    // None of that poisoned the session: once the backoff has passed, the next call works.
    h.advance(60);
    machine.access_token().await.unwrap();
}

#[tokio::test]
async fn a_5xx_is_retried_with_backoff_then_succeeds() {
    let h = Harness::start().await;
    h.server.inject(Endpoint::Token, Fault::status(503));
    h.server.inject(Endpoint::Token, Fault::status(500));
    h.client().client_credentials_session().access_token().await.unwrap();
    assert_eq!(h.token_requests(), 3);
    let sleeps = h.clock.sleeps();
    assert_eq!(sleeps.len(), 2);
    assert!(
        sleeps[0] >= Duration::from_millis(50) && sleeps[0] < Duration::from_millis(100),
        "{sleeps:?}"
    );
    assert!(
        sleeps[1] >= Duration::from_millis(100) && sleeps[1] < Duration::from_millis(200),
        "{sleeps:?}"
    );
}

#[tokio::test]
async fn a_429_retry_after_is_honoured_and_one_past_the_deadline_is_returned() {
    let h = Harness::start().await;
    h.server
        .inject(Endpoint::Token, Fault::status(429).with_header("Retry-After", "7"));
    h.client().client_credentials_session().access_token().await.unwrap();
    assert_eq!(h.clock.sleeps(), [Duration::from_secs(7)]);
    assert_eq!(h.token_requests(), 2);

    let h = Harness::start().await;
    h.server
        .inject(Endpoint::Token, Fault::status(429).with_header("Retry-After", "3600"));
    let error = h
        .client()
        .client_credentials_session()
        .access_token()
        .await
        .unwrap_err();
    assert!(error.is_retryable());
    assert!(
        matches!(error, AuthError::TemporarilyUnavailable { status: Some(429), retry_after: Some(d), .. } if d == Duration::from_secs(3600)),
        "{error:?}"
    );
    assert_eq!(h.token_requests(), 1, "no retry past the deadline");
}

#[tokio::test]
async fn a_hanging_server_is_bounded_by_the_request_timeout() {
    let h = Harness::start().await;
    for _ in 0..3 {
        h.server.inject(Endpoint::Token, Fault::Hang);
    }
    let client = AuthClient::new(h.config().request_timeout(Duration::from_millis(150))).unwrap();
    let started = Instant::now();
    let error = client.client_credentials_session().access_token().await.unwrap_err();
    assert!(
        matches!(&error, AuthError::TemporarilyUnavailable { reason, .. } if reason.contains("timed out")),
        "{error:?}"
    );
    assert_eq!(h.token_requests(), 3);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_unreachable_server_is_temporarily_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let config = AuthConfig::new(format!("http://127.0.0.1:{port}/token"), "c").retry_policy(RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    });
    let error = AuthClient::new(config)
        .unwrap()
        .client_credentials_session()
        .access_token()
        .await
        .unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
}

#[test]
fn endpoints_must_be_https_unless_loopback() {
    let accepts = |url: &str| AuthClient::new(AuthConfig::new(url, "c")).is_ok();
    assert!(accepts("https://as.example.com/token"));
    assert!(accepts("http://127.0.0.1:8080/token"));
    assert!(accepts("http://127.8.9.10/token"));
    assert!(accepts("http://localhost/token"));
    assert!(accepts("http://[::1]:9000/token"));
    for bad in [
        "http://as.example.com/token",
        "http://10.0.0.1/token",
        "ftp://as.example.com/token",
        "not a url",
        "https://user:pw@as.example.com/t",
    ] {
        let error = AuthClient::new(AuthConfig::new(bad, "c")).unwrap_err();
        assert!(matches!(error, AuthError::InvalidConfig { .. }), "{bad}: {error:?}");
    }
    let error = AuthClient::new(
        AuthConfig::new("https://as.example.com/token", "c").revocation_endpoint("http://as.example.com/revoke"),
    )
    .unwrap_err();
    assert!(matches!(error, AuthError::InvalidConfig { .. }));
    assert!(AuthClient::new(AuthConfig::new("https://as.example.com/token", " ")).is_err());
}

#[test]
fn token_rotation_header_names_must_be_http_header_names() {
    let with = |token: &str, expiry: &str| {
        AuthClient::new(
            AuthConfig::new("https://as.example.com/token", "c").token_rotation(TokenRotation::headers(token, expiry)),
        )
    };
    assert!(with("access-token", "Expiry").is_ok());
    for (token, expiry) in [
        ("", "expiry"),
        ("access token", "expiry"),
        ("access-token", "expiry:"),
        (" x", "y"),
    ] {
        let error = with(token, expiry).unwrap_err();
        assert!(
            matches!(error, AuthError::InvalidConfig { .. }),
            "{token:?}/{expiry:?}: {error:?}"
        );
    }
}

async fn jwt_expiry_with_server_clock_offset(offset_secs: i64) -> Duration {
    let h = Harness::with(DevServerConfig {
        access_token_lifetime: Duration::from_secs(600),
        omit_expires_in: true,
        jwt_access_tokens: true,
        clock_offset_secs: offset_secs,
        ..Default::default()
    })
    .await;
    // The test's manual clock starts at the real time, like a phone whose clock is right
    // while the server's is `offset_secs` off (or the other way round).
    let token = h.client().client_credentials_session().access_token().await.unwrap();
    token
        .expires_at()
        .as_system_time()
        .duration_since(h.clock.now_for_tests())
        .unwrap_or_default()
}

trait NowForTests {
    fn now_for_tests(&self) -> SystemTime;
}
impl NowForTests for tokenkeeper::ManualClock {
    fn now_for_tests(&self) -> SystemTime {
        tokenkeeper::Clock::now(self)
    }
}

#[tokio::test]
async fn without_expires_in_the_jwt_exp_is_used_corrected_for_clock_skew() {
    for offset in [0, 3600, -3600] {
        let lifetime = jwt_expiry_with_server_clock_offset(offset).await;
        assert!(
            lifetime > Duration::from_secs(590) && lifetime <= Duration::from_secs(601),
            "offset {offset}: {lifetime:?}"
        );
    }
}

#[tokio::test]
async fn without_expires_in_or_jwt_the_configured_default_lifetime_is_used() {
    let h = Harness::with(DevServerConfig {
        omit_expires_in: true,
        ..Default::default()
    })
    .await;
    let client = AuthClient::new(h.config().default_token_lifetime(Duration::from_secs(120))).unwrap();
    let token = client.client_credentials_session().access_token().await.unwrap();
    let lifetime = token.expires_at().remaining_from(h.clock.now_for_tests());
    assert_eq!(lifetime, Duration::from_secs(120));
}

#[tokio::test]
async fn a_401_unauthorized_client_as_keycloak_sends_it_is_invalid_client() {
    // Keycloak 26's answer to a wrong client secret (see tests/keycloak_interop.rs).
    let h = Harness::start().await;
    let machine = h.client().client_credentials_session();
    h.server.inject(
        Endpoint::Token,
        Fault::json(
            401,
            json!({"error": "unauthorized_client", "error_description": "Invalid client or Invalid client credentials"}),
        ),
    );
    let error = machine.access_token().await.unwrap_err();
    assert!(matches!(error, AuthError::InvalidClient(_)), "{error:?}");
    assert_eq!(error.server_error().unwrap().code, "unauthorized_client");
    assert!(error.to_string().contains("check the client id and secret"), "{error}");
}
