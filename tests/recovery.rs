//! Silent recovery from revoked tokens (seed 002), send()/recover(), logout, rotation.

mod common;

use common::{password, stored_refresh_token, until, value, Harness, ALICE_PASSWORD};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokenkeeper::{
    AuthClient, AuthError, AuthEvent, AuthEventListener, InsufficientScope, MemoryStore, RecoveryPolicy, Replay,
    Session, TokenParams, TokenRotation, TokenStore,
};
use tokenkeeper_devserver::{DevServerConfig, Endpoint, Fault, RotationSpec, UserSpec};

#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<AuthEvent>>);

impl AuthEventListener for Recorder {
    fn on_event(&self, event: &AuthEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

impl Recorder {
    fn count(&self, matches: fn(&AuthEvent) -> bool) -> usize {
        self.0.lock().unwrap().iter().filter(|e| matches(e)).count()
    }
}

async fn get_me(session: &Session, client: &AuthClient, h: &Harness) -> Result<reqwest::StatusCode, AuthError> {
    Ok(session
        .send(client.http().get(h.server.resource_url("/me")))
        .await?
        .status())
}

#[tokio::test]
async fn the_tablet_recovers_silently_when_the_user_logs_out_on_the_desktop() {
    // Like WSO2 API Manager, the server hands both devices the same active token.
    let h = Harness::with(DevServerConfig {
        reuse_active_token: true,
        ..Default::default()
    })
    .await;
    let desktop = h.client();
    let events = Arc::new(Recorder::default());
    let tablet = h.builder().event_listener(events.clone()).build().unwrap();
    let on_desktop = desktop.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    let on_tablet = tablet.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    assert_eq!(get_me(&on_tablet, &tablet, &h).await.unwrap(), 200);

    on_desktop.logout().await.unwrap(); // revokes the shared refresh and access tokens

    let mut user_visible_errors = 0;
    for _ in 0..5 {
        match get_me(&on_tablet, &tablet, &h).await {
            Ok(status) if status == 200 => {}
            _ => user_visible_errors += 1,
        }
    }
    assert_eq!(user_visible_errors, 0);
    assert_eq!(h.grants("refresh_token"), 1, "the revoked refresh token was tried once");
    assert_eq!(h.grants("password"), 3, "two logins and one silent re-authentication");
    assert_eq!(events.count(|e| matches!(e, AuthEvent::RevocationDetected { .. })), 1);
    assert_eq!(events.count(|e| matches!(e, AuthEvent::Reauthenticated { .. })), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_100_concurrent_401s_costs_one_token_request() {
    let h = Harness::start().await;
    let client = h.client();
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    let revoked = alice.access_token().await.unwrap();
    h.server.revoke_token(&value(&revoked));
    let before = h.token_requests();
    // Hold the first answers back so all 100 requests are in flight with the revoked token.
    for _ in 0..100 {
        h.server
            .inject(Endpoint::Resource, Fault::Delay(Duration::from_millis(300)));
    }

    let requests: Vec<_> = (0..100)
        .map(|_| {
            let (alice, http, url) = (alice.clone(), client.http().clone(), h.server.resource_url("/me"));
            tokio::spawn(async move { alice.send(http.get(url)).await.map(|r| r.status()) })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap().unwrap(), 200);
    }
    assert_eq!(h.token_requests() - before, 1);
    assert_eq!(h.server.stats().resource_unauthorized, 100);
}

#[tokio::test]
async fn a_late_401_for_an_already_replaced_token_causes_no_token_request() {
    let h = Harness::start().await;
    let alice = h.client().login("alice", password(ALICE_PASSWORD)).await.unwrap();
    let old = alice.access_token().await.unwrap();
    let new = alice.refresh().await.unwrap();
    let before = h.token_requests();
    let recovered = alice
        .recover(&old, Some(r#"Bearer error="invalid_token""#))
        .await
        .unwrap();
    assert!(recovered.is_same_token(&new));
    assert_eq!(h.token_requests(), before);
}

#[tokio::test]
async fn a_post_that_gets_401_is_not_resent_but_a_get_is_resent_once() {
    let h = Harness::start().await;
    let client = h.client();
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    let url = h.server.resource_url("/orders");

    h.server.revoke_token(&value(&alice.access_token().await.unwrap()));
    let error = alice.send(client.http().post(&url).body("order")).await.unwrap_err();
    assert_eq!(error, AuthError::RequestNotReplayed { method: "POST".into() });
    assert!(error.is_retryable());
    assert_eq!(h.server.stats().resource_requests_by_method["POST"], 1);
    assert_eq!(
        client
            .http()
            .post(&url)
            .bearer_auth(value(&alice.access_token().await.unwrap()))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "the token was renewed"
    );

    h.server.revoke_token(&value(&alice.access_token().await.unwrap()));
    assert_eq!(alice.send(client.http().get(&url)).await.unwrap().status(), 200);
    assert_eq!(h.server.stats().resource_requests_by_method["GET"], 2);

    // A POST with an idempotency key, or one the app marks replayable, is re-sent.
    h.server.revoke_token(&value(&alice.access_token().await.unwrap()));
    let keyed = client.http().post(&url).header("Idempotency-Key", "k-1").body("order");
    assert_eq!(alice.send(keyed).await.unwrap().status(), 200);
    h.server.revoke_token(&value(&alice.access_token().await.unwrap()));
    assert_eq!(
        alice
            .send_with(client.http().post(&url).body("x"), Replay::Always)
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(h.server.stats().resource_requests_by_method["POST"], 6);
}

#[tokio::test]
async fn a_rejected_refresh_token_falls_back_to_credentials_and_rejected_credentials_require_sign_in() {
    let h = Harness::start().await;
    let client = h.client();
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();

    h.server.revoke_subject("alice"); // access and refresh tokens
    assert_eq!(get_me(&alice, &client, &h).await.unwrap(), 200);
    assert_eq!((h.grants("refresh_token"), h.grants("password")), (1, 2));

    h.server.set_user_password("alice", "changed-elsewhere");
    h.server.revoke_subject("alice");
    let (tokens_before, resource_before) = (h.token_requests(), h.server.stats().resource_requests);
    let error = get_me(&alice, &client, &h).await.unwrap_err();
    assert!(matches!(error, AuthError::ReauthenticationRequired { .. }), "{error:?}");
    assert_eq!(
        h.token_requests() - tokens_before,
        2,
        "refresh token, then password: no loop"
    );
    assert_eq!(
        h.server.stats().resource_requests - resource_before,
        1,
        "the request was not retried"
    );
}

#[tokio::test]
async fn a_403_is_returned_as_the_response_without_any_recovery() {
    let h = Harness::start().await;
    let client = AuthClient::new(h.config().scopes(["read"])).unwrap();
    let machine = client.client_credentials_session();
    machine.access_token().await.unwrap();
    let response = machine
        .send(client.http().get(h.server.resource_url("/admin/users")))
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(
        tokenkeeper::insufficient_scope(&response),
        InsufficientScope::from_challenges([r#"Bearer error="insufficient_scope", scope="admin""#])
    );
    assert_eq!(
        tokenkeeper::insufficient_scope(&response).and_then(|r| r.scope),
        Some("admin".into())
    );
    assert_eq!(h.token_requests(), 1);
    assert!(machine.cached_access_token().is_some(), "the token is kept");
}

#[tokio::test]
async fn clear_and_fail_surfaces_a_retryable_error_and_the_next_call_logs_in_again() {
    let h = Harness::start().await;
    let client = AuthClient::new(h.config().recovery_policy(RecoveryPolicy::ClearAndFail)).unwrap();
    let machine = client.client_credentials_session();
    assert_eq!(get_me(&machine, &client, &h).await.unwrap(), 200);
    h.server.revoke_subject(common::CLIENT_ID);

    let error = get_me(&machine, &client, &h).await.unwrap_err();
    assert_eq!(error, AuthError::TokenRevoked);
    assert!(error.is_retryable());
    assert!(machine.cached_access_token().is_none());
    assert_eq!(h.token_requests(), 1);

    assert_eq!(get_me(&machine, &client, &h).await.unwrap(), 200);
    assert_eq!(h.token_requests(), 2);
}

#[tokio::test]
async fn invalidate_makes_the_next_call_get_exactly_one_new_token() {
    let h = Harness::start().await;
    let machine = h.client().client_credentials_session();
    let first = machine.access_token().await.unwrap();
    machine.invalidate();
    let second = machine.access_token().await.unwrap();
    machine.access_token().await.unwrap();
    assert!(!first.is_same_token(&second));
    assert_eq!(h.token_requests(), 2);
}

#[tokio::test]
async fn logout_revokes_with_the_right_hints_and_forgets_even_when_revocation_fails() {
    let h = Harness::start().await;
    let store = Arc::new(MemoryStore::new());
    let events = Arc::new(Recorder::default());
    let client = h
        .builder()
        .store(store.clone())
        .event_listener(events.clone())
        .build()
        .unwrap();
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    let key = alice.store_key().to_owned();
    let refresh = stored_refresh_token(store.as_ref(), &key).expect("stored");
    let access = alice.access_token().await.unwrap();

    alice.logout().await.unwrap();
    let revocations = h.server.stats().revocations;
    let hints: Vec<_> = revocations.iter().map(|r| r.token_type_hint.as_deref()).collect();
    assert_eq!(hints, [Some("refresh_token"), Some("access_token")]);
    assert_eq!(revocations[0].token, refresh);
    assert_eq!(revocations[1].token, value(&access));
    assert!(client.session("alice").is_none());
    assert!(store.load(&key).unwrap().is_none());
    assert!(matches!(
        alice.access_token().await,
        Err(AuthError::ReauthenticationRequired { .. })
    ));
    assert_eq!(events.count(|e| matches!(e, AuthEvent::LoggedOut { .. })), 1);

    // Revocation fails for now (503): local state is forgotten all the same, the logout
    // succeeds and the revocation waits in the store (tests/offline.rs sends it).
    let bob = client.login("bob", password("bob-password")).await.unwrap();
    h.server.inject(Endpoint::Revocation, Fault::status(503));
    h.server.inject(Endpoint::Revocation, Fault::status(503));
    bob.logout().await.expect("an offline logout succeeds locally");
    assert!(client.session("bob").is_none());
    assert!(bob.cached_access_token().is_none());
    let bob_key = bob.store_key().to_owned();
    assert!(store.load(&bob_key).unwrap().is_none());
    assert!(store.load(&format!("{bob_key}#revoke")).unwrap().is_some(), "queued");

    // Refused for good (an OAuth error): reported, nothing queued. The login's answer
    // sends bob's queued revocation in the background: let it go first, or it would
    // meet the refusal injected for carol's.
    let carol = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    until(|| store.load(&format!("{bob_key}#revoke")).unwrap().is_none()).await;
    h.server.inject(
        Endpoint::Revocation,
        Fault::json(400, serde_json::json!({"error": "invalid_request"})),
    );
    assert!(!carol.logout().await.unwrap_err().is_retryable());
    assert!(store.load(&format!("{key}#revoke")).unwrap().is_none());
}

#[tokio::test]
async fn after_a_restart_the_stored_refresh_token_restores_the_session_without_a_password() {
    let h = Harness::start().await;
    let store = Arc::new(MemoryStore::new());
    h.builder()
        .store(store.clone())
        .build()
        .unwrap()
        .login("alice", password(ALICE_PASSWORD))
        .await
        .unwrap();

    let restarted = h.builder().store(store.clone()).build().unwrap();
    let alice = restarted.restore("alice").await.unwrap();
    assert_eq!(get_me(&alice, &restarted, &h).await.unwrap(), 200);
    assert_eq!(
        h.grants("refresh_token"),
        0,
        "offline start: the stored token is served"
    );
    h.advance(3600);
    assert_eq!(get_me(&alice, &restarted, &h).await.unwrap(), 200);
    assert_eq!(h.grants("refresh_token"), 1, "then the stored refresh token renews it");

    let nobody = restarted.restore("bob").await.unwrap_err();
    assert!(matches!(nobody, AuthError::ReauthenticationRequired { .. }));
    assert!(restarted.session("bob").is_none());
}

fn rotating_server() -> DevServerConfig {
    DevServerConfig {
        rotation: Some(RotationSpec {
            token_header: "access-token".into(),
            expiry_header: "expiry".into(),
            batch_window: Duration::from_secs(5),
        }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_per_response_rotation_a_batch_of_20_shares_the_token_in_use_and_follows_the_chain() {
    let h = Harness::with(rotating_server()).await;
    let client = AuthClient::new(
        h.config()
            .token_rotation(TokenRotation::headers("access-token", "expiry")),
    )
    .unwrap();
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    let issued = alice.access_token().await.unwrap();

    let batch: Vec<_> = (0..20)
        .map(|_| {
            let (alice, http, url) = (alice.clone(), client.http().clone(), h.server.resource_url("/me"));
            tokio::spawn(async move { alice.send(http.get(url)).await.map(|r| r.status()) })
        })
        .collect();
    for request in batch {
        assert_eq!(request.await.unwrap().unwrap(), 200);
    }
    let rotated = alice.access_token().await.unwrap();
    assert!(!rotated.is_same_token(&issued), "the session adopted the rotated token");
    assert_eq!(h.server.stats().resource_unauthorized, 0);
    // Sequential requests keep following the chain with no token endpoint traffic.
    for _ in 0..5 {
        assert_eq!(get_me(&alice, &client, &h).await.unwrap(), 200);
    }
    assert_eq!(h.token_requests(), 1);
}

#[tokio::test]
async fn rotated_tokens_arriving_out_of_order_never_move_the_session_back() {
    let h = Harness::start().await;
    let client = AuthClient::new(
        h.config()
            .token_rotation(TokenRotation::headers("access-token", "expiry")),
    )
    .unwrap();
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut order = [5u64, 3, 9, 1, 7, 8, 2];
    for round in 0..10 {
        let len = order.len();
        order.rotate_left(round % len);
        let session = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
        for n in order {
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert("access-token", format!("rotated-{round}-{n}").parse().unwrap());
            headers.insert(
                "expiry",
                format!("{}", now + 3600 + round as u64 * 100 + n).parse().unwrap(),
            );
            session.observe_response_headers(&headers);
        }
        assert_eq!(
            value(&alice.access_token().await.unwrap()),
            format!("rotated-{round}-9")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_tenants_hammered_concurrently_never_see_each_others_tokens() {
    let users: Vec<UserSpec> = (0..50)
        .map(|i| UserSpec::new(&format!("tenant{i}"), &format!("pw{i}")))
        .collect();
    let h = Harness::with(DevServerConfig {
        users,
        ..Default::default()
    })
    .await;
    let client = h.client();
    let mut tasks = Vec::new();
    for i in 0..50 {
        for round in 0..4 {
            let (client, url) = (client.clone(), h.server.resource_url("/me"));
            let server_revokes = round == 2;
            tasks.push(tokio::spawn(async move {
                let name = format!("tenant{i}");
                let session = client
                    .login_with(&name, password(&format!("pw{i}")), TokenParams::new())
                    .await
                    .unwrap();
                if server_revokes {
                    session.invalidate();
                }
                let text = session
                    .send(client.http().get(&url))
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                let body: serde_json::Value = serde_json::from_str(&text).unwrap();
                assert_eq!(
                    body["subject"],
                    name.as_str(),
                    "tenant {name} saw another tenant's token"
                );
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test]
async fn handle_unauthorized_renews_only_when_the_challenge_is_about_the_token() {
    let h = Harness::start().await;
    let alice = h.client().login("alice", password(ALICE_PASSWORD)).await.unwrap();
    let token = alice.access_token().await.unwrap();

    let not_ours = alice
        .handle_unauthorized(&token, &[r#"Basic realm="intranet""#])
        .await
        .unwrap();
    assert!(not_ours.is_none(), "another scheme's challenge is handed back");
    let malformed = alice
        .handle_unauthorized(&token, &[r#"Bearer error="invalid_request""#])
        .await
        .unwrap();
    assert!(malformed.is_none(), "a malformed request is not fixed by a new token");
    let scope = alice
        .handle_unauthorized(&token, &[r#"Bearer error="insufficient_scope", scope="admin""#])
        .await;
    assert_eq!(
        scope.unwrap_err(),
        AuthError::InsufficientScope {
            required_scope: Some("admin".into())
        }
    );
    assert_eq!(h.token_requests(), 1, "none of these asked for a token");

    let renewed = alice
        .handle_unauthorized(&token, &[r#"Bearer error="invalid_token""#])
        .await
        .unwrap()
        .unwrap();
    assert!(!renewed.is_same_token(&token));
    let bare: [&str; 0] = [];
    let again = alice.handle_unauthorized(&token, &bare).await.unwrap().unwrap();
    assert!(
        again.is_same_token(&renewed),
        "a late 401 for the old token reuses the new one"
    );
    assert_eq!(h.token_requests(), 2);
}
