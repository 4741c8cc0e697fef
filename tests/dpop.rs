//! DPoP (RFC 9449) end to end against the development server, which verifies every
//! proof: bound tokens for every grant the session makes, `Authorization: DPoP` with
//! `ath` on resource requests, nonces, clock correction, and everything that works
//! with Bearer (recovery, rotation, `PerRequest`) working with DPoP.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::{password, value, EventLog, Harness, ALICE_PASSWORD};
use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::Duration;
use tokenkeeper::{
    AuthClient, AuthConfig, AuthError, CachePolicy, DpopMode, ManualClock, MemoryStore, SoftwareDpopKey, TokenRotation,
    TokenStore, TokenType,
};
use tokenkeeper_devserver::{DevServerConfig, DpopSpec, Endpoint, Fault, RotationSpec};

fn dpop_server(dpop: DpopSpec) -> DevServerConfig {
    DevServerConfig {
        dpop,
        ..Default::default()
    }
}

fn required() -> DpopSpec {
    DpopSpec {
        required_for_clients: vec!["demo-client".into()],
        ..Default::default()
    }
}

fn client(h: &Harness, mode: DpopMode) -> AuthClient {
    AuthClient::new(h.config().dpop(mode)).unwrap()
}

fn rejections(h: &Harness, reason: &str) -> u64 {
    h.server.stats().dpop_rejections.get(reason).copied().unwrap_or(0)
}

/// Alice signed in with DPoP against a server that demands nonces.
async fn signed_in_with_nonces() -> (Harness, AuthClient, std::sync::Arc<tokenkeeper::Session>) {
    let h = Harness::with(dpop_server(DpopSpec {
        nonces: true,
        ..required()
    }))
    .await;
    let client = client(&h, DpopMode::Required);
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    (h, client, alice)
}

#[tokio::test]
async fn login_refresh_and_send_use_tokens_bound_to_the_sessions_key() {
    let h = Harness::with(dpop_server(required())).await;
    let client = client(&h, DpopMode::Required);
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    let token = alice.access_token().await.unwrap();
    assert_eq!(token.token_type(), TokenType::Dpop);
    let jkt = alice.dpop_thumbprint().unwrap().unwrap();
    assert_eq!(h.server.dpop_binding(&value(&token)), Some(jkt.clone()));

    let response = alice
        .send(client.http().get(h.server.resource_url("/me?page=2")))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let refreshed = alice.refresh().await.unwrap();
    assert_ne!(value(&refreshed), value(&token));
    assert_eq!(
        h.server.dpop_binding(&value(&refreshed)),
        Some(jkt),
        "the same key across refreshes"
    );
    assert_eq!(h.grants("refresh_token"), 1);
    let response = alice
        .send(client.http().get(h.server.resource_url("/me")))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Login, refresh, two resource requests: every proof verified, none refused.
    assert_eq!(h.server.stats().dpop_proofs_accepted, 4);
    assert!(
        h.server.stats().dpop_rejections.is_empty(),
        "{:?}",
        h.server.stats().dpop_rejections
    );

    // The token copy is useless as a bearer token.
    let stolen = client
        .http()
        .get(h.server.resource_url("/me"))
        .bearer_auth(refreshed.expose_secret())
        .send()
        .await
        .unwrap();
    assert_eq!(stolen.status(), 401);
    assert_eq!(rejections(&h, "bound_token_as_bearer"), 1);
}

#[tokio::test]
async fn client_credentials_and_logout_revocation_carry_proofs() {
    let h = Harness::with(dpop_server(required())).await;
    let client = client(&h, DpopMode::Required);
    let machine = client.client_credentials_session();
    let token = machine.access_token().await.unwrap();
    assert_eq!(token.token_type(), TokenType::Dpop);
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    let before = h.server.stats().dpop_proofs_accepted;
    alice.logout().await.unwrap();
    let stats = h.server.stats();
    assert_eq!(stats.revocations.len(), 2, "refresh and access token");
    assert_eq!(
        stats.dpop_proofs_accepted,
        before + 2,
        "each revocation request carried a proof"
    );
    assert_eq!(h.server.live_tokens("alice"), 0);
}

#[tokio::test]
async fn required_dpop_refuses_a_bearer_answer_and_if_supported_uses_it() {
    let h = Harness::with(DevServerConfig::default()).await;
    let bearer = serde_json::json!({"access_token": "plain-bearer-token", "token_type": "Bearer", "expires_in": 600});
    h.server.inject(Endpoint::Token, Fault::json(200, bearer.clone()));
    let error = client(&h, DpopMode::Required)
        .client_credentials_session()
        .access_token()
        .await
        .unwrap_err();
    assert!(
        matches!(&error, AuthError::InvalidResponse { reason, .. } if reason.contains("DPoP is required")),
        "{error}"
    );

    h.server.inject(Endpoint::Token, Fault::json(200, bearer));
    let token = client(&h, DpopMode::IfSupported)
        .client_credentials_session()
        .access_token()
        .await
        .unwrap();
    assert_eq!(token.token_type(), TokenType::Bearer);

    // A DPoP token for a request that carried no proof is not believed either.
    let dpop = serde_json::json!({"access_token": "x", "token_type": "DPoP", "expires_in": 600});
    h.server.inject(Endpoint::Token, Fault::json(200, dpop));
    let error = h
        .client()
        .client_credentials_session()
        .access_token()
        .await
        .unwrap_err();
    assert!(matches!(error, AuthError::InvalidResponse { .. }), "{error}");
}

#[tokio::test]
async fn if_supported_follows_the_servers_metadata() {
    for advertise in [true, false] {
        let h = Harness::with(dpop_server(DpopSpec {
            advertise,
            ..Default::default()
        }))
        .await;
        let config = AuthConfig::discover(&h.server.base_url(), "demo-client")
            .await
            .unwrap()
            .client_secret(password("demo-secret"))
            .dpop(DpopMode::IfSupported);
        let token = AuthClient::new(config)
            .unwrap()
            .client_credentials_session()
            .access_token()
            .await
            .unwrap();
        let expected = if advertise { TokenType::Dpop } else { TokenType::Bearer };
        assert_eq!(token.token_type(), expected);
        assert_eq!(h.server.stats().dpop_proofs_accepted, u64::from(advertise));
    }
}

#[tokio::test]
async fn a_nonce_is_learned_with_one_extra_request_and_a_rotation_costs_one_resend_at_each_server() {
    let (h, client, alice) = signed_in_with_nonces().await;
    assert_eq!(h.token_requests(), 2, "use_dpop_nonce, then the login with the nonce");
    assert_eq!(rejections(&h, "nonce"), 1);

    // The resource shares the origin, so it already has the nonce.
    let url = h.server.resource_url("/me");
    assert_eq!(alice.send(client.http().get(&url)).await.unwrap().status(), 200);
    assert_eq!(h.server.stats().resource_requests, 1);

    // Rotations are not revocations: many in a row cost one re-send each, no token
    // request, and the circuit breaker never opens.
    for round in 1..=5u64 {
        h.server.rotate_dpop_nonce();
        let response = alice.send(client.http().get(&url)).await.unwrap();
        assert_eq!(response.status(), 200, "round {round}");
        assert_eq!(h.server.stats().resource_requests, 1 + 2 * round);
    }
    assert_eq!(h.token_requests(), 2);
    // And at the token endpoint: a refresh after a rotation is sent twice, once.
    h.server.rotate_dpop_nonce();
    alice.refresh().await.unwrap();
    assert_eq!(h.token_requests(), 4);
    assert_eq!(rejections(&h, "nonce"), 7);
}

#[tokio::test]
async fn use_dpop_nonce_is_retried_exactly_once() {
    let h = Harness::with(dpop_server(required())).await;
    let client = client(&h, DpopMode::Required);
    let nonce_error =
        |n: &str| Fault::json(400, serde_json::json!({"error": "use_dpop_nonce"})).with_header("DPoP-Nonce", n);
    h.server.inject(Endpoint::Token, nonce_error("n1"));
    h.server.inject(Endpoint::Token, nonce_error("n2"));
    let error = client.login("alice", password(ALICE_PASSWORD)).await.unwrap_err();
    assert!(
        matches!(&error, AuthError::OAuth(e) if e.code == "use_dpop_nonce"),
        "{error}"
    );
    assert_eq!(h.token_requests(), 2, "one retry, no loop");

    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    let challenge = Fault::status(401)
        .with_header("WWW-Authenticate", r#"DPoP error="use_dpop_nonce""#)
        .with_header("DPoP-Nonce", "n3");
    h.server.inject(Endpoint::Resource, challenge.clone());
    h.server.inject(Endpoint::Resource, challenge);
    let before = h.token_requests();
    let response = alice
        .send(client.http().get(h.server.resource_url("/me")))
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "the second refusal is handed back");
    assert_eq!(h.server.stats().resource_requests, 2);
    assert_eq!(h.token_requests(), before, "not a revocation: no token request");
}

#[tokio::test]
async fn iat_follows_the_server_clock_when_the_device_clock_is_off() {
    let h = Harness::with(dpop_server(required())).await;
    // The device clock is two hours behind the server's.
    let clock = std::sync::Arc::new(ManualClock::new(
        std::time::SystemTime::now() - Duration::from_secs(7200),
    ));
    let client = AuthClient::new(h.config().clock(clock.clone()).dpop(DpopMode::Required)).unwrap();
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    assert_eq!(
        h.token_requests(),
        2,
        "the first proof is refused, its Date corrects the next"
    );
    assert_eq!(rejections(&h, "iat_outside_window"), 1);
    assert_eq!(
        alice
            .send(client.http().get(h.server.resource_url("/me")))
            .await
            .unwrap()
            .status(),
        200
    );

    // The device clock jumps half an hour forward (NTP, the user) while the token is
    // fresh: the resource refuses the first proof, its Date corrects the second, and no
    // token is requested.
    clock.advance(Duration::from_secs(1800));
    let before = h.token_requests();
    let response = alice
        .send(client.http().get(h.server.resource_url("/me")))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(h.server.stats().resource_requests, 3);
    assert_eq!(rejections(&h, "iat_outside_window"), 2);
    assert_eq!(h.token_requests(), before);

    // Three more hours: the token expired on the device's clock; the refresh's first
    // proof is refused, the second (corrected) accepted.
    clock.advance(Duration::from_secs(3 * 3600));
    let response = alice
        .send(client.http().get(h.server.resource_url("/me")))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(h.token_requests(), before + 2);
    assert_eq!(h.server.stats().resource_requests, 4);
    assert_eq!(rejections(&h, "iat_outside_window"), 3);
}

#[tokio::test]
async fn a_bound_token_revoked_elsewhere_is_recovered_and_the_request_resent() {
    let h = Harness::with(dpop_server(required())).await;
    let events = EventLog::new();
    let client = AuthClient::builder(h.config().dpop(DpopMode::Required))
        .event_listener(events.clone())
        .build()
        .unwrap();
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    let jkt = alice.dpop_thumbprint().unwrap();
    h.server.revoke_subject("alice");
    let response = alice
        .send(client.http().get(h.server.resource_url("/me")))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(events.count("Reauthenticated"), 1);
    let token = alice.access_token().await.unwrap();
    assert_eq!(
        h.server.dpop_binding(&value(&token)),
        jkt,
        "recovered with the same key"
    );
}

#[tokio::test]
async fn rotated_tokens_stay_dpop_bound_and_per_request_tokens_are_bound() {
    let h = Harness::with(DevServerConfig {
        rotation: Some(RotationSpec::default()),
        ..dpop_server(required())
    })
    .await;
    let rotation = RotationSpec::default();
    let config = h
        .config()
        .dpop(DpopMode::Required)
        .token_rotation(TokenRotation::headers(rotation.token_header, rotation.expiry_header));
    let client = AuthClient::new(config).unwrap();
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    let first = alice.access_token().await.unwrap();
    for _ in 0..3 {
        let response = alice
            .send(client.http().get(h.server.resource_url("/me")))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let rotated = alice.access_token().await.unwrap();
    assert!(!rotated.is_same_token(&first), "the session follows the rotation");
    assert_eq!(rotated.token_type(), TokenType::Dpop);
    assert_eq!(h.token_requests(), 1);

    let per_request = AuthClient::new(
        h.config()
            .dpop(DpopMode::Required)
            .cache_policy(CachePolicy::PerRequest),
    )
    .unwrap()
    .client_credentials_session();
    let (a, b) = (
        per_request.access_token().await.unwrap(),
        per_request.access_token().await.unwrap(),
    );
    assert!(!a.is_same_token(&b));
    let jkt = per_request.dpop_thumbprint().unwrap();
    assert_eq!(h.server.dpop_binding(&value(&a)), jkt);
    assert_eq!(h.server.dpop_binding(&value(&b)), jkt);
}

#[tokio::test]
async fn apps_with_their_own_http_stack_get_both_header_values() {
    let (h, _client, alice) = signed_in_with_nonces().await;
    let url = h.server.resource_url("/me");
    let http = reqwest::Client::new();
    let call = |headers: tokenkeeper::AuthorizationHeaders| {
        let request = http
            .get(&url)
            .header("Authorization", headers.authorization().expose_secret())
            .header(
                "DPoP",
                headers.dpop().expect("a DPoP token has a proof").expose_secret(),
            );
        async move { request.send().await.unwrap() }
    };
    let headers = alice.authorization_headers("GET", &url).await.unwrap();
    assert!(headers.authorization().expose_secret().starts_with("DPoP "));
    assert!(!format!("{headers:?}").contains(&value(headers.token())));
    assert_eq!(call(headers).await.status(), 200);

    // After a nonce rotation: the 401 says use_dpop_nonce; the app hands over the
    // nonce and the challenge, gets the same token back, and retries once.
    h.server.rotate_dpop_nonce();
    let headers = alice.authorization_headers("GET", &url).await.unwrap();
    let token = headers.token().clone();
    let refused = call(headers).await;
    assert_eq!(refused.status(), 401);
    let nonce = refused.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    let challenge = refused.headers()["www-authenticate"].to_str().unwrap().to_owned();
    alice.dpop_nonce_received(&url, &nonce);
    let retry_with = alice.handle_unauthorized(&token, &[challenge]).await.unwrap().unwrap();
    assert!(retry_with.is_same_token(&token), "a nonce refusal is not a revocation");
    let headers = alice.authorization_headers("GET", &url).await.unwrap();
    assert_eq!(call(headers).await.status(), 200);
    assert_eq!(h.token_requests(), 2);
}

/// Alice signed in with DPoP into `store`; her store key and her key's thumbprint.
async fn stored_dpop_session(h: &Harness, store: &Arc<MemoryStore>) -> (String, String) {
    let client = AuthClient::builder(h.config().dpop(DpopMode::Required))
        .store(store.clone())
        .build()
        .unwrap();
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    let jkt = alice.dpop_thumbprint().unwrap().unwrap();
    (alice.store_key().to_owned(), jkt)
}

/// The app restarts: a new client on the same store.
fn restarted(h: &Harness, store: &Arc<MemoryStore>, dpop: DpopMode) -> AuthClient {
    AuthClient::builder(h.config().dpop(dpop))
        .store(store.clone())
        .build()
        .unwrap()
}

#[tokio::test]
async fn after_a_restart_the_session_keeps_its_key_with_its_refresh_token() {
    let h = Harness::with(dpop_server(required())).await;
    let store = Arc::new(MemoryStore::new());
    let (key, jkt) = stored_dpop_session(&h, &store).await;
    let record: serde_json::Value = serde_json::from_str(store.load(&key).unwrap().unwrap().expose_secret()).unwrap();
    assert_eq!(record["dpop_jkt"], jkt.as_str(), "the thumbprint is in the record");

    let client = restarted(&h, &store, DpopMode::Required);
    let alice = client.restore("alice").await.unwrap();
    assert_eq!(
        alice.dpop_thumbprint().unwrap(),
        Some(jkt.clone()),
        "the same key, from the record"
    );
    // Offline start (the default) serves the stored access token, bound to that key…
    let stored = alice.access_token().await.unwrap();
    assert_eq!(h.grants("refresh_token"), 0, "served from the record");
    assert_eq!(h.server.dpop_binding(&value(&stored)), Some(jkt.clone()));
    // …as a DPoP token: sent with a proof, never as `Bearer` (found by the harness).
    assert_eq!(stored.token_type(), TokenType::Dpop);
    let response = alice
        .send(client.http().get(h.server.resource_url("/me")))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(rejections(&h, "bound_token_as_bearer"), 0);
    assert_eq!(h.grants("refresh_token"), 0, "the stored token was used as it is");
    // …and the bound refresh token refreshes with the restored key.
    let token = alice.refresh().await.unwrap();
    assert_eq!(h.grants("refresh_token"), 1, "the bound refresh token was accepted");
    assert_eq!(h.server.dpop_binding(&value(&token)), Some(jkt));
    let response = alice
        .send(client.http().get(h.server.resource_url("/me")))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// What a test does to a stored record.
type Spoil = Box<dyn Fn(&mut serde_json::Value)>;

#[tokio::test]
async fn a_missing_mismatched_or_unusable_stored_key_needs_the_user_once_without_a_request() {
    let other_key = SoftwareDpopKey::generate().unwrap();
    let other = URL_SAFE_NO_PAD.encode(other_key.pkcs8().expose_secret());
    let cases: [(&str, Spoil, DpopMode); 4] = [
        (
            "missing",
            Box::new(|r| drop(r.as_object_mut().unwrap().remove("dpop_key"))),
            DpopMode::Required,
        ),
        (
            "not the key its tokens are bound to",
            Box::new(move |r| r["dpop_key"] = other.clone().into()),
            DpopMode::Required,
        ),
        (
            "not a P-256 key",
            Box::new(|r| r["dpop_key"] = "AAAA".into()),
            DpopMode::Required,
        ),
        ("sends no DPoP proofs", Box::new(|_| {}), DpopMode::Off),
    ];
    for (reason, spoil, mode) in cases {
        let h = Harness::with(dpop_server(required())).await;
        let store = Arc::new(MemoryStore::new());
        let (key, _) = stored_dpop_session(&h, &store).await;
        let mut record: serde_json::Value =
            serde_json::from_str(store.load(&key).unwrap().unwrap().expose_secret()).unwrap();
        spoil(&mut record);
        store.save(&key, &password(&record.to_string())).unwrap();
        let before = h.token_requests();

        let client = restarted(&h, &store, mode);
        let error = client.restore("alice").await.unwrap_err();
        assert!(
            matches!(&error, AuthError::ReauthenticationRequired { reason: r } if r.contains(reason)),
            "{reason}: {error}"
        );
        // Once: the unusable record is gone, the next start finds nothing to restore,
        // and no token request was made with the wrong key (or none).
        assert!(store.load(&key).unwrap().is_none(), "{reason}");
        assert!(client.restore("alice").await.is_err());
        assert_eq!(h.token_requests(), before, "{reason}: no request");
    }
}

#[tokio::test]
async fn proofs_refused_together_for_a_skewed_clock_are_each_resent_once() {
    let h = Harness::with(dpop_server(required())).await;
    let client = client(&h, DpopMode::Required);
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    let machine = client.client_credentials_session();
    // The device clock jumps ten minutes back: two token requests leave at once with
    // stale proofs. The first answer corrects the clock; the delayed one, refused for
    // the same reason, must be resent too although the correction is already known
    // (found by the interleaving harness: a logout's revocation was lost this way).
    h.clock.rewind(Duration::from_secs(600));
    h.server.inject(Endpoint::Token, Fault::delay_ms(200));
    let (refreshed, issued) = tokio::join!(alice.refresh(), machine.access_token());
    refreshed.expect("the refresh is resent with a corrected iat");
    issued.expect("the client-credentials request is resent with a corrected iat");
    assert_eq!(rejections(&h, "iat_outside_window"), 2, "each refused once");
    assert_eq!(h.token_requests(), 1 + 4, "the login, then two requests sent twice");
}
