//! Shared set-up for the integration tests: a development authorization server on
//! loopback, a manual clock, and a client configured with fast retries.
#![allow(dead_code)]

pub mod store;

use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;
use tokenkeeper::{AuthClient, AuthClientBuilder, AuthConfig, ManualClock, RetryPolicy};
use tokenkeeper_devserver::{DevServer, DevServerConfig};

pub const CLIENT_ID: &str = "demo-client";
pub const CLIENT_SECRET: &str = "demo-secret";
pub const ALICE_PASSWORD: &str = "alice-password";

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
