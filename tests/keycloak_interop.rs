//! Interop against a real Keycloak (issue 13): its error bodies, rotation and reuse
//! detection, RFC 7009 revocation and admin logout, with its userinfo endpoint as the
//! protected resource so 401s and `WWW-Authenticate` are Keycloak's own.
//!
//! `scripts/keycloak.sh run-tests` starts Keycloak with `tests/keycloak/realm.json` and
//! sets the environment; without `TOKENKEEPER_KEYCLOAK_URL` every test says why it is
//! skipped and returns. Tests that change a user (admin logout, new password, disabled)
//! create their own user, so the tests can run in parallel against one server. The DPoP
//! tests are in `keycloak/dpop.rs`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokenkeeper::{
    AuthClient, AuthConfig, AuthError, AuthEvent, AuthEventListener, ClientAuthMethod, Clock, ExposeSecret,
    ManualClock, MemoryStore, RetryPolicy, SecretString, Session, StoreError, TokenParams, TokenStore,
};

/// DPoP-bound tokens from a client that requires them (issue 20).
#[path = "keycloak/dpop.rs"]
mod dpop;
#[path = "common/dpop_keys.rs"]
mod dpop_keys;

const SERVICE_CLIENT: &str = "tk-service";
const SERVICE_SECRET: &str = "tk-service-secret";
const APP_CLIENT: &str = "tk-app";
const APP_SECRET: &str = "tk-app-secret";
const ALICE_PASSWORD: &str = "alice-password";

/// The running Keycloak, from the environment `scripts/keycloak.sh` writes.
struct Keycloak {
    base: String,
    realm: String,
    admin_user: String,
    admin_password: String,
    http: reqwest::Client,
}

impl Keycloak {
    /// `None` (after printing why) when no Keycloak was started for this run.
    fn from_env(test: &str) -> Option<Self> {
        let Ok(base) = std::env::var("TOKENKEEPER_KEYCLOAK_URL") else {
            eprintln!("skipping {test}: TOKENKEEPER_KEYCLOAK_URL is not set (run scripts/keycloak.sh run-tests)");
            return None;
        };
        let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
        Some(Self {
            base: base.trim_end_matches('/').to_owned(),
            realm: var("TOKENKEEPER_KEYCLOAK_REALM", "tokenkeeper"),
            admin_user: var("TOKENKEEPER_KEYCLOAK_ADMIN_USER", "admin"),
            admin_password: var("TOKENKEEPER_KEYCLOAK_ADMIN_PASSWORD", "admin"),
            http: reqwest::Client::new(),
        })
    }

    fn oidc(&self, endpoint: &str) -> String {
        format!("{}/realms/{}/protocol/openid-connect/{endpoint}", self.base, self.realm)
    }

    fn userinfo(&self) -> String {
        self.oidc("userinfo")
    }

    /// A client of `client_id`: manual clock, quick retries, revocation configured.
    fn config(&self, client_id: &str, secret: &str, clock: Arc<ManualClock>) -> AuthConfig {
        AuthConfig::new(self.oidc("token"), client_id)
            .client_secret(SecretString::from(secret))
            .revocation_endpoint(self.oidc("revoke"))
            .clock(clock)
            .retry_policy(quick_retries())
    }

    /// The password client; `openid` is requested because Keycloak's userinfo
    /// answers 403 `insufficient_scope` ("Missing openid scope") without it. With
    /// `openid` Keycloak issues ID tokens, which tokenkeeper refuses unless it can
    /// verify them: hence the realm's key set and issuer.
    fn app_config(&self, clock: Arc<ManualClock>) -> AuthConfig {
        self.config(APP_CLIENT, APP_SECRET, clock)
            .scopes(["openid"])
            .jwks_uri(self.oidc("certs"))
            .issuer(self.issuer(), false)
    }

    /// The realm's issuer identifier (the `iss` of its ID tokens).
    fn issuer(&self) -> String {
        format!("{}/realms/{}", self.base, self.realm)
    }

    /// RFC 7662 introspection by the app client: is `token` still active?
    async fn is_active(&self, token: &str, hint: &str) -> bool {
        let response = self
            .http
            .post(self.oidc("token/introspect"))
            .basic_auth(APP_CLIENT, Some(APP_SECRET))
            .form(&[("token", token), ("token_type_hint", hint)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "introspection failed");
        let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        body["active"].as_bool().unwrap()
    }
}

/// A small client of Keycloak's admin REST API (the "other device" and the auditor).
mod admin {
    use super::Keycloak;
    use serde_json::{json, Value};

    static NEXT_USER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

    impl Keycloak {
        /// A fresh admin token (master realm, `admin-cli`); admin tokens live 60 s.
        async fn admin_token(&self) -> String {
            let response = self
                .http
                .post(format!("{}/realms/master/protocol/openid-connect/token", self.base))
                .form(&[
                    ("grant_type", "password"),
                    ("client_id", "admin-cli"),
                    ("username", self.admin_user.as_str()),
                    ("password", self.admin_password.as_str()),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "admin login failed");
            let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
            body["access_token"].as_str().unwrap().to_owned()
        }

        async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> reqwest::Response {
            let url = format!("{}/admin/realms/{}{path}", self.base, self.realm);
            let mut request = self.http.request(method, url).bearer_auth(self.admin_token().await);
            if let Some(body) = body {
                request = request
                    .header("content-type", "application/json")
                    .body(body.to_string());
            }
            let response = request.send().await.unwrap();
            assert!(
                response.status().is_success(),
                "admin API: {path} answered {}",
                response.status()
            );
            response
        }

        /// Creates a user of its own for one test; returns (username, user id).
        pub(super) async fn create_user(&self, prefix: &str, password: &str) -> (String, String) {
            let n = NEXT_USER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let username = format!("{prefix}-{}-{n}", std::process::id());
            let user = json!({
                "username": username,
                "enabled": true,
                "email": format!("{username}@example.test"),
                "emailVerified": true,
                "firstName": "Interop",
                "lastName": prefix,
                "credentials": [{"type": "password", "value": password, "temporary": false}],
            });
            let response = self.admin(reqwest::Method::POST, "/users", Some(user)).await;
            let location = response.headers()["location"].to_str().unwrap().to_owned();
            let id = location.rsplit('/').next().unwrap().to_owned();
            (username, id)
        }

        /// Adds a generated RSA signing key with a higher priority than the realm's:
        /// from now on Keycloak signs with it (a realm key rotation).
        pub(super) async fn rotate_realm_key(&self) {
            let realm = self.admin(reqwest::Method::GET, "", None).await;
            let realm: Value = serde_json::from_slice(&realm.bytes().await.unwrap()).unwrap();
            let component = json!({
                "name": format!("rotated-{}", std::process::id()),
                "providerId": "rsa-generated",
                "providerType": "org.keycloak.keys.KeyProvider",
                "parentId": realm["id"],
                "config": {"priority": ["1000"], "active": ["true"], "enabled": ["true"]},
            });
            self.admin(reqwest::Method::POST, "/components", Some(component)).await;
        }

        /// How many sessions Keycloak holds for the user.
        pub(super) async fn session_count(&self, id: &str) -> usize {
            let response = self
                .admin(reqwest::Method::GET, &format!("/users/{id}/sessions"), None)
                .await;
            let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
            body.as_array().map_or(0, Vec::len)
        }

        /// Points `client_id`'s `backchannel.logout.url` at `url`.
        pub(super) async fn set_backchannel_logout_url(&self, client_id: &str, url: &str) {
            let found = self
                .admin(reqwest::Method::GET, &format!("/clients?clientId={client_id}"), None)
                .await;
            let clients: Value = serde_json::from_slice(&found.bytes().await.unwrap()).unwrap();
            let mut client = clients[0].clone();
            let id = client["id"].as_str().unwrap().to_owned();
            client["attributes"]["backchannel.logout.url"] = json!(url);
            self.admin(reqwest::Method::PUT, &format!("/clients/{id}"), Some(client))
                .await;
        }

        /// Ends every session of the user, as "sign out everywhere" on another device.
        pub(super) async fn logout_user(&self, id: &str) {
            self.admin(reqwest::Method::POST, &format!("/users/{id}/logout"), None)
                .await;
        }

        pub(super) async fn reset_password(&self, id: &str, password: &str) {
            let credential = json!({"type": "password", "value": password, "temporary": false});
            self.admin(
                reqwest::Method::PUT,
                &format!("/users/{id}/reset-password"),
                Some(credential),
            )
            .await;
        }

        pub(super) async fn set_enabled(&self, id: &str, enabled: bool) {
            self.admin(
                reqwest::Method::PUT,
                &format!("/users/{id}"),
                Some(json!({"enabled": enabled})),
            )
            .await;
        }

        /// How many login events of `kind` (`LOGIN`, `LOGIN_ERROR`, `REFRESH_TOKEN`,
        /// `REFRESH_TOKEN_ERROR`, …) Keycloak recorded for the user. A refresh error
        /// names the user only in `details.refresh_token_sub`, not in `userId`, so the
        /// events are filtered here rather than with the API's `user` parameter.
        pub(super) async fn events(&self, user_id: &str, kind: &str) -> usize {
            let path = format!("/events?type={kind}&max=10000");
            let response = self.admin(reqwest::Method::GET, &path, None).await;
            let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
            body.as_array()
                .unwrap()
                .iter()
                .filter(|e| e["userId"] == user_id || e["details"]["refresh_token_sub"] == user_id)
                .count()
        }
    }
}

#[derive(Default)]
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

/// Remembers every refresh token the SDK saves, so a test can ask Keycloak about them.
#[derive(Default)]
struct RecordingStore {
    saved: Mutex<Vec<String>>,
    removed: AtomicU32,
}

impl TokenStore for RecordingStore {
    fn load(&self, _key: &str) -> Result<Option<SecretString>, StoreError> {
        Ok(self
            .saved
            .lock()
            .unwrap()
            .last()
            .map(|t| SecretString::from(t.as_str())))
    }

    fn save(&self, _key: &str, refresh_token: &SecretString) -> Result<(), StoreError> {
        self.saved
            .lock()
            .unwrap()
            .push(refresh_token.expose_secret().to_owned());
        Ok(())
    }

    fn remove(&self, key: &str) -> Result<(), StoreError> {
        // Logout also clears the pre-record key format; only the session's own key counts.
        if !key.starts_with("tokenkeeper/v1/") {
            self.removed.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

impl RecordingStore {
    /// The session records saved, in order.
    fn records(&self) -> Vec<serde_json::Value> {
        self.saved
            .lock()
            .unwrap()
            .iter()
            .map(|raw| serde_json::from_str(raw).expect("a JSON session record"))
            .collect()
    }

    /// The refresh tokens saved, in order, read out of the stored session records.
    fn saved(&self) -> Vec<String> {
        self.records()
            .iter()
            .map(|record| record["refresh_token"].as_str().expect("a refresh token").to_owned())
            .collect()
    }
}

async fn userinfo_status(kc: &Keycloak, client: &AuthClient, session: &Session) -> Result<u16, AuthError> {
    Ok(session.send(client.http().get(kc.userinfo())).await?.status().as_u16())
}

/// Keycloak's reuse detection compares a refresh token's `iat` with the session's
/// last refresh in whole seconds, so an old token presented within the second it was
/// replaced passes. Rotation tests wait that one second (a real, bounded wait: it is
/// Keycloak's clock, not ours, that must move).
async fn next_keycloak_second() {
    tokio::time::sleep(Duration::from_millis(1100)).await;
}

/// Two attempts, short backoff: Keycloak on loopback either answers or is broken.
fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 2,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
        deadline: Duration::from_secs(10),
    }
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::starting_now())
}

#[tokio::test]
async fn client_credentials_with_basic_and_post_authentication() {
    let Some(kc) = Keycloak::from_env("client_credentials_with_basic_and_post_authentication") else {
        return;
    };
    for method in [ClientAuthMethod::Basic, ClientAuthMethod::Post] {
        let config = kc
            .config(SERVICE_CLIENT, SERVICE_SECRET, clock())
            .client_auth_method(method);
        let client = AuthClient::new(config).unwrap();
        let session = client.client_credentials_session();
        let first = session.access_token().await.unwrap();
        let second = session.access_token().await.unwrap();
        assert!(first.is_same_token(&second), "{method:?}: the cached token is reused");
        assert!(
            kc.is_active(first.expose_secret(), "access_token").await,
            "{method:?}: Keycloak issued an active token"
        );
    }
}

#[tokio::test]
async fn password_login_reaches_userinfo() {
    let Some(kc) = Keycloak::from_env("password_login_reaches_userinfo") else {
        return;
    };
    let client = AuthClient::new(kc.app_config(clock())).unwrap();
    let alice = client.login("alice", SecretString::from(ALICE_PASSWORD)).await.unwrap();
    let response = alice.send(client.http().get(kc.userinfo())).await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["preferred_username"], "alice");

    let wrong = client
        .login("bob", SecretString::from("not-bobs-password"))
        .await
        .unwrap_err();
    assert!(matches!(wrong, AuthError::InvalidGrant(_)), "{wrong:?}");
}

#[tokio::test]
async fn keycloaks_id_token_is_validated_across_a_realm_key_rotation_and_rp_logout_ends_its_session() {
    let Some(kc) = Keycloak::from_env(
        "keycloaks_id_token_is_validated_across_a_realm_key_rotation_and_rp_logout_ends_its_session",
    ) else {
        return;
    };
    let (username, id) = kc.create_user("oidc", "oidc-password").await;
    let issuer = kc.issuer();
    let config = AuthConfig::discover(&issuer, APP_CLIENT)
        .await
        .expect("Keycloak's OpenID Connect discovery")
        .client_secret(SecretString::from(APP_SECRET))
        .scopes(["openid", "email", "profile"])
        .clock(clock());
    let client = AuthClient::new(config).unwrap();
    let session = client
        .login(&username, SecretString::from("oidc-password"))
        .await
        .unwrap();
    let claims = session.id_token_claims().expect("Keycloak's ID token, validated");
    assert_eq!(claims.issuer, issuer);
    assert_eq!(claims.preferred_username.as_deref(), Some(username.as_str()));
    assert_eq!(claims.subject, id, "Keycloak's sub is the user id");
    assert_eq!(
        claims.email.as_deref(),
        Some(format!("{username}@example.test").as_str())
    );
    session
        .refresh()
        .await
        .expect("the refreshed ID token keeps iss and sub");
    // A realm key rotation: the next refresh's ID token names a kid the cached key set
    // lacks, which is fetched (once) and verifies it.
    let kid = |session: &Session| {
        let end = session.end_session_request(None).unwrap();
        let url = reqwest::Url::parse(end.url()).unwrap();
        let hint = url
            .query_pairs()
            .find(|(k, _)| k == "id_token_hint")
            .unwrap()
            .1
            .into_owned();
        let header = base64_url(hint.split('.').next().unwrap());
        header["kid"].as_str().unwrap().to_owned()
    };
    let before = kid(&session);
    kc.rotate_realm_key().await;
    session
        .refresh()
        .await
        .expect("the ID token signed with the new realm key verifies");
    assert_ne!(kid(&session), before, "Keycloak signs with the rotated key");
    assert_eq!(session.id_token_claims().unwrap().subject, id);
    let info = session.userinfo().await.expect("UserInfo with the session's token");
    assert_eq!(info.subject, id);
    assert_eq!(kc.session_count(&id).await, 1);
    // RP-initiated logout: the browser opens the URL; Keycloak ends the session.
    let end = session.end_session_request(None).unwrap();
    session.logout().await.unwrap();
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = browser.get(end.url()).send().await.unwrap();
    assert!(
        page.status().is_success() || page.status().is_redirection(),
        "{}",
        page.status()
    );
    assert_eq!(kc.session_count(&id).await, 0, "the Keycloak session is gone");
}

/// A base64url JSON part of a JWT.
fn base64_url(part: &str) -> serde_json::Value {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn proactive_refresh_before_the_short_lifetime_ends() {
    let Some(kc) = Keycloak::from_env("proactive_refresh_before_the_short_lifetime_ends") else {
        return;
    };
    let (username, id) = kc.create_user("proactive", "proactive-password").await;
    let clock = clock();
    let events = Arc::new(Recorder::default());
    let client = AuthClient::builder(kc.app_config(clock.clone()))
        .event_listener(events.clone())
        .build()
        .unwrap();
    let session = client
        .login(&username, SecretString::from("proactive-password"))
        .await
        .unwrap();
    let first = session.access_token().await.unwrap();
    let lifetime = first.expires_at().remaining_from(clock.now());
    assert!(
        lifetime <= Duration::from_secs(60),
        "the realm's 60 s lifespan: {lifetime:?}"
    );

    // Only our clock moves: past the margin (half the lifetime), before expiry.
    clock.advance(lifetime - Duration::from_secs(10));
    let served = session.access_token().await.unwrap();
    assert!(served.is_same_token(&first), "the still-valid token is served at once");
    session.wait_for_refresh().await;
    let refreshed = session.cached_access_token().expect("a fresh token after the refresh");
    assert!(!refreshed.is_same_token(&first));
    assert_eq!(events.count(|e| matches!(e, AuthEvent::TokenRefreshed { .. })), 1);
    assert_eq!(kc.events(&id, "REFRESH_TOKEN").await, 1);
    assert_eq!(kc.events(&id, "LOGIN").await, 1, "no second password login");
    assert_eq!(userinfo_status(&kc, &client, &session).await.unwrap(), 200);
}

#[tokio::test]
async fn rotation_the_old_refresh_token_is_dead_and_never_presented() {
    let Some(kc) = Keycloak::from_env("rotation_the_old_refresh_token_is_dead_and_never_presented") else {
        return;
    };
    let (username, id) = kc.create_user("rotation", "rotation-password").await;
    let store = Arc::new(RecordingStore::default());
    let client = AuthClient::builder(kc.app_config(clock()))
        .store(store.clone())
        .build()
        .unwrap();
    let session = client
        .login(&username, SecretString::from("rotation-password"))
        .await
        .unwrap();
    next_keycloak_second().await;
    session.refresh().await.unwrap();
    let saved = store.saved();
    assert_eq!(saved.len(), 2, "the login's and the rotated refresh token were saved");
    assert_ne!(saved[0], saved[1], "Keycloak rotated the refresh token");
    assert!(
        !kc.is_active(&saved[0], "refresh_token").await,
        "the old one is rejected"
    );
    assert!(kc.is_active(&saved[1], "refresh_token").await);
    // Keycloak announces the refresh token's life (`refresh_expires_in`, the realm's SSO
    // idle timeout): it is stored, so a restore after it needs no token request.
    for record in store.records() {
        let saved_at = record["saved_at"].as_u64().unwrap();
        let expires_at = record["refresh_expires_at"]
            .as_u64()
            .expect("refresh_expires_at recorded");
        // The message leaves the record out: it holds the refresh token.
        assert!(
            expires_at > saved_at && expires_at - saved_at <= 24 * 3600,
            "saved at {saved_at}, refresh expiry {expires_at}"
        );
    }

    // Reuse detection (refreshTokenMaxReuse=0) would end the whole session if the old
    // token were presented: a further refresh and a userinfo call prove it never was.
    next_keycloak_second().await;
    session.refresh().await.unwrap();
    assert_eq!(userinfo_status(&kc, &client, &session).await.unwrap(), 200);
    assert_eq!(kc.events(&id, "REFRESH_TOKEN").await, 2);
    assert_eq!(kc.events(&id, "REFRESH_TOKEN_ERROR").await, 0);
    assert_eq!(kc.events(&id, "LOGIN").await, 1, "no fallback to the password");
    assert_eq!(store.saved().len(), 3);

    // Last, since reuse detection ends the session: Keycloak itself refuses the old token.
    let reused = kc
        .http
        .post(kc.oidc("token"))
        .basic_auth(APP_CLIENT, Some(APP_SECRET))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", saved[0].as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(reused.status(), 400);
    let body: serde_json::Value = serde_json::from_slice(&reused.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"], "invalid_grant");
    // …and ends the session, the newest refresh token included: had our session ever
    // presented an old token, it would have died the same way.
    let newest = store.saved().pop().unwrap();
    assert!(!kc.is_active(&newest, "refresh_token").await);
}

#[tokio::test]
async fn a_restart_restores_without_the_password_and_a_server_side_logout_needs_the_user() {
    let Some(kc) =
        Keycloak::from_env("a_restart_restores_without_the_password_and_a_server_side_logout_needs_the_user")
    else {
        return;
    };
    let (username, id) = kc.create_user("restore", "restore-password").await;
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    // The refresh a restart makes: with offline start (the default) the restore would
    // serve the stored access token instead, and the logout below would show at the
    // first 401 (tests/offline.rs covers that path against the development server).
    let app = || {
        AuthClient::builder(kc.app_config(clock()).offline_start(false))
            .store(Arc::clone(&store))
            .build()
            .unwrap()
    };
    let key = {
        let first = app();
        let session = first
            .login(&username, SecretString::from("restore-password"))
            .await
            .unwrap();
        session.store_key().to_owned()
    };

    // An app restart: a new client over the same store, no password anywhere.
    let restarted = app();
    let restored = restarted.restore(&username).await.unwrap();
    assert_eq!(userinfo_status(&kc, &restarted, &restored).await.unwrap(), 200);
    assert_eq!(kc.events(&id, "LOGIN").await, 1, "no password after the restart");
    assert_eq!(kc.events(&id, "REFRESH_TOKEN").await, 1, "one refresh");

    // Signed out on the server (another device, an admin): the stored refresh token is
    // dead. The next restart finds out with one refused refresh, forgets the entry and
    // asks for the user; it never loops or sends a password it does not have.
    kc.logout_user(&id).await;
    let after_logout = app();
    let outcome = match after_logout.restore(&username).await {
        Ok(session) => session.access_token().await.map(|_| ()),
        Err(error) => Err(error),
    };
    assert!(
        matches!(outcome, Err(AuthError::ReauthenticationRequired { .. })),
        "{outcome:?}"
    );
    assert!(store.load(&key).unwrap().is_none(), "the dead entry is removed");
    assert_eq!(kc.events(&id, "LOGIN").await, 1);
    let again = app().restore(&username).await.unwrap_err();
    assert!(matches!(again, AuthError::ReauthenticationRequired { .. }), "{again:?}");
    assert!(
        kc.events(&id, "REFRESH_TOKEN_ERROR").await <= 1,
        "at most one refused refresh"
    );
}

#[tokio::test]
async fn logout_revokes_the_refresh_token() {
    let Some(kc) = Keycloak::from_env("logout_revokes_the_refresh_token") else {
        return;
    };
    let (username, _) = kc.create_user("logout", "logout-password").await;
    let store = Arc::new(RecordingStore::default());
    let client = AuthClient::builder(kc.app_config(clock()))
        .store(store.clone())
        .build()
        .unwrap();
    let session = client
        .login(&username, SecretString::from("logout-password"))
        .await
        .unwrap();
    let access = session.access_token().await.unwrap();
    let refresh = store.saved().pop().unwrap();
    assert!(kc.is_active(&refresh, "refresh_token").await);

    session.logout().await.unwrap();

    assert!(!kc.is_active(&refresh, "refresh_token").await, "RFC 7009: revoked");
    assert!(!kc.is_active(access.expose_secret(), "access_token").await);
    assert_eq!(store.removed.load(Ordering::Relaxed), 1);
    assert!(client.session(&username).is_none());
}

#[tokio::test]
async fn admin_ends_the_sessions_and_the_next_request_recovers_once() {
    let Some(kc) = Keycloak::from_env("admin_ends_the_sessions_and_the_next_request_recovers_once") else {
        return;
    };
    let (username, id) = kc.create_user("other-device", "other-device-password").await;
    let events = Arc::new(Recorder::default());
    let client = AuthClient::builder(kc.app_config(clock()))
        .event_listener(events.clone())
        .build()
        .unwrap();
    let session = client
        .login(&username, SecretString::from("other-device-password"))
        .await
        .unwrap();
    assert_eq!(userinfo_status(&kc, &client, &session).await.unwrap(), 200);

    kc.logout_user(&id).await;

    // Keycloak answers 401 `invalid_token` ("user_session_not_found"); the refresh
    // token is dead too, so the password in memory gets the new token.
    assert_eq!(userinfo_status(&kc, &client, &session).await.unwrap(), 200);
    assert_eq!(userinfo_status(&kc, &client, &session).await.unwrap(), 200);
    assert_eq!(events.count(|e| matches!(e, AuthEvent::RevocationDetected { .. })), 1);
    assert_eq!(events.count(|e| matches!(e, AuthEvent::Reauthenticated { .. })), 1);
    assert_eq!(kc.events(&id, "REFRESH_TOKEN_ERROR").await, 1, "one refresh attempt");
    assert_eq!(kc.events(&id, "LOGIN").await, 2, "the login and one silent re-login");
    assert_eq!(kc.events(&id, "LOGIN_ERROR").await, 0);
}

#[tokio::test]
async fn a_changed_password_needs_the_user_after_exactly_one_attempt() {
    let Some(kc) = Keycloak::from_env("a_changed_password_needs_the_user_after_exactly_one_attempt") else {
        return;
    };
    let (username, id) = kc.create_user("new-password", "old-password").await;
    let client = AuthClient::new(kc.app_config(clock())).unwrap();
    let session = client
        .login(&username, SecretString::from("old-password"))
        .await
        .unwrap();

    kc.reset_password(&id, "changed-by-the-admin").await;
    kc.logout_user(&id).await;

    let error = userinfo_status(&kc, &client, &session).await.unwrap_err();
    assert!(matches!(error, AuthError::ReauthenticationRequired { .. }), "{error:?}");
    assert_eq!(kc.events(&id, "LOGIN_ERROR").await, 1, "exactly one password attempt");

    // Rejected credentials are never sent again: no lockout from our retries.
    for _ in 0..3 {
        let error = userinfo_status(&kc, &client, &session).await.unwrap_err();
        assert!(matches!(error, AuthError::ReauthenticationRequired { .. }), "{error:?}");
    }
    assert_eq!(kc.events(&id, "LOGIN_ERROR").await, 1, "no further password attempts");
}

#[tokio::test]
async fn a_wrong_client_secret_is_invalid_client() {
    let Some(kc) = Keycloak::from_env("a_wrong_client_secret_is_invalid_client") else {
        return;
    };
    for method in [ClientAuthMethod::Basic, ClientAuthMethod::Post] {
        let config = kc
            .config(SERVICE_CLIENT, "not-the-secret", clock())
            .client_auth_method(method);
        let client = AuthClient::new(config).unwrap();
        let error = client.client_credentials_session().access_token().await.unwrap_err();
        assert!(matches!(error, AuthError::InvalidClient(_)), "{method:?}: {error:?}");
        assert!(!error.to_string().contains("not-the-secret"));
    }
}

#[tokio::test]
async fn an_unknown_scope_is_invalid_scope() {
    let Some(kc) = Keycloak::from_env("an_unknown_scope_is_invalid_scope") else {
        return;
    };
    let client = AuthClient::new(kc.config(SERVICE_CLIENT, SERVICE_SECRET, clock())).unwrap();
    let session = client.client_credentials_session_with(TokenParams::new().scopes(["no-such-scope"]));
    let error = session.access_token().await.unwrap_err();
    assert!(matches!(error, AuthError::InvalidScope(_)), "{error:?}");
}

#[tokio::test]
async fn a_disabled_user_must_sign_in_again() {
    let Some(kc) = Keycloak::from_env("a_disabled_user_must_sign_in_again") else {
        return;
    };
    let (username, id) = kc.create_user("disabled", "disabled-password").await;
    let client = AuthClient::new(kc.app_config(clock())).unwrap();
    let session = client
        .login(&username, SecretString::from("disabled-password"))
        .await
        .unwrap();
    assert_eq!(userinfo_status(&kc, &client, &session).await.unwrap(), 200);

    kc.set_enabled(&id, false).await;

    // Keycloak: userinfo 401 (`user_disabled`), the refresh token and then the
    // password in memory refused with `invalid_grant`.
    let error = userinfo_status(&kc, &client, &session).await.unwrap_err();
    assert!(matches!(error, AuthError::ReauthenticationRequired { .. }), "{error:?}");
    assert_eq!(kc.events(&id, "REFRESH_TOKEN_ERROR").await, 1);
    assert_eq!(kc.events(&id, "LOGIN_ERROR").await, 1, "one password attempt");
}

#[tokio::test]
async fn an_admin_logout_reaches_the_backchannel_receiver_and_ends_the_session() {
    let Some(kc) = Keycloak::from_env("an_admin_logout_reaches_the_backchannel_receiver_and_ends_the_session") else {
        return;
    };
    let (username, id) = kc.create_user("bcl", "bcl-password").await;
    let issuer = format!("{}/realms/{}", kc.base, kc.realm);
    let config = AuthConfig::discover(&issuer, "tk-bcl")
        .await
        .expect("Keycloak's OpenID Connect discovery")
        .client_secret(SecretString::from("tk-bcl-secret"))
        .scopes(["openid"])
        .clock(clock());
    let client = AuthClient::new(config).unwrap();
    let session = client
        .login(&username, SecretString::from("bcl-password"))
        .await
        .unwrap();
    assert!(
        session.id_token_claims().unwrap().session_id().is_some(),
        "Keycloak's ID token names its session (sid)"
    );
    // The app's route, on a loopback port Keycloak is told about.
    let receiver = Arc::new(client.backchannel_logout().unwrap());
    let (heard, mut outcomes) = tokio::sync::mpsc::unbounded_channel();
    let route = axum::routing::post(
        move |headers: axum::http::HeaderMap, body: axum::body::Bytes| async move {
            let content_type = headers.get("content-type").and_then(|v| v.to_str().ok());
            let outcome = receiver.handle(content_type, &body).await;
            let status = outcome.status;
            let _ = heard.send(outcome);
            axum::http::StatusCode::from_u16(status).unwrap()
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().route("/backchannel-logout", route);
    tokio::spawn(async move { axum::serve(listener, app).await });
    kc.set_backchannel_logout_url("tk-bcl", &format!("http://127.0.0.1:{port}/backchannel-logout"))
        .await;

    kc.logout_user(&id).await;
    let outcome = tokio::time::timeout(Duration::from_secs(30), outcomes.recv())
        .await
        .expect("Keycloak POSTs the logout token within 30 s")
        .unwrap();
    assert_eq!(outcome.status, 200, "{:?}", outcome.result);
    let accepted = outcome.result.unwrap();
    assert_eq!(accepted.ended, 1);
    assert_eq!(accepted.token.subject.as_deref(), Some(id.as_str()));
    assert!(client.session(&username).is_none(), "the SDK ended the session");
    assert_eq!(session.state(), tokenkeeper::SessionState::LoggedOut);
}
