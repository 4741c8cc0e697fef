//! The device authorization grant (RFC 8628) against the development server:
//! pending, slow_down and success; denial, expiry and cancellation. Waits run on
//! a manual clock: a scripted step runs at each wait, like a user acting while
//! the device sleeps.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokenkeeper::signin::DeviceAuthorization;
use tokenkeeper::{AuthClient, AuthConfig, AuthError, Clock, ManualClock, Sleep, Subject, TokenParams};
use tokenkeeper_devserver::{DevServer, DevServerConfig, Endpoint, Fault, DEVICE_CODE_GRANT};

type Step = Box<dyn FnOnce() + Send>;

/// A [`ManualClock`] that runs the next scripted step each time the SDK waits.
struct ScriptedClock {
    clock: ManualClock,
    steps: Mutex<Vec<Option<Step>>>,
}

impl std::fmt::Debug for ScriptedClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedClock")
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl ScriptedClock {
    fn new() -> Self {
        Self {
            clock: ManualClock::starting_now(),
            steps: Mutex::default(),
        }
    }

    fn script(&self, steps: Vec<Option<Step>>) {
        *self.steps.lock().unwrap() = steps.into_iter().rev().collect();
    }
}

impl Clock for ScriptedClock {
    fn now(&self) -> SystemTime {
        self.clock.now()
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        let sleep = self.clock.sleep(duration);
        if let Some(Some(step)) = self.steps.lock().unwrap().pop() {
            step();
        }
        sleep
    }
}

struct Setup {
    server: Arc<DevServer>,
    clock: Arc<ScriptedClock>,
    client: AuthClient,
}

async fn setup() -> Setup {
    let server = Arc::new(DevServer::start(DevServerConfig::default()).await.unwrap());
    let clock = Arc::new(ScriptedClock::new());
    let config = AuthConfig::new(server.token_endpoint(), "native-app")
        .device_authorization_endpoint(server.device_authorization_endpoint())
        .clock(clock.clone());
    let client = AuthClient::new(config).unwrap();
    Setup { server, clock, client }
}

fn polls(server: &DevServer) -> u64 {
    server
        .stats()
        .token_requests_by_grant
        .get(DEVICE_CODE_GRANT)
        .copied()
        .unwrap_or(0)
}

async fn start(s: &Setup) -> Arc<DeviceAuthorization> {
    Arc::new(
        s.client
            .start_device_authorization("living-room-tv", TokenParams::new())
            .await
            .unwrap(),
    )
}

#[tokio::test]
async fn pending_then_slow_down_then_success() {
    let s = setup().await;
    let device = start(&s).await;
    assert_eq!(device.interval(), Duration::from_secs(5));
    assert!(device.verification_uri().ends_with("/device"));
    let code = device.user_code().to_owned();
    let (throttle, approve) = (Arc::clone(&s.server), Arc::clone(&s.server));
    let (c1, c2) = (code.clone(), code.clone());
    s.clock.script(vec![
        None,                                                                  // poll 1: authorization_pending
        Some(Box::new(move || assert!(throttle.throttle_device(&c1)))),        // poll 2: slow_down
        Some(Box::new(move || assert!(approve.approve_device(&c2, "carol")))), // poll 3: tokens
    ]);

    let session = s.client.complete_device_authorization(&device).await.unwrap();

    assert_eq!(session.identity().subject(), &Subject::User("living-room-tv".into()));
    assert_eq!(polls(&s.server), 3);
    let waits = s.clock.clock.sleeps();
    assert_eq!(
        waits,
        [5, 5, 10].map(Duration::from_secs),
        "the interval is honoured and grows by 5 s after slow_down"
    );
    assert_eq!(s.server.device_interval(&code), None, "the code is spent");
    let me = session
        .send(s.client.http().get(s.server.resource_url("/me")))
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
}

#[tokio::test]
async fn pending_answered_with_http_200_like_github_keeps_polling() {
    let s = setup().await;
    let device = start(&s).await;
    // GitHub answers device-flow errors with HTTP 200 and an OAuth error body.
    s.server.inject(
        Endpoint::Token,
        Fault::json(200, serde_json::json!({"error": "authorization_pending"})),
    );
    let (approve, code) = (Arc::clone(&s.server), device.user_code().to_owned());
    s.clock.script(vec![
        None, // poll 1: the injected 200 + authorization_pending
        Some(Box::new(move || assert!(approve.approve_device(&code, "carol")))), // poll 2: tokens
    ]);

    let session = s.client.complete_device_authorization(&device).await.unwrap();

    assert_eq!(s.clock.clock.sleeps(), [5, 5].map(Duration::from_secs));
    assert!(session.cached_access_token().is_some());
}

#[tokio::test]
async fn a_denied_request_is_access_denied() {
    let s = setup().await;
    let device = start(&s).await;
    let (server, code) = (Arc::clone(&s.server), device.user_code().to_owned());
    s.clock
        .script(vec![None, Some(Box::new(move || assert!(server.deny_device(&code))))]);
    let error = s.client.complete_device_authorization(&device).await.unwrap_err();
    assert!(matches!(error, AuthError::AccessDenied(_)), "{error:?}");
    assert_eq!(polls(&s.server), 2);
    assert!(s.client.session("living-room-tv").is_none());
}

#[tokio::test]
async fn the_server_saying_expired_token_ends_polling() {
    let s = setup().await;
    let device = start(&s).await;
    let (server, code) = (Arc::clone(&s.server), device.user_code().to_owned());
    s.clock
        .script(vec![Some(Box::new(move || assert!(server.expire_device(&code))))]);
    let error = s.client.complete_device_authorization(&device).await.unwrap_err();
    assert!(matches!(error, AuthError::DeviceCodeExpired), "{error:?}");
    assert_eq!(polls(&s.server), 1);
}

#[tokio::test]
async fn polling_stops_at_the_announced_expiry_without_another_request() {
    let s = setup().await;
    let device = start(&s).await;
    s.clock.clock.advance(Duration::from_secs(600)); // the default device code lifetime
    let error = s.client.complete_device_authorization(&device).await.unwrap_err();
    assert!(matches!(error, AuthError::DeviceCodeExpired), "{error:?}");
    assert_eq!(polls(&s.server), 0);
}

#[tokio::test]
async fn polling_can_be_cancelled_from_another_task() {
    let s = setup().await;
    let device = start(&s).await;
    let cancel = Arc::clone(&device);
    s.clock.script(vec![None, Some(Box::new(move || cancel.cancel()))]);
    let error = s.client.complete_device_authorization(&device).await.unwrap_err();
    assert!(matches!(error, AuthError::Cancelled), "{error:?}");
    assert!(polls(&s.server) <= 2, "no polling after the cancellation");
}

#[tokio::test]
async fn the_verification_page_approves_like_a_user() {
    let s = setup().await;
    let device = start(&s).await;
    let form = [
        ("user_code", device.user_code().to_owned()),
        ("username", "alice".to_owned()),
        ("password", "alice-password".to_owned()),
    ];
    let page = reqwest::Client::new()
        .post(device.verification_uri())
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let session = s.client.complete_device_authorization(&device).await.unwrap();
    assert!(session.access_token().await.is_ok());
    assert_eq!(polls(&s.server), 1);
}
