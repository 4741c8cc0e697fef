//! Shared set-up for the integration tests: a development authorization server on
//! loopback, a manual clock, and a client configured with fast retries.
#![allow(dead_code)]

pub mod dpop_keys;
pub mod store;

use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;
use tokenkeeper::{AuthClient, AuthClientBuilder, AuthConfig, ManualClock, RetryPolicy};
use tokenkeeper_devserver::{DevServer, DevServerConfig};

pub const CLIENT_ID: &str = "demo-client";
pub const CLIENT_SECRET: &str = "demo-secret";
pub const ALICE_PASSWORD: &str = "alice-password";
/// The development server's public client for browser sign-ins.
pub const NATIVE_APP: &str = "native-app";

pub struct Harness {
    pub server: DevServer,
    pub clock: Arc<ManualClock>,
}

impl Harness {
    pub async fn start() -> Self {
        Self::with(DevServerConfig::default()).await
    }

    pub async fn with(config: DevServerConfig) -> Self {
        let server = DevServer::start(config).await.expect("the development server starts");
        Self {
            server,
            clock: Arc::new(ManualClock::starting_now()),
        }
    }

    /// The development server's public native client ([`NATIVE_APP`]): the browser
    /// sign-in's endpoints, the issuer required in redirects (RFC 9207), the manual clock.
    pub fn native_config(&self) -> AuthConfig {
        AuthConfig::new(self.server.token_endpoint(), NATIVE_APP)
            .revocation_endpoint(self.server.revocation_endpoint())
            .authorization_endpoint(self.server.authorization_endpoint())
            .issuer(self.server.base_url(), true)
            .clock(self.clock.clone())
    }

    /// A development server that requires DPoP from `client` (RFC 9449).
    pub async fn requiring_dpop(client: &str) -> Self {
        Self::with(DevServerConfig {
            dpop: tokenkeeper_devserver::DpopSpec {
                required_for_clients: vec![client.into()],
                ..Default::default()
            },
            ..Default::default()
        })
        .await
    }

    /// The client configuration every test starts from: confidential client, manual
    /// clock, quick retries (the manual clock makes backoff instant anyway).
    pub fn config(&self) -> AuthConfig {
        AuthConfig::new(self.server.token_endpoint(), CLIENT_ID)
            .client_secret(SecretString::from(CLIENT_SECRET))
            .revocation_endpoint(self.server.revocation_endpoint())
            .clock(self.clock.clone())
            .retry_policy(RetryPolicy {
                max_attempts: 3,
                initial_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(1),
                deadline: Duration::from_secs(30),
            })
    }

    pub fn client(&self) -> AuthClient {
        AuthClient::new(self.config()).expect("valid config")
    }

    /// A builder on the test configuration, for a store or an event listener.
    pub fn builder(&self) -> AuthClientBuilder {
        AuthClient::builder(self.config())
    }

    pub fn token_requests(&self) -> u64 {
        self.server.stats().token_requests
    }

    pub fn grants(&self, grant: &str) -> u64 {
        self.server
            .stats()
            .token_requests_by_grant
            .get(grant)
            .copied()
            .unwrap_or(0)
    }

    pub fn clock_now(&self) -> std::time::SystemTime {
        use tokenkeeper::Clock;
        self.clock.now()
    }

    pub fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }
}

pub fn password(p: &str) -> SecretString {
    SecretString::from(p)
}

pub fn value(token: &tokenkeeper::AccessToken) -> String {
    use secrecy::ExposeSecret;
    token.expose_secret().to_owned()
}

/// Records every event, for assertions on what the app was told and in which order.
#[derive(Default)]
pub struct EventLog(std::sync::Mutex<Vec<tokenkeeper::AuthEvent>>);

impl EventLog {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    pub fn events(&self) -> Vec<tokenkeeper::AuthEvent> {
        self.0.lock().unwrap().clone()
    }

    /// The events' variant names, e.g. `["TokenIssued", "LoggedOut"]`.
    pub fn names(&self) -> Vec<String> {
        self.events()
            .iter()
            .map(|e| format!("{e:?}").split([' ', '{']).next().unwrap_or_default().to_owned())
            .collect()
    }

    pub fn count(&self, name: &str) -> usize {
        self.names().iter().filter(|n| *n == name).count()
    }
}

impl tokenkeeper::AuthEventListener for EventLog {
    fn on_event(&self, event: &tokenkeeper::AuthEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

/// Waits (bounded) until `condition` holds: for ordering a test's steps against a
/// request the server has received, never for expiry.
pub async fn until(mut condition: impl FnMut() -> bool) {
    for _ in 0..5_000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("the condition did not become true within 5 s");
}

/// The refresh token inside the session record a store holds under `key`.
pub fn stored_refresh_token(store: &dyn tokenkeeper::TokenStore, key: &str) -> Option<String> {
    use secrecy::ExposeSecret;
    let raw = store.load(key).expect("the store answers")?;
    let record: serde_json::Value = serde_json::from_str(raw.expose_secret()).expect("a JSON session record");
    Some(record["refresh_token"].as_str().expect("a refresh token").to_owned())
}

/// The browser: opens the authorization URL (the login page), submits the test
/// login, and returns where the server redirects to. Redirects are not followed.
pub async fn browser_login(url: &str, username: &str, password: &str) -> String {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = browser.get(url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("<form"));
    let url = reqwest::Url::parse(url).unwrap();
    let mut form: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    form.push(("username".into(), username.into()));
    form.push(("password".into(), password.into()));
    let mut action = url.clone();
    action.set_query(None);
    let answer = browser.post(action).form(&form).send().await.unwrap();
    assert_eq!(answer.status(), 303);
    answer.headers()["location"].to_str().unwrap().to_owned()
}

/// Every spoiled ID token the development server can issue without a `nonce` in
/// play, with the check that must refuse it.
pub const SPOILED_ID_TOKENS: [(tokenkeeper_devserver::IdTokenFault, tokenkeeper::JwtCheck); 9] = {
    use tokenkeeper::JwtCheck;
    use tokenkeeper_devserver::IdTokenFault;
    [
        (IdTokenFault::BadSignature, JwtCheck::Signature),
        (IdTokenFault::WrongAudience, JwtCheck::Audience),
        (IdTokenFault::WrongIssuer, JwtCheck::Issuer),
        (IdTokenFault::Expired, JwtCheck::Expired),
        (IdTokenFault::IssuedInFuture, JwtCheck::IssuedAt),
        (IdTokenFault::AlgNone, JwtCheck::Algorithm),
        (IdTokenFault::UnknownKid, JwtCheck::UnknownKey),
        (IdTokenFault::WrongAtHash, JwtCheck::AccessTokenHash),
        (IdTokenFault::ExtraAudienceWithoutAzp, JwtCheck::AuthorizedParty),
    ]
};

/// The `dpop_jkt` an authorization URL carries (RFC 9449 §10).
pub fn dpop_jkt(authorization_url: &str) -> String {
    reqwest::Url::parse(authorization_url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "dpop_jkt")
        .map(|(_, v)| v.into_owned())
        .expect("RFC 9449 §10: the authorization request carries dpop_jkt")
}
