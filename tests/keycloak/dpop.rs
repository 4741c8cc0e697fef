//! DPoP (RFC 9449, issue 20) against a real Keycloak: `tk-dpop`, a public client of
//! `realm.json` with `dpop.bound.access.tokens`, so Keycloak binds its access tokens
//! and (public client) its refresh tokens to the proof's key, and its userinfo
//! endpoint checks a proof on every call.
//!
//! Every request the SDK sends to the token endpoint goes through [`Recording`], so a
//! test can count requests (a restore that must send none) and see what Keycloak
//! answers in `DPoP-Nonce` (it never sent one here; README's DPoP section says so).

use super::{base64_url, clock, next_keycloak_second, quick_retries, userinfo_status, Keycloak, ALICE_PASSWORD};
use std::sync::{Arc, Mutex};
use tokenkeeper::transport::{HttpRequest, HttpTransport, ReqwestTransport, TransportFuture};
use tokenkeeper::{
    AuthClient, AuthConfig, AuthError, DpopMode, ExposeSecret, ManualClock, MemoryStore, SecretString, Session,
    TokenStore, TokenType,
};

const DPOP_CLIENT: &str = "tk-dpop";

/// What one request to Keycloak looked like, without any secret.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    carried_proof: bool,
    status: u16,
    nonce: Option<String>,
}

/// The default transport, recording each exchange.
#[derive(Debug)]
struct Recording {
    inner: ReqwestTransport,
    seen: Mutex<Vec<Seen>>,
}

impl HttpTransport for Recording {
    fn send(&self, request: HttpRequest) -> TransportFuture<'_> {
        Box::pin(async move {
            let path = request.url().path().to_owned();
            let carried_proof = request.headers().iter().any(|h| h.name().eq_ignore_ascii_case("dpop"));
            let response = self.inner.send(request).await?;
            self.seen.lock().unwrap().push(Seen {
                path,
                carried_proof,
                status: response.status(),
                nonce: response.header("dpop-nonce").map(str::to_owned),
            });
            Ok(response)
        })
    }
}

impl Recording {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: ReqwestTransport::new(reqwest::Client::new()),
            seen: Mutex::new(Vec::new()),
        })
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Keycloak {
    /// The DPoP client: public (no secret), DPoP required, manual clock. With `openid`
    /// Keycloak issues ID tokens, refused unless verifiable: hence the key set and issuer.
    fn dpop_config(&self, clock: Arc<ManualClock>) -> AuthConfig {
        AuthConfig::new(self.oidc("token"), DPOP_CLIENT)
            .revocation_endpoint(self.oidc("revoke"))
            .scopes(["openid"])
            .jwks_uri(self.oidc("certs"))
            .issuer(self.issuer(), false)
            .dpop(DpopMode::Required)
            .clock(clock)
            .retry_policy(quick_retries())
    }

    /// A DPoP client with offline start off: a restore refreshes, so Keycloak sees it.
    fn dpop_client(&self, transport: &Arc<Recording>, store: Option<Arc<dyn TokenStore>>) -> AuthClient {
        self.dpop_client_with(transport, store, false)
    }

    fn dpop_client_with(
        &self,
        transport: &Arc<Recording>,
        store: Option<Arc<dyn TokenStore>>,
        offline_start: bool,
    ) -> AuthClient {
        let mut builder =
            AuthClient::builder(self.dpop_config(clock()).offline_start(offline_start)).transport(transport.clone());
        if let Some(store) = store {
            builder = builder.store(store);
        }
        builder.build().unwrap()
    }
}

/// The `cnf.jkt` Keycloak wrote into an access token (a JWT).
fn bound_to(token: &str) -> Option<String> {
    let payload = base64_url(token.split('.').nth(1)?);
    payload["cnf"]["jkt"].as_str().map(str::to_owned)
}

async fn userinfo_with(kc: &Keycloak, authorization: &str, proof: Option<&str>) -> reqwest::Response {
    let mut request = kc.http.get(kc.userinfo()).header("Authorization", authorization);
    if let Some(proof) = proof {
        request = request.header("DPoP", proof);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn dpop_required_sign_in_refresh_and_userinfo_use_bound_tokens_keycloak_refuses_bearer_and_replays() {
    let Some(kc) = Keycloak::from_env("dpop_required_sign_in_refresh_and_userinfo") else {
        return;
    };
    let transport = Recording::new();
    let client = kc.dpop_client(&transport, None);
    let alice = client.login("alice", SecretString::from(ALICE_PASSWORD)).await.unwrap();
    let token = alice.access_token().await.unwrap();
    assert_eq!(token.token_type(), TokenType::Dpop, "Keycloak answered token_type DPoP");
    let jkt = alice.dpop_thumbprint().unwrap().expect("a DPoP session has a key");
    assert_eq!(
        bound_to(token.expose_secret()),
        Some(jkt.clone()),
        "cnf.jkt is the session's key"
    );
    assert_eq!(userinfo_status(&kc, &client, &alice).await.unwrap(), 200);

    next_keycloak_second().await;
    let refreshed = alice.refresh().await.unwrap();
    assert!(!refreshed.is_same_token(&token));
    assert_eq!(
        bound_to(refreshed.expose_secret()),
        Some(jkt),
        "the same key after the refresh"
    );
    assert_eq!(userinfo_status(&kc, &client, &alice).await.unwrap(), 200);

    // The token copy without the key: refused as a bearer token, and as a DPoP token
    // without a proof.
    let as_bearer = userinfo_with(&kc, &format!("Bearer {}", refreshed.expose_secret()), None).await;
    assert_eq!(as_bearer.status(), 401, "a DPoP-bound token sent as Bearer");
    let no_proof = userinfo_with(&kc, &format!("DPoP {}", refreshed.expose_secret()), None).await;
    assert_eq!(no_proof.status(), 401, "a DPoP token without a proof");

    // A proof is single use (its jti): the same header pair twice.
    let headers = alice.authorization_headers("GET", &kc.userinfo()).await.unwrap();
    let authorization = headers.authorization().expose_secret().to_owned();
    let proof = headers.dpop().expect("a proof").expose_secret().to_owned();
    let first = userinfo_with(&kc, &authorization, Some(&proof)).await;
    assert_eq!(first.status(), 200);
    let nonce_at_userinfo = first.headers().get("dpop-nonce").cloned();
    let replayed = userinfo_with(&kc, &authorization, Some(&proof)).await;
    assert_eq!(replayed.status(), 401, "a replayed proof");
    let challenge = replayed.headers().get("www-authenticate").cloned();
    eprintln!("Keycloak's answer to a replayed proof: 401, WWW-Authenticate {challenge:?}");

    // What Keycloak does with nonces: it never asks for one (no `DPoP-Nonce` on any
    // token or userinfo response, no `use_dpop_nonce`), so every proof went without.
    // (The ID tokens' key set is fetched too: a plain GET, no proof, RFC 9449 §4.)
    let seen = transport.seen();
    let token_requests: Vec<_> = seen.iter().filter(|s| s.path.ends_with("/token")).collect();
    assert!(token_requests.len() >= 2, "{seen:?}");
    assert!(
        token_requests.iter().all(|s| s.carried_proof && s.status == 200),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .all(|s| s.path.ends_with("/token") || s.path.ends_with("/certs")),
        "{seen:?}"
    );
    assert!(
        seen.iter().all(|s| s.nonce.is_none()),
        "Keycloak sent a DPoP-Nonce: {seen:?}"
    );
    assert!(nonce_at_userinfo.is_none(), "{nonce_at_userinfo:?}");
}

/// Alice signed in with DPoP into `store`, then the app quits: her store key.
async fn signed_in_then_quit(kc: &Keycloak, store: &Arc<dyn TokenStore>, username: &str, password: &str) -> String {
    // Offline start on: the record keeps the access token too.
    let client = kc.dpop_client_with(&Recording::new(), Some(store.clone()), true);
    let session = client.login(username, SecretString::from(password)).await.unwrap();
    session.store_key().to_owned()
}

#[tokio::test]
async fn dpop_restore_refreshes_with_the_stored_key_and_a_deleted_key_needs_the_user_without_a_request() {
    let Some(kc) = Keycloak::from_env("dpop_restore_with_the_key_found_and_deleted") else {
        return;
    };
    let (username, id) = kc.create_user("dpop-restore", "dpop-restore-password").await;
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let key = signed_in_then_quit(&kc, &store, &username, "dpop-restore-password").await;
    next_keycloak_second().await;

    // Offline start (the default): the stored bound access token is served as it is,
    // and goes out as `DPoP` with a proof of the stored key (it once went as `Bearer`).
    let transport = Recording::new();
    let offline = kc.dpop_client_with(&transport, Some(store.clone()), true);
    let served = offline.restore(&username).await.unwrap();
    assert_eq!(served.access_token().await.unwrap().token_type(), TokenType::Dpop);
    assert_eq!(userinfo_status(&kc, &offline, &served).await.unwrap(), 200);
    assert!(transport.seen().is_empty(), "no token request: {:?}", transport.seen());
    assert_eq!(kc.events(&id, "REFRESH_TOKEN").await, 0);
    drop((served, offline));

    // Key found: the restore's refresh presents the bound refresh token with a proof
    // of the restored key, which Keycloak checks against the token's binding.
    let transport = Recording::new();
    let restarted = kc.dpop_client(&transport, Some(store.clone()));
    let restored: Arc<Session> = restarted.restore(&username).await.unwrap();
    let jkt = restored.dpop_thumbprint().unwrap().expect("the key from the record");
    let token = restored.access_token().await.unwrap();
    assert_eq!(bound_to(token.expose_secret()), Some(jkt));
    assert_eq!(userinfo_status(&kc, &restarted, &restored).await.unwrap(), 200);
    assert_eq!(kc.events(&id, "REFRESH_TOKEN").await, 1, "the restore refreshed once");
    assert_eq!(kc.events(&id, "REFRESH_TOKEN_ERROR").await, 0);
    assert_eq!(kc.events(&id, "LOGIN").await, 1);
    assert!(transport
        .seen()
        .iter()
        .filter(|s| s.path.ends_with("/token"))
        .all(|s| s.carried_proof));

    // Key deleted (the record kept its tokens and its jkt): the next start needs the
    // user, once, with a reason, and sends nothing to Keycloak.
    let raw = store.load(&key).unwrap().expect("the session's record");
    let mut record: serde_json::Value = serde_json::from_str(raw.expose_secret()).unwrap();
    assert!(record["dpop_key"].is_string(), "the software key lives in the record");
    let refresh_token = record["refresh_token"].as_str().unwrap().to_owned();
    record.as_object_mut().unwrap().remove("dpop_key");
    store.save(&key, &SecretString::from(record.to_string())).unwrap();
    let transport = Recording::new();
    let after_deletion = kc.dpop_client(&transport, Some(store.clone()));
    let error = after_deletion.restore(&username).await.unwrap_err();
    assert!(
        matches!(&error, AuthError::ReauthenticationRequired { reason } if reason.contains("missing")),
        "{error}"
    );
    assert!(
        after_deletion.restore(&username).await.is_err(),
        "nothing left to restore"
    );
    assert!(transport.seen().is_empty(), "no request: {:?}", transport.seen());
    assert_eq!(kc.events(&id, "REFRESH_TOKEN").await, 1);
    assert_eq!(
        kc.events(&id, "REFRESH_TOKEN_ERROR").await,
        0,
        "no refresh with a wrong key"
    );

    // Why: Keycloak binds a public client's refresh token to the key. The same refresh
    // token with a proof of another session's key is refused.
    let other = kc.dpop_client(&Recording::new(), None);
    let other = other
        .login(&username, SecretString::from("dpop-restore-password"))
        .await
        .unwrap();
    let headers = other.authorization_headers("POST", &kc.oidc("token")).await.unwrap();
    let refused = kc
        .http
        .post(kc.oidc("token"))
        .header("DPoP", headers.dpop().unwrap().expose_secret())
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", DPOP_CLIENT),
            ("refresh_token", refresh_token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400, "a bound refresh token with another key's proof");
    let body: serde_json::Value = serde_json::from_slice(&refused.bytes().await.unwrap()).unwrap();
    eprintln!(
        "Keycloak's answer to a refresh with another key: 400 {} ({})",
        body["error"], body["error_description"]
    );
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn dpop_with_a_platform_key_store_keeps_the_key_out_of_the_record_and_a_deleted_key_needs_the_user() {
    let Some(kc) = Keycloak::from_env("dpop_platform_key_store") else {
        return;
    };
    let (username, id) = kc.create_user("dpop-platform", "dpop-platform-password").await;
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let keys = Arc::new(super::dpop_keys::PlatformKeys::default());
    let client_on = |transport: &Arc<Recording>| {
        AuthClient::builder(
            kc.dpop_config(clock())
                .offline_start(false)
                .dpop_key_store(keys.clone()),
        )
        .transport(transport.clone())
        .store(store.clone())
        .build()
        .unwrap()
    };
    let client = client_on(&Recording::new());
    let session = client
        .login(&username, SecretString::from("dpop-platform-password"))
        .await
        .unwrap();
    let key = session.store_key().to_owned();
    let jkt = session.dpop_thumbprint().unwrap().expect("a DPoP session");
    let raw = store.load(&key).unwrap().expect("the session's record");
    let record: serde_json::Value = serde_json::from_str(raw.expose_secret()).unwrap();
    let alias = record["dpop_key_alias"].as_str().expect("the key's alias").to_owned();
    assert!(record.get("dpop_key").is_none(), "no private key in the record");
    assert_eq!(keys.thumbprint(&alias), Some(jkt.clone()));
    drop((session, client));
    next_keycloak_second().await;

    // Restart, key found: Keycloak accepts the bound refresh token with its proof.
    let transport = Recording::new();
    let restarted = client_on(&transport);
    let restored = restarted.restore(&username).await.unwrap();
    let token = restored.access_token().await.unwrap();
    assert_eq!(bound_to(token.expose_secret()), Some(jkt));
    assert_eq!(userinfo_status(&kc, &restarted, &restored).await.unwrap(), 200);
    assert_eq!(kc.events(&id, "REFRESH_TOKEN").await, 1);
    assert_eq!(kc.events(&id, "REFRESH_TOKEN_ERROR").await, 0);
    drop((restored, restarted));

    // The key is deleted behind the SDK's back (a reinstall): the user, once, and no
    // request to Keycloak.
    keys.remove(&alias);
    let transport = Recording::new();
    let after_deletion = client_on(&transport);
    let error = after_deletion.restore(&username).await.unwrap_err();
    assert!(
        matches!(&error, AuthError::ReauthenticationRequired { reason } if reason.contains("gone")),
        "{error}"
    );
    assert!(transport.seen().is_empty(), "no request: {:?}", transport.seen());
    assert_eq!(kc.events(&id, "REFRESH_TOKEN_ERROR").await, 0);

    // A new sign-in makes a new key; its logout revokes at Keycloak, then deletes it.
    let again = after_deletion
        .login(&username, SecretString::from("dpop-platform-password"))
        .await
        .unwrap();
    assert_eq!(keys.aliases().len(), 1);
    again.logout().await.unwrap();
    assert!(keys.aliases().is_empty(), "the key went with the session");
    assert!(store.load(&key).unwrap().is_none());
}
