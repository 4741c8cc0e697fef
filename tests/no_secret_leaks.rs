//! Secrets never appear in logs, `Debug`/`Display` output or error messages.
//! Everything this binary logs, at every level, is captured and searched.

mod common;

use common::{password, stored_refresh_token, value, Harness, ALICE_PASSWORD, CLIENT_SECRET};
use std::io::Write;
use std::sync::{Arc, Mutex};
use tokenkeeper::{
    AuthClient, AuthError, FileStore, MemoryStore, SecretString, TokenChange, TokenObserver, TokenStore,
};
use tokenkeeper_devserver::{Endpoint, Fault};

/// The `Debug` text of every token change a session reports.
#[derive(Default)]
struct DebugOfChanges(Mutex<Vec<String>>);

impl TokenObserver for DebugOfChanges {
    fn on_token_change(&self, change: &TokenChange) {
        self.0.lock().unwrap().push(format!("{change:?}"));
    }
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_logs_debug_output_or_errors() {
    let logs = Captured::default();
    let sink = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .init();

    let h = Harness::start().await;
    let store = Arc::new(MemoryStore::new());
    let client = h.builder().store(store.clone()).build().unwrap();
    let mut seen = Vec::<String>::new(); // every Debug/Display text produced
    let mut secrets = vec![
        CLIENT_SECRET.to_owned(),
        ALICE_PASSWORD.to_owned(),
        "wrong-password-123".to_owned(),
    ];

    seen.push(format!("{:?}", h.config()));
    seen.push(format!("{client:?}"));
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    seen.push(format!("{alice:?}"));
    let changes = Arc::new(DebugOfChanges::default());
    alice.observe(changes.clone());
    let token = alice.access_token().await.unwrap();
    secrets.push(value(&token));
    seen.push(format!("{token:?} {}", token.expires_at()));
    let refresh_token = stored_refresh_token(store.as_ref(), alice.store_key()).expect("refresh token stored");
    secrets.push(refresh_token.clone());

    // Errors: wrong password, wrong secret, a revoked token recovered, server faults.
    let mut errors: Vec<AuthError> = Vec::new();
    errors.push(client.login("alice", password("wrong-password-123")).await.unwrap_err());
    let wrong = AuthClient::new(h.config().client_secret(password("wrong-secret-456"))).unwrap();
    secrets.push("wrong-secret-456".into());
    errors.push(wrong.client_credentials_session().access_token().await.unwrap_err());
    h.server.revoke_subject("alice");
    let response = alice
        .send(client.http().get(h.server.resource_url("/me")))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let renewed = alice.access_token().await.unwrap();
    secrets.push(value(&renewed));
    h.server.inject(
        Endpoint::Token,
        Fault::json(400, serde_json::json!({"error": "invalid_request"})),
    );
    errors.push(client.client_credentials_session().access_token().await.unwrap_err());
    // OpenID Connect: the ID token (and the nonce of a code flow) never show either.
    let oidc = tokenkeeper::AuthConfig::discover(&h.server.issuer(), "oidc-app")
        .await
        .unwrap()
        .scopes(["openid", "email"])
        .clock(h.clock.clone());
    let oidc_store = Arc::new(MemoryStore::new());
    let oidc = AuthClient::builder(oidc).store(oidc_store.clone()).build().unwrap();
    secrets.push("bob-password".into());
    let bob = oidc.login("bob", password("bob-password")).await.unwrap();
    let end = bob.end_session_request(None).unwrap();
    let url = reqwest::Url::parse(end.url()).unwrap();
    let (_, id_token) = url
        .query_pairs()
        .find(|(k, _)| k == "id_token_hint")
        .expect("an id_token_hint");
    // The stored record keeps the claims, never the ID token itself.
    let record = oidc_store.load(bob.store_key()).unwrap().expect("bob's record");
    let record = tokenkeeper::ExposeSecret::expose_secret(&record);
    assert!(record.contains("\"claims\""));
    assert!(!record.contains(id_token.as_ref()), "the ID token is not stored");
    secrets.push(id_token.into_owned());
    seen.push(format!("{end:?} {:?} {bob:?} {oidc:?}", bob.id_token_claims()));
    secrets.push(value(&bob.access_token().await.unwrap()));
    let pending = oidc
        .authorization_request(tokenkeeper::signin::AuthorizationRequest::new(
            "bob",
            "dev.tokenkeeper.demo:/oauth2redirect",
        ))
        .unwrap();
    secrets.push(pending.nonce().expect("openid implies a nonce").to_owned());
    seen.push(format!("{pending:?}"));
    for fault in [
        tokenkeeper_devserver::IdTokenFault::BadSignature,
        tokenkeeper_devserver::IdTokenFault::WrongNonce,
    ] {
        h.server.inject_id_token_fault(fault);
        errors.push(bob.refresh().await.unwrap_err());
    }
    // Back-channel logout: neither a refused nor an accepted logout token is printed.
    let receiver = oidc.backchannel_logout().unwrap();
    seen.push(format!("{receiver:?}"));
    for fault in [Some(tokenkeeper_devserver::LogoutTokenFault::BadSignature), None] {
        let token = h.server.logout_token("oidc-app", Some("bob"), None, fault);
        let body = format!("logout_token={token}");
        let outcome = receiver
            .handle(Some("application/x-www-form-urlencoded"), body.as_bytes())
            .await;
        if let Err(rejection) = &outcome.result {
            seen.push(rejection.to_string());
        }
        seen.push(format!("{outcome:?}"));
        // The signature part is what a leak would show (the claims are not secret).
        secrets.push(token.rsplit('.').next().unwrap_or_default().to_owned());
    }
    // The file store: its Debug and its errors name the directory, never a value.
    let dir = std::env::temp_dir().join(format!("tokenkeeper-leaks-{}", std::process::id()));
    let files = FileStore::new(&dir).unwrap();
    files
        .save(alice.store_key(), &SecretString::from(refresh_token.clone()))
        .unwrap();
    seen.push(format!("{files:?}"));
    let oversized = refresh_token.repeat(70_000 / refresh_token.len().max(1) + 1);
    for entry in std::fs::read_dir(&dir).unwrap() {
        std::fs::write(entry.unwrap().path(), &oversized).unwrap();
    }
    seen.push(files.load(alice.store_key()).unwrap_err().to_string());
    let _ = std::fs::remove_dir_all(&dir);

    alice.logout().await.unwrap();
    for record in h.server.stats().revocations {
        secrets.push(record.token);
    }
    dpop_session(&mut seen, &mut secrets, &mut errors).await;
    for error in &errors {
        seen.push(format!("{error} {error:?}"));
    }
    let changes = changes.0.lock().unwrap().clone();
    assert!(
        changes.len() >= 4,
        "issued, recovered, refreshed, logged out: {changes:?}"
    );
    seen.extend(changes);

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("token issued"), "logging was captured");
    seen.push(logs);
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        for text in &seen {
            assert!(!text.contains(secret.as_str()), "a secret leaked into: {text}");
        }
    }
}

/// A saved sign-in: the sealed value, a resumed pending sign-in and every refusal
/// carry neither its `state`, its `nonce` nor the sealing key kept in the store.
#[tokio::test]
async fn a_saved_sign_in_prints_no_secret() {
    let h = Harness::start().await;
    let store = Arc::new(MemoryStore::new());
    let client = AuthClient::builder(h.native_config())
        .store(store.clone())
        .build()
        .unwrap();
    let request = tokenkeeper::signin::AuthorizationRequest::new("alice", "dev.tokenkeeper.demo:/oauth2redirect");
    let pending = client.authorization_request(request.with_nonce()).unwrap();
    let saved = client.save_authorization(&pending).await.unwrap();
    let entry = store.keys().unwrap().unwrap();
    let entry = entry
        .iter()
        .find(|k| k.ends_with("#signin-key"))
        .expect("the key entry");
    let entry: serde_json::Value = serde_json::from_str(&stored_value(store.as_ref(), entry)).unwrap();
    let secrets = [
        pending.state().to_owned(),
        pending.nonce().unwrap().to_owned(),
        entry["key"].as_str().expect("the sealing key").to_owned(),
    ];
    let resumed = client.resume_authorization(&saved).await.unwrap();
    assert_eq!(resumed.state(), pending.state(), "the same sign-in");
    let mut seen = vec![saved.clone(), format!("{resumed:?} {pending:?} {client:?}")];
    let redirect = common::browser_login(pending.url(), "alice", ALICE_PASSWORD).await;
    client.complete_authorization(&resumed, &redirect).await.unwrap();
    let mut tampered = saved.clone();
    tampered.push('A');
    for bad in [saved.as_str(), tampered.as_str()] {
        let error = client.resume_authorization(bad).await.unwrap_err();
        seen.push(format!("{error} {error:?}"));
    }
    for secret in &secrets {
        for text in &seen {
            assert!(!text.contains(secret.as_str()), "a secret leaked into: {text}");
        }
    }
}

fn stored_value(store: &dyn TokenStore, key: &str) -> String {
    use tokenkeeper::ExposeSecret;
    store.load(key).unwrap().unwrap().expose_secret().to_owned()
}

/// A DPoP session, nonce rotations and refused proofs: the bound tokens, a proof, its
/// `jti` and a private key must not show anywhere either.
async fn dpop_session(seen: &mut Vec<String>, secrets: &mut Vec<String>, errors: &mut Vec<AuthError>) {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use base64::Engine as _;
    use tokenkeeper::{DpopMode, ExposeSecret, SoftwareDpopKey};
    use tokenkeeper_devserver::{DevServerConfig, DpopSpec};

    let mut h = Harness::with(DevServerConfig {
        dpop: DpopSpec {
            nonces: true,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let store = Arc::new(tokenkeeper::MemoryStore::new());
    let client = AuthClient::builder(h.config().dpop(DpopMode::Required))
        .store(store.clone())
        .build()
        .unwrap();
    let bob = client.login("bob", password("bob-password")).await.unwrap();
    secrets.push("bob-password".into());
    // The session's own private key, as the record keeps it (base64url PKCS#8).
    let record = store.load(bob.store_key()).unwrap().expect("a record");
    let record: serde_json::Value = serde_json::from_str(record.expose_secret()).unwrap();
    let stored_key = record["dpop_key"].as_str().expect("the key in the record").to_owned();
    let der = URL_SAFE_NO_PAD.decode(&stored_key).unwrap();
    secrets.extend([stored_key, STANDARD.encode(&der), format!("{der:?}")]);
    seen.push(format!("{bob:?}"));
    let bound = bob.access_token().await.unwrap();
    secrets.push(value(&bound));
    seen.push(format!("{bound:?}"));
    let url = h.server.resource_url("/me");
    let headers = bob.authorization_headers("GET", &url).await.unwrap();
    let proof = headers.dpop().expect("a proof").expose_secret().to_owned();
    let claims = proof.split('.').nth(1).expect("a JWT");
    let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
    secrets.push(claims["jti"].as_str().expect("a jti").to_owned());
    secrets.push(proof);
    seen.push(format!("{headers:?}"));
    h.server.rotate_dpop_nonce();
    assert_eq!(bob.send(client.http().get(&url)).await.unwrap().status(), 200);
    for _ in 0..2 {
        h.server.inject(
            Endpoint::Token,
            Fault::json(400, serde_json::json!({"error": "use_dpop_nonce"})).with_header("DPoP-Nonce", "n"),
        );
    }
    errors.push(bob.refresh().await.unwrap_err());
    let renewed = bob.refresh().await.unwrap();
    secrets.push(value(&renewed));
    let key = SoftwareDpopKey::generate().unwrap();
    seen.push(format!("{key:?}"));
    let der = key.pkcs8().expose_secret();
    secrets.extend([STANDARD.encode(der), URL_SAFE_NO_PAD.encode(der), format!("{der:?}")]);
    // An offline logout queues the revocations with the key, and logs that it did.
    h.server.stop().await;
    bob.logout().await.unwrap();
    seen.push(format!("{client:?} {bob:?}"));
}

/// What a transport's logging could print of the seam's types: the request without
/// its body or its URL's query, an error without the URL or the stack's text.
#[test]
fn the_transport_seam_prints_no_body_query_or_url() {
    use tokenkeeper::transport::{HttpMethod, HttpRequest, HttpResponse, TransportError, TransportErrorKind};
    let request = HttpRequest::new(
        HttpMethod::Get,
        "https://as.example/authorize?state=zz-state-5e1".parse().unwrap(),
    )
    .header("accept", "application/json");
    let response = HttpResponse::new(200, vec![], br#"{"access_token":"zz-token-9a1"}"#.to_vec());
    let io = std::io::Error::other("https://as.example/token?code=zz-code-77");
    let error = TransportError::new(TransportErrorKind::Connect).with_source(io);
    let printed = format!("{request:?} {response:?} {error}");
    for secret in ["zz-state-5e1", "zz-token-9a1", "zz-code-77"] {
        assert!(!printed.contains(secret), "{printed}");
    }
    assert!(printed.contains("could not connect"), "{printed}");
}

#[test]
fn a_shared_fleet_token_never_prints_its_secret() {
    let shared = tokenkeeper::SharedToken {
        access_token: tokenkeeper::SecretString::from("fleet-access-token-secret"),
        expires_at: std::time::SystemTime::now(),
        scope: Some("read".into()),
    };
    let printed = format!("{shared:?}");
    assert!(!printed.contains("fleet-access-token-secret"), "{printed}");
    assert!(printed.contains("[redacted]") && printed.contains("read"));
}
