//! End-to-end tests of the development server over loopback HTTP.

use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use tokenkeeper_devserver::{ClientSpec, DevServer, DevServerConfig, Endpoint, Fault, RevocationRecord, RotationSpec};

/// Form parameters of a request.
type FormParams<'a> = &'a [(&'a str, &'a str)];

fn http() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

async fn start(config: DevServerConfig) -> DevServer {
    DevServer::start(config).await.expect("server starts")
}

fn basic(id: &str, secret: &str) -> String {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!("Basic {}", STANDARD.encode(format!("{}:{}", enc(id), enc(secret))))
}

/// POST a form to the token endpoint with demo-client's Basic credentials.
async fn token(server: &DevServer, form: &[(&str, &str)]) -> Response {
    http()
        .post(server.token_endpoint())
        .header("Authorization", basic("demo-client", "demo-secret"))
        .form(form)
        .send()
        .await
        .expect("token request")
}

async fn json_of(response: Response) -> Value {
    response.json().await.expect("json body")
}

async fn password_grant(server: &DevServer) -> Value {
    let r = token(
        server,
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "alice-password"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    json_of(r).await
}

async fn get_resource(server: &DevServer, path: &str, access_token: &str) -> Response {
    http()
        .get(server.resource_url(path))
        .bearer_auth(access_token)
        .send()
        .await
        .expect("resource request")
}

fn www_authenticate(r: &Response) -> String {
    r.headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn assert_oauth_error(r: Response, status: u16, error: &str) {
    assert_eq!(r.status().as_u16(), status);
    let body = json_of(r).await;
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].is_string());
}

#[tokio::test]
async fn client_credentials_with_basic_auth() {
    let server = start(DevServerConfig::default()).await;
    let r = token(&server, &[("grant_type", "client_credentials")]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["pragma"], "no-cache");
    assert!(r.headers().contains_key("date"));
    let body = json_of(r).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "read write admin");
    assert!(body.get("refresh_token").is_none());
    let access = body["access_token"].as_str().expect("token");
    let me = json_of(get_resource(&server, "/me", access).await).await;
    assert_eq!(me["subject"], "demo-client");
    assert_eq!(me["client_id"], "demo-client");
    assert_eq!(me["path"], "/me");
    assert_eq!(server.stats().token_requests_by_grant["client_credentials"], 1);
}

#[tokio::test]
async fn basic_credentials_are_form_urlencoded_before_base64() {
    let secret = "p:a%s s+w&rd=";
    let config = DevServerConfig {
        clients: vec![ClientSpec::confidential(
            "odd client:1",
            secret,
            &["read"],
            &["client_credentials"],
        )],
        ..DevServerConfig::default()
    };
    let server = start(config).await;
    let r = http()
        .post(server.token_endpoint())
        .header("Authorization", basic("odd client:1", secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "read")])
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json_of(r).await["scope"], "read");
    // The raw (not urlencoded) secret is not accepted: `%s ` is no valid escape.
    let raw = format!("Basic {}", STANDARD.encode(format!("odd%20client%3A1:{secret}")));
    let r = http()
        .post(server.token_endpoint())
        .header("Authorization", raw)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn client_authentication_errors() {
    let server = start(DevServerConfig::default()).await;
    let r = http()
        .post(server.token_endpoint())
        .header("Authorization", basic("demo-client", "wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("request");
    assert_eq!(www_authenticate(&r), r#"Basic realm="devserver""#);
    assert_oauth_error(r, 401, "invalid_client").await;

    let r = http()
        .post(server.token_endpoint())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "nobody"),
            ("client_secret", "x"),
        ])
        .send()
        .await
        .expect("request");
    assert_oauth_error(r, 401, "invalid_client").await;

    // Both Basic and client_secret.
    let r = http()
        .post(server.token_endpoint())
        .header("Authorization", basic("demo-client", "demo-secret"))
        .form(&[("grant_type", "client_credentials"), ("client_secret", "demo-secret")])
        .send()
        .await
        .expect("request");
    assert_oauth_error(r, 400, "invalid_request").await;

    // client_secret_post works; garbage bodies get OAuth errors, not panics.
    let r = http()
        .post(server.token_endpoint())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "demo-client"),
            ("client_secret", "demo-secret"),
        ])
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::OK);
    let r = http()
        .post(server.token_endpoint())
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Authorization", "Basic %%%")
        .body(vec![0xff, b'=', 0xfe, b'&', b'&', b'='])
        .send()
        .await
        .expect("request");
    assert_oauth_error(r, 401, "invalid_client").await;
    assert_eq!(server.stats().token_requests, 5);
    assert_eq!(server.stats().token_requests_by_grant["unknown"], 1);
}

#[tokio::test]
async fn grant_errors() {
    let server = start(DevServerConfig::default()).await;
    let cases: [(FormParams<'_>, u16, &str); 8] = [
        (
            &[("grant_type", "password"), ("username", "alice"), ("password", "nope")],
            400,
            "invalid_grant",
        ),
        (
            &[("grant_type", "password"), ("username", "alice")],
            400,
            "invalid_request",
        ),
        (
            &[("grant_type", "refresh_token"), ("refresh_token", "made-up")],
            400,
            "invalid_grant",
        ),
        (
            &[("grant_type", "client_credentials"), ("scope", "read delete")],
            400,
            "invalid_scope",
        ),
        (
            &[("grant_type", "urn:example:unknown"), ("code", "x")],
            400,
            "unsupported_grant_type",
        ),
        // Supported, but not registered for demo-client (native-app has it).
        (
            &[("grant_type", "authorization_code"), ("code", "x")],
            400,
            "unauthorized_client",
        ),
        (&[("scope", "read")], 400, "invalid_request"),
        (
            &[("grant_type", "client_credentials"), ("grant_type", "password")],
            400,
            "invalid_request",
        ),
    ];
    for (form, status, error) in cases {
        assert_oauth_error(token(&server, form).await, status, error).await;
    }
    // public-app may not use client credentials.
    let r = http()
        .post(server.token_endpoint())
        .form(&[("grant_type", "client_credentials"), ("client_id", "public-app")])
        .send()
        .await
        .expect("request");
    assert_oauth_error(r, 400, "unauthorized_client").await;

    // A refresh token of another client is invalid_grant.
    let r = http()
        .post(server.token_endpoint())
        .form(&[
            ("grant_type", "password"),
            ("client_id", "public-app"),
            ("username", "bob"),
            ("password", "bob-password"),
        ])
        .send()
        .await
        .expect("request");
    let body = json_of(r).await;
    assert_eq!(body["scope"], "read write");
    let rt = body["refresh_token"].as_str().expect("refresh token");
    let r = token(&server, &[("grant_type", "refresh_token"), ("refresh_token", rt)]).await;
    assert_oauth_error(r, 400, "invalid_grant").await;

    // Password changed elsewhere.
    server.set_user_password("alice", "new-password");
    let r = token(
        &server,
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "alice-password"),
        ],
    )
    .await;
    assert_oauth_error(r, 400, "invalid_grant").await;
}

#[tokio::test]
async fn refresh_without_rotation() {
    let server = start(DevServerConfig::default()).await;
    let first = password_grant(&server).await;
    let rt = first["refresh_token"].as_str().expect("refresh token");
    let r = token(
        &server,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("scope", "read"),
        ],
    )
    .await;
    let second = json_of(r).await;
    assert_eq!(second["scope"], "read");
    assert!(second.get("refresh_token").is_none());
    assert_ne!(second["access_token"], first["access_token"]);
    // Narrowed once, the refresh token still carries its original scope, not more.
    let r = token(&server, &[("grant_type", "refresh_token"), ("refresh_token", rt)]).await;
    assert_eq!(json_of(r).await["scope"], "read write admin");
    let r = token(
        &server,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("scope", "read other"),
        ],
    )
    .await;
    assert_oauth_error(r, 400, "invalid_scope").await;
}

#[tokio::test]
async fn refresh_with_rotation() {
    let server = start(DevServerConfig {
        rotate_refresh_tokens: true,
        ..DevServerConfig::default()
    })
    .await;
    let first = password_grant(&server).await;
    let rt1 = first["refresh_token"].as_str().expect("refresh token");
    let second = json_of(token(&server, &[("grant_type", "refresh_token"), ("refresh_token", rt1)]).await).await;
    let rt2 = second["refresh_token"].as_str().expect("rotated refresh token");
    assert_ne!(rt1, rt2);
    let r = token(&server, &[("grant_type", "refresh_token"), ("refresh_token", rt1)]).await;
    assert_oauth_error(r, 400, "invalid_grant").await;
    let r = token(&server, &[("grant_type", "refresh_token"), ("refresh_token", rt2)]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(server.stats().token_requests_by_grant["refresh_token"], 3);
    // rt1 was spent by rotation and presented again: reuse, counted once.
    assert_eq!(server.stats().refresh_token_reuse, 1);
}

#[tokio::test]
async fn tenants_get_tokens_counted_per_client_and_revoke_all_ends_every_token() {
    let server = start(DevServerConfig::default().with_tenants(3)).await;
    let admin = |path: &str| format!("{}/_admin/{path}", server.base_url());
    let mut tokens = Vec::new();
    for (tenant, times) in [(0, 2), (2, 1)] {
        for _ in 0..times {
            let id = tokenkeeper_devserver::tenant_client_id(tenant);
            let secret = tokenkeeper_devserver::tenant_client_secret(tenant);
            let r = http()
                .post(server.token_endpoint())
                .header("Authorization", basic(&id, &secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .expect("token request");
            assert_eq!(r.status(), StatusCode::OK);
            tokens.push(json_of(r).await["access_token"].as_str().expect("at").to_owned());
        }
    }
    let stats = json_of(http().get(admin("stats")).send().await.expect("stats")).await;
    assert_eq!(stats["tokens_issued_by_client"]["tenant-0"], 2);
    assert_eq!(stats["tokens_issued_by_client"]["tenant-2"], 1);
    assert!(stats["tokens_issued_by_client"].get("tenant-1").is_none());
    // A wrong tenant secret is rejected.
    let r = http()
        .post(server.token_endpoint())
        .header("Authorization", basic("tenant-1", "tenant-0-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token request");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    assert!(http()
        .post(admin("revoke-all"))
        .send()
        .await
        .expect("revoke-all")
        .status()
        .is_success());
    for at in &tokens {
        assert_eq!(
            get_resource(&server, "/me", at).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
}

#[tokio::test]
async fn revocation_endpoint() {
    let server = start(DevServerConfig::default()).await;
    let tokens = password_grant(&server).await;
    let at = tokens["access_token"].as_str().expect("access");
    let rt = tokens["refresh_token"].as_str().expect("refresh");
    let revoke = |token: &str, hint: &str| {
        http()
            .post(server.revocation_endpoint())
            .header("Authorization", basic("demo-client", "demo-secret"))
            .form(&[("token", token), ("token_type_hint", hint)])
            .send()
    };
    assert_eq!(get_resource(&server, "/me", at).await.status(), StatusCode::OK);
    let r = revoke(rt, "refresh_token").await.expect("revoke");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.bytes().await.expect("body").is_empty());
    // The access token issued with the refresh token is gone too.
    let r = get_resource(&server, "/me", at).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(www_authenticate(&r).contains(r#"error_description="The access token is revoked""#));
    let r = token(&server, &[("grant_type", "refresh_token"), ("refresh_token", rt)]).await;
    assert_oauth_error(r, 400, "invalid_grant").await;
    // Unknown tokens: 200 all the same.
    assert_eq!(
        revoke("no-such-token", "access_token").await.expect("revoke").status(),
        StatusCode::OK
    );
    // Bad client: 401.
    let r = http()
        .post(server.revocation_endpoint())
        .header("Authorization", basic("demo-client", "bad"))
        .form(&[("token", "t")])
        .send()
        .await
        .expect("revoke");
    assert_oauth_error(r, 401, "invalid_client").await;

    let records = server.stats().revocations;
    assert_eq!(records.len(), 3);
    assert_eq!(
        records[0],
        RevocationRecord {
            token: rt.to_owned(),
            token_type_hint: Some("refresh_token".to_owned()),
            client_id: Some("demo-client".to_owned()),
            dpop_proof: false,
        }
    );
    assert_eq!(records[1].token, "no-such-token");
}

#[tokio::test]
async fn revoking_an_access_token_keeps_the_refresh_token() {
    let server = start(DevServerConfig::default()).await;
    let tokens = password_grant(&server).await;
    let at = tokens["access_token"].as_str().expect("access");
    let rt = tokens["refresh_token"].as_str().expect("refresh");
    server.revoke_token(at);
    assert_eq!(
        get_resource(&server, "/me", at).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let r = token(&server, &[("grant_type", "refresh_token"), ("refresh_token", rt)]).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn resource_authorization() {
    let server = start(DevServerConfig::default()).await;
    let r = http().get(server.resource_url("/me")).send().await.expect("request");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(www_authenticate(&r), r#"Bearer realm="devserver""#);
    let r = get_resource(&server, "/me", "bogus").await;
    assert!(www_authenticate(&r).contains(r#"error="invalid_token""#));
    assert!(www_authenticate(&r).contains("is unknown"));

    let tokens = password_grant(&server).await;
    let at = tokens["access_token"].as_str().expect("access");
    let r = http()
        .put(server.resource_url("/items/7"))
        .bearer_auth(at)
        .body("hello")
        .send()
        .await
        .expect("request");
    let body = json_of(r).await;
    assert_eq!(body["method"], "PUT");
    assert_eq!(body["path"], "/items/7");
    assert_eq!(body["subject"], "alice");
    assert_eq!(body["body_len"], 5);
    assert!(!body.to_string().contains(at), "the token is never echoed");

    assert_eq!(get_resource(&server, "/admin/users", at).await.status(), StatusCode::OK);
    let read_only = json_of(
        token(
            &server,
            &[
                ("grant_type", "password"),
                ("username", "bob"),
                ("password", "bob-password"),
                ("scope", "read"),
            ],
        )
        .await,
    )
    .await;
    let r = get_resource(&server, "/admin", read_only["access_token"].as_str().expect("at")).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        www_authenticate(&r),
        r#"Bearer error="insufficient_scope", scope="admin""#
    );

    server.revoke_subject("alice");
    assert_eq!(
        get_resource(&server, "/me", at).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let rt = tokens["refresh_token"].as_str().expect("refresh");
    let r = token(&server, &[("grant_type", "refresh_token"), ("refresh_token", rt)]).await;
    assert_oauth_error(r, 400, "invalid_grant").await;

    let stats = server.stats();
    assert_eq!(stats.resource_requests, 6);
    assert_eq!(stats.resource_unauthorized, 3);
    assert_eq!(stats.resource_requests_by_method["GET"], 5);
    assert_eq!(stats.resource_requests_by_method["PUT"], 1);
    server.reset_stats();
    assert_eq!(server.stats(), Default::default());
}

#[tokio::test]
async fn expired_tokens_are_rejected() {
    let server = start(DevServerConfig {
        access_token_lifetime: Duration::from_millis(150),
        ..DevServerConfig::default()
    })
    .await;
    let tokens = password_grant(&server).await;
    assert_eq!(tokens["expires_in"], 0);
    let at = tokens["access_token"].as_str().expect("access");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = get_resource(&server, "/me", at).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(www_authenticate(&r).contains("The access token is expired"));
}

#[tokio::test]
async fn reuse_active_token() {
    let server = start(DevServerConfig {
        reuse_active_token: true,
        ..DevServerConfig::default()
    })
    .await;
    let first = password_grant(&server).await;
    let second = password_grant(&server).await;
    assert_eq!(first["access_token"], second["access_token"]);
    assert_eq!(first["refresh_token"], second["refresh_token"]);
    // Another scope is another token.
    let narrow = json_of(
        token(
            &server,
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", "alice-password"),
                ("scope", "read"),
            ],
        )
        .await,
    )
    .await;
    assert_ne!(narrow["access_token"], first["access_token"]);
    // Once revoked, a new one is issued.
    server.revoke_token(first["access_token"].as_str().expect("at"));
    let third = password_grant(&server).await;
    assert_ne!(third["access_token"], first["access_token"]);
}

#[tokio::test]
async fn jwt_tokens_and_clock_offset() {
    let server = start(DevServerConfig {
        jwt_access_tokens: true,
        clock_offset_secs: 7200,
        ..DevServerConfig::default()
    })
    .await;
    let r = token(
        &server,
        &[
            ("grant_type", "client_credentials"),
            ("audience", "https://api.example"),
        ],
    )
    .await;
    let date = r.headers()["date"].to_str().expect("date").to_owned();
    let date = httpdate::parse_http_date(&date).expect("http date");
    let skew = date
        .duration_since(std::time::SystemTime::now())
        .expect("server clock ahead");
    assert!(skew > Duration::from_secs(7100), "{skew:?}");
    let body = json_of(r).await;
    let jwt = body["access_token"].as_str().expect("jwt");
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
    assert_eq!(payload["sub"], "demo-client");
    assert_eq!(payload["aud"], "https://api.example");
    assert_eq!(payload["scope"], "read write admin");
    assert!(payload["jti"].is_string());
    let (iat, exp) = (
        payload["iat"].as_u64().expect("iat"),
        payload["exp"].as_u64().expect("exp"),
    );
    assert_eq!(exp - iat, 3600);
    let real_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    assert!(iat >= real_now + 7100);
    assert_eq!(get_resource(&server, "/me", jwt).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn status_and_delay_faults() {
    let server = start(DevServerConfig::default()).await;
    server.inject(Endpoint::Token, Fault::status(429).with_header("Retry-After", "2"));
    server.inject(Endpoint::Token, Fault::json(400, json!({"error": "custom_error"})));
    server.inject(Endpoint::Token, Fault::html(200, "<html>captive portal</html>"));
    server.inject(Endpoint::Token, Fault::delay_ms(150));

    let r = token(&server, &[("grant_type", "client_credentials")]).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "2");
    let r = token(&server, &[("grant_type", "client_credentials")]).await;
    assert_eq!(json_of(r).await["error"], "custom_error");
    let r = token(&server, &[("grant_type", "client_credentials")]).await;
    assert!(r.headers()["content-type"]
        .to_str()
        .expect("ct")
        .starts_with("text/html"));
    let started = std::time::Instant::now();
    let r = token(&server, &[("grant_type", "client_credentials")]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(server.stats().token_requests, 4);

    server.inject(Endpoint::Resource, Fault::status(503));
    server.inject(Endpoint::Revocation, Fault::status(500));
    server.clear_faults();
    let r = http().get(server.resource_url("/me")).send().await.expect("request");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn connection_faults() {
    let server = start(DevServerConfig::default()).await;
    let short = Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .expect("client");

    server.inject(Endpoint::Token, Fault::Hang);
    let err = short
        .post(server.token_endpoint())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect_err("hangs");
    assert!(err.is_timeout(), "{err:?}");

    server.inject(Endpoint::Revocation, Fault::Drop);
    let result = short
        .post(server.revocation_endpoint())
        .form(&[("token", "x")])
        .send()
        .await;
    match result {
        Err(_) => {}
        Ok(r) => assert!(r.bytes().await.is_err(), "dropped connection must not yield a body"),
    }

    server.inject(Endpoint::Resource, Fault::PartialBody);
    let r = short
        .get(server.resource_url("/me"))
        .send()
        .await
        .expect("headers arrive");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.bytes().await.is_err(), "truncated body must be an error");

    server.inject(Endpoint::Token, Fault::OversizedBody(3 * 1024 * 1024));
    let r = token(&server, &[("grant_type", "client_credentials")]).await;
    assert_eq!(r.headers()["content-type"], "application/json");
    let body = r.bytes().await.expect("body");
    assert_eq!(body.len(), 3 * 1024 * 1024);
    assert!(body.starts_with(b"{\"access_token\""));

    // The server is still healthy afterwards.
    let r = token(&server, &[("grant_type", "client_credentials")]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let stats = server.stats();
    assert_eq!(stats.token_requests, 3);
    assert_eq!(stats.revocations.len(), 1);
    assert_eq!(stats.resource_requests, 1);
}

fn header(r: &Response, name: &str) -> String {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("missing header {name}"))
        .to_owned()
}

#[tokio::test]
async fn per_response_rotation_with_batch_window() {
    let server = start(DevServerConfig {
        rotation: Some(RotationSpec {
            batch_window: Duration::from_millis(200),
            ..RotationSpec::default()
        }),
        ..DevServerConfig::default()
    })
    .await;
    let t0 = password_grant(&server).await["access_token"]
        .as_str()
        .expect("at")
        .to_owned();

    let r = get_resource(&server, "/me", &t0).await;
    assert_eq!(r.status(), StatusCode::OK);
    let t1 = header(&r, "access-token");
    let e1: f64 = header(&r, "expiry").parse().expect("expiry");
    assert_ne!(t1, t0);
    assert!(header(&r, "expiry").split('.').nth(1).is_some_and(|ms| ms.len() == 3));

    // A batch request still carrying t0 is accepted and told about t1.
    let r = get_resource(&server, "/me", &t0).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "access-token"), t1);

    // t1 is current: it rotates to t2 with a later expiry.
    let r = get_resource(&server, "/me", &t1).await;
    let t2 = header(&r, "access-token");
    let e2: f64 = header(&r, "expiry").parse().expect("expiry");
    assert_ne!(t2, t1);
    assert!(e2 > e1, "{e2} > {e1}");
    // t0 within the window now gets the newest token of the chain.
    let r = get_resource(&server, "/me", &t0).await;
    assert_eq!(header(&r, "access-token"), t2);

    tokio::time::sleep(Duration::from_millis(250)).await;
    let r = get_resource(&server, "/me", &t0).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(www_authenticate(&r).contains(r#"error="invalid_token""#));
    assert_eq!(get_resource(&server, "/me", &t2).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn admin_http_api() {
    let server = start(DevServerConfig::default()).await;
    let admin = |path: &str| format!("{}/_admin/{path}", server.base_url());
    let tokens = password_grant(&server).await;
    let at = tokens["access_token"].as_str().expect("at");

    let stats = json_of(http().get(admin("stats")).send().await.expect("stats")).await;
    assert_eq!(stats["token_requests"], 1);
    assert_eq!(stats["token_requests_by_grant"]["password"], 1);

    let r = http()
        .post(admin("revoke-subject?subject=alice"))
        .send()
        .await
        .expect("revoke");
    assert!(r.status().is_success());
    assert_eq!(
        get_resource(&server, "/me", at).await.status(),
        StatusCode::UNAUTHORIZED
    );

    let r = http()
        .post(admin("fault?endpoint=token"))
        .json(&json!({"kind": "status", "status": 503, "body": "down", "headers": [["Retry-After", "1"]]}))
        .send()
        .await
        .expect("fault");
    assert!(r.status().is_success());
    for body in [json!({"kind": "delay", "millis": 10}), json!({"kind": "drop"})] {
        let r = http()
            .post(admin("fault?endpoint=resource"))
            .json(&body)
            .send()
            .await
            .expect("fault");
        assert!(r.status().is_success());
    }
    let r = http()
        .post(admin("fault?endpoint=nowhere"))
        .json(&json!({"kind": "hang"}))
        .send()
        .await
        .expect("fault");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = http()
        .post(admin("fault?endpoint=token"))
        .json(&json!({"kind": "explode"}))
        .send()
        .await
        .expect("fault");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let r = token(&server, &[("grant_type", "client_credentials")]).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(r.text().await.expect("body"), "down");

    let r = http().post(admin("clear-faults")).send().await.expect("clear");
    assert!(r.status().is_success());
    let r = http().post(admin("reset-stats")).send().await.expect("reset");
    assert!(r.status().is_success());
    assert_eq!(server.stats(), Default::default());
}

#[tokio::test]
async fn shutdown_ends_hanging_requests_and_frees_the_port() {
    let server = start(DevServerConfig::default()).await;
    let url = server.token_endpoint();
    server.inject(Endpoint::Token, Fault::Hang);
    let pending = tokio::spawn(async move {
        http()
            .post(url)
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let base = server.base_url();
    server.shutdown();
    let result = tokio::time::timeout(Duration::from_secs(2), pending)
        .await
        .expect("hanging request ends at shutdown")
        .expect("task");
    assert!(result.is_err());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(http().get(format!("{base}/_admin/stats")).send().await.is_err());
}

#[tokio::test]
async fn optional_response_fields() {
    let server = start(DevServerConfig {
        omit_expires_in: true,
        refresh_tokens_for_client_credentials: true,
        issue_refresh_tokens: false,
        ..DevServerConfig::default()
    })
    .await;
    let cc = json_of(token(&server, &[("grant_type", "client_credentials")]).await).await;
    assert!(cc.get("expires_in").is_none());
    let rt = cc["refresh_token"].as_str().expect("client-credentials refresh token");
    let refreshed = json_of(token(&server, &[("grant_type", "refresh_token"), ("refresh_token", rt)]).await).await;
    assert_eq!(refreshed["scope"], "read write admin");
    let pw = password_grant(&server).await;
    assert!(pw.get("refresh_token").is_none());

    server.set_user_password("alice", "changed");
    let r = token(
        &server,
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "changed"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
}
