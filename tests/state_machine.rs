//! One regression test per guarantee of the session state machine (issue 8): each
//! drives the interleaving that used to break it, against the development server.

mod common;

use common::{password, stored_refresh_token, until, value, EventLog, Harness, ALICE_PASSWORD};
use secrecy::SecretString;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokenkeeper::{
    AuthError, AuthEvent, AuthEventListener, MemoryStore, RecoveryPolicy, Session, SessionState, StoreError,
    TokenChange, TokenObserver, TokenRotation, TokenStore,
};
use tokenkeeper_devserver::{Endpoint, Fault};

fn unauthorized_forever(h: &Harness, times: usize) {
    for _ in 0..times {
        h.server.inject(
            Endpoint::Resource,
            Fault::status(401).with_header("WWW-Authenticate", r#"Bearer error="invalid_token""#),
        );
    }
}

async fn get_me(session: &Session, h: &Harness) -> Result<u16, AuthError> {
    let http = reqwest::Client::new();
    Ok(session
        .send(http.get(h.server.resource_url("/me")))
        .await?
        .status()
        .as_u16())
}

// 1 ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_is_a_fence_for_a_token_request_in_flight() {
    let h = Harness::start().await;
    let store = Arc::new(MemoryStore::new());
    let events = EventLog::new();
    let client = h
        .builder()
        .store(store.clone())
        .event_listener(events.clone())
        .build()
        .unwrap();
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    let key = alice.store_key().to_owned();

    // A refresh is on its way to the server when the user taps "log out".
    alice.invalidate();
    h.server.inject(Endpoint::Token, Fault::delay_ms(300));
    let before = h.token_requests();
    let late = tokio::spawn({
        let alice = alice.clone();
        async move { alice.access_token().await }
    });
    until(|| h.token_requests() > before).await;
    alice.logout().await.unwrap();

    // logout() has returned: the late answer was fenced off, revoked and never stored.
    assert_eq!(
        h.server.live_tokens("alice"),
        0,
        "no token of the session is live on the server"
    );
    assert!(store.load(&key).unwrap().is_none());
    assert!(alice.cached_access_token().is_none());
    let late = late.await.unwrap();
    assert!(
        matches!(late, Err(AuthError::ReauthenticationRequired { .. })),
        "{late:?}"
    );
    assert!(matches!(
        client.restore("alice").await,
        Err(AuthError::ReauthenticationRequired { .. })
    ));
    assert_eq!(
        events.names(),
        ["TokenIssued", "LoggedOut"],
        "nothing announced the fenced answer"
    );
    assert_eq!(alice.state(), SessionState::LoggedOut);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_is_a_fence_and_a_new_login_is_never_overwritten_by_the_old_flight() {
    let h = Harness::start().await;
    let store = Arc::new(MemoryStore::new());
    let client = h.builder().store(store.clone()).build().unwrap();
    let old = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    old.invalidate();
    h.server.inject(Endpoint::Token, Fault::delay_ms(300));
    let before = h.token_requests();
    let late = tokio::spawn({
        let old = old.clone();
        async move { old.access_token().await }
    });
    until(|| h.token_requests() > before).await;
    let logout = tokio::spawn({
        let old = old.clone();
        async move { old.logout().await }
    });
    until(|| client.session("alice").is_none()).await;

    // The user signs in again while the old refresh is still out.
    let new = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    assert!(!Arc::ptr_eq(&old, &new));
    let signed_in = new.access_token().await.unwrap();
    logout.await.unwrap().unwrap();
    assert!(late.await.unwrap().is_err());

    assert!(new.access_token().await.unwrap().is_same_token(&signed_in));
    let stored = stored_refresh_token(store.as_ref(), new.store_key()).expect("the new login's refresh token");
    assert!(h.server.refresh_token_is_live(&stored));
    assert_eq!(
        h.server.live_tokens("alice"),
        2,
        "exactly the new login's access and refresh token"
    );
    assert_eq!(get_me(&new, &h).await.unwrap(), 200);
}

// 2 ---------------------------------------------------------------------------------

#[tokio::test]
async fn rejected_credentials_are_never_resent() {
    let h = Harness::start().await;
    let events = EventLog::new();
    let client = h.builder().event_listener(events.clone()).build().unwrap();
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();

    // The password was changed on another device, which also signed everyone out.
    h.server.set_user_password("alice", "changed-elsewhere");
    h.server.revoke_subject("alice");
    let error = get_me(&alice, &h).await.unwrap_err();
    assert!(matches!(error, AuthError::ReauthenticationRequired { .. }), "{error:?}");
    assert_eq!(
        h.grants("password"),
        2,
        "the login and one attempt with the old password"
    );

    let requests = h.token_requests();
    let resource_requests = h.server.stats().resource_requests;
    for _ in 0..5 {
        h.advance(3600);
        for error in [
            alice.access_token().await.unwrap_err(),
            alice.refresh().await.unwrap_err(),
            get_me(&alice, &h).await.unwrap_err(),
        ] {
            assert!(matches!(error, AuthError::ReauthenticationRequired { .. }), "{error:?}");
        }
    }
    assert_eq!(
        h.token_requests(),
        requests,
        "the rejected password was never sent again"
    );
    assert_eq!(h.server.stats().resource_requests, resource_requests);
    assert_eq!(alice.state(), SessionState::ReauthenticationRequired);
    assert_eq!(events.count("ReauthenticationRequired"), 1);

    // Only a login with the new password brings the session back.
    client.login("alice", password("changed-elsewhere")).await.unwrap();
    assert!(matches!(alice.state(), SessionState::SignedIn { .. }));
    assert_eq!(get_me(&alice, &h).await.unwrap(), 200);
}

#[tokio::test]
async fn rejected_credentials_are_never_resent_for_a_wrong_client_secret_within_the_backoff() {
    let h = Harness::start().await;
    let client = tokenkeeper::AuthClient::new(h.config().client_secret(password("wrong"))).unwrap();
    let machine = client.client_credentials_session();
    for _ in 0..10 {
        let error = machine.access_token().await.unwrap_err();
        assert!(matches!(error, AuthError::InvalidClient(_)), "{error:?}");
    }
    assert_eq!(
        h.token_requests(),
        1,
        "ten calls, one request: the same answer is reused"
    );
    h.advance(5);
    assert!(machine.access_token().await.is_err());
    assert_eq!(h.token_requests(), 2, "one more once the backoff has passed");
    assert!(machine.refresh().await.is_err());
    assert_eq!(h.token_requests(), 3, "an explicit refresh() tries at once");
}

// 3 ---------------------------------------------------------------------------------

#[tokio::test]
async fn every_failure_path_backs_off_with_an_expired_token_and_a_failing_server() {
    let h = Harness::start().await;
    let client = h.client();
    let machine = client.client_credentials_session();
    machine.access_token().await.unwrap();
    h.advance(7200);
    for _ in 0..50 {
        h.server.inject(Endpoint::Token, Fault::status(503));
    }
    let before = h.token_requests();
    for _ in 0..20 {
        let error = machine.access_token().await.unwrap_err();
        assert!(error.is_retryable(), "{error:?}");
    }
    assert_eq!(
        h.token_requests() - before,
        3,
        "one flight of 3 attempts, then the backoff answers"
    );
}

#[tokio::test]
async fn a_resource_server_that_always_answers_401_trips_the_circuit_breaker() {
    let h = Harness::start().await;
    let events = EventLog::new();
    let client = h.builder().event_listener(events.clone()).build().unwrap();
    let machine = client.client_credentials_session();
    unauthorized_forever(&h, 100);
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(get_me(&machine, &h).await.unwrap());
    }
    assert!(
        statuses.iter().all(|s| *s == 401),
        "the 401 is handed back: {statuses:?}"
    );
    assert_eq!(
        h.token_requests(),
        4,
        "the first token and three recoveries that did not help; then no more requests"
    );
    assert_eq!(events.count("RecoveryPaused"), 1);

    // After the pause, recovery resumes (a fixed server would be used again).
    h.server.clear_faults();
    h.advance(61);
    assert_eq!(get_me(&machine, &h).await.unwrap(), 200);
}

/// The breaker counts unhelpful recoveries within a window: rejections spread wider
/// apart than the window are each recovered, and recovery is never paused for them.
#[tokio::test]
async fn unhelpful_recoveries_further_apart_than_the_window_never_trip_the_breaker() {
    let h = Harness::start().await;
    let events = EventLog::new();
    let client = h.builder().event_listener(events.clone()).build().unwrap();
    let machine = client.client_credentials_session();
    unauthorized_forever(&h, 100);
    for _ in 0..2 {
        assert_eq!(get_me(&machine, &h).await.unwrap(), 401);
    }
    let requests = h.token_requests();
    h.advance(61); // past the window; the tokens still valid
    for _ in 0..2 {
        assert_eq!(get_me(&machine, &h).await.unwrap(), 401);
    }
    assert_eq!(
        h.token_requests(),
        requests + 2,
        "each rejection in a new window is recovered"
    );
    assert_eq!(events.count("RecoveryPaused"), 0);
}

// 4 ---------------------------------------------------------------------------------

struct PanickingStore;

impl TokenStore for PanickingStore {
    fn load(&self, _key: &str) -> Result<Option<SecretString>, StoreError> {
        panic!("keychain exploded on load")
    }
    fn save(&self, _key: &str, _refresh_token: &SecretString) -> Result<(), StoreError> {
        panic!("keychain exploded on save")
    }
    fn remove(&self, _key: &str) -> Result<(), StoreError> {
        panic!("keychain exploded on remove")
    }
}

struct PanickingListener;

impl AuthEventListener for PanickingListener {
    fn on_event(&self, _event: &AuthEvent) {
        panic!("listener exploded")
    }
}

#[tokio::test]
async fn no_single_failure_bricks_a_session_a_panicking_store_or_listener() {
    let h = Harness::start().await;
    let client = h
        .builder()
        .store(Arc::new(PanickingStore))
        .event_listener(Arc::new(PanickingListener))
        .build()
        .unwrap();
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    assert_eq!(get_me(&alice, &h).await.unwrap(), 200);
    h.server.revoke_subject("alice");
    assert_eq!(get_me(&alice, &h).await.unwrap(), 200, "recovered despite the store");
    alice.invalidate();
    alice.access_token().await.unwrap();
    assert!(matches!(alice.logout().await, Err(AuthError::Storage { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_single_failure_bricks_a_session_a_runtime_shutting_down_mid_request() {
    let h = Harness::start().await;
    let client = h.client();
    let machine = client.client_credentials_session();
    h.server.inject(Endpoint::Token, Fault::Hang);

    let doomed = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    doomed.spawn({
        let machine = machine.clone();
        async move { machine.access_token().await }
    });
    until(|| h.token_requests() == 1).await;
    doomed.shutdown_background();

    // The flight died with its runtime; its slot is free and the next call works.
    machine.access_token().await.unwrap();
    assert_eq!(h.token_requests(), 2);
}

#[test]
fn no_single_failure_bricks_a_session_a_call_outside_a_tokio_runtime_is_a_typed_error() {
    let server_runtime = tokio::runtime::Runtime::new().unwrap();
    let h = server_runtime.block_on(Harness::start());
    let client = h.client();
    let machine = client.client_credentials_session();
    let error = futures_executor_free_block_on(machine.access_token()).unwrap_err();
    assert!(matches!(error, AuthError::InvalidConfig { ref reason } if reason.contains("tokio runtime")));
    // Inside a runtime the same session works.
    server_runtime.block_on(machine.access_token()).unwrap();
}

/// Polls a future to completion on this thread without any tokio runtime.
fn futures_executor_free_block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park_timeout(Duration::from_millis(10));
    }
}

// 5 ---------------------------------------------------------------------------------

/// Checks, at each event, that what it announces is visible and persisted; and asks
/// the session for a token from inside the listener.
struct Witness {
    session: OnceLock<Arc<Session>>,
    store: Arc<MemoryStore>,
    seen: Mutex<Vec<(String, bool, bool)>>,
}

impl AuthEventListener for Witness {
    fn on_event(&self, event: &AuthEvent) {
        let Some(session) = self.session.get() else { return };
        let name = format!("{event:?}")
            .split([' ', '{'])
            .next()
            .unwrap_or_default()
            .to_owned();
        let visible = session.cached_access_token().is_some();
        let persisted = self.store.load(session.store_key()).unwrap().is_some();
        // A listener that itself needs a token must not deadlock the flight.
        let handle = tokio::runtime::Handle::current();
        let token = tokio::task::block_in_place(|| handle.block_on(session.access_token()));
        assert!(token.is_ok());
        self.seen.lock().unwrap().push((name, visible, persisted));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_tell_the_truth_after_publication_in_order_and_outside_the_flight() {
    let h = Harness::start().await;
    let store = Arc::new(MemoryStore::new());
    let witness = Arc::new(Witness {
        session: OnceLock::new(),
        store: store.clone(),
        seen: Mutex::new(Vec::new()),
    });
    let client = h
        .builder()
        .store(store.clone())
        .event_listener(witness.clone())
        .build()
        .unwrap();
    let scenario = async {
        let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
        witness.session.set(alice.clone()).unwrap();
        h.server.revoke_token(&value(&alice.access_token().await.unwrap()));
        assert_eq!(get_me(&alice, &h).await.unwrap(), 200);
        h.advance(3500);
        alice.refresh().await.unwrap();
    };
    tokio::time::timeout(Duration::from_secs(20), scenario)
        .await
        .expect("no deadlock");
    let seen = witness.seen.lock().unwrap().clone();
    let names: Vec<&str> = seen.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "RevocationDetected",
            "TokenRefreshed",
            "Reauthenticated",
            "TokenRefreshed"
        ],
        "in order (the login's TokenIssued came before the witness knew the session)"
    );
    for (name, visible, persisted) in &seen[1..] {
        assert!(
            *visible && *persisted,
            "{name} was announced before it was visible and stored"
        );
    }
}

// 6 ---------------------------------------------------------------------------------

#[derive(Default)]
struct Generations(Mutex<Vec<u64>>);

impl TokenObserver for Generations {
    fn on_token_change(&self, change: &TokenChange) {
        self.0.lock().unwrap().push(change.generation);
    }
}

fn rotation_headers(token: &str, expiry_epoch: u64) -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("access-token", token.parse().unwrap());
    headers.insert("expiry", expiry_epoch.to_string().parse().unwrap());
    headers
}

#[tokio::test]
async fn tokens_never_go_back_in_time() {
    let h = Harness::start().await;
    let client = tokenkeeper::AuthClient::new(
        h.config()
            .token_rotation(TokenRotation::headers("access-token", "expiry")),
    )
    .unwrap();
    let machine = client.client_credentials_session();
    let generations = Arc::new(Generations::default());
    machine.observe(generations.clone());
    let from_endpoint = machine.access_token().await.unwrap();
    let now = from_endpoint.expires_at().epoch_seconds() - 3600;

    // A late rotated token that expires sooner than the endpoint's token is ignored.
    machine.observe_response_headers(&rotation_headers("rotated-early", now + 60));
    assert!(machine.access_token().await.unwrap().is_same_token(&from_endpoint));

    // A newer one is adopted; an older one arriving after it is not; nor is the token
    // it replaced.
    machine.observe_response_headers(&rotation_headers("rotated-new", now + 7200));
    let newest = machine.access_token().await.unwrap();
    assert_eq!(value(&newest), "rotated-new");
    machine.observe_response_headers(&rotation_headers("rotated-middle", now + 5000));
    machine.observe_response_headers(&rotation_headers(&value(&from_endpoint), now + 3600));
    assert_eq!(value(&machine.access_token().await.unwrap()), "rotated-new");

    let seen = generations.0.lock().unwrap().clone();
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "generations only grow: {seen:?}");
    assert_eq!(seen.len(), 3, "initial, issued, rotated: {seen:?}");
}

// 7 ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_is_atomic_a_dropped_login_keeps_the_working_password() {
    let h = Harness::start().await;
    let client = h.client();
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();

    h.server.inject(Endpoint::Token, Fault::delay_ms(200));
    let before = h.token_requests();
    let typo = tokio::spawn({
        let client = client.clone();
        async move { client.login("alice", password("typo")).await }
    });
    until(|| h.token_requests() > before).await;
    typo.abort();
    alice.wait_for_refresh().await;

    // Signed out elsewhere: silent recovery uses the password that worked.
    h.server.revoke_subject("alice");
    assert_eq!(get_me(&alice, &h).await.unwrap(), 200);
    assert_eq!(h.grants("password"), 3, "login, the dropped typo, the recovery");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_is_atomic_and_never_returns_ok_by_joining_a_background_refresh() {
    let h = Harness::start().await;
    let client = h.client();
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    h.advance(3400); // due for a proactive refresh, still valid
    h.server.inject(Endpoint::Token, Fault::delay_ms(200));
    let before = h.token_requests();
    alice.access_token().await.unwrap(); // starts the background refresh
    until(|| h.token_requests() > before).await;

    let error = client.login("alice", password("typo")).await.unwrap_err();
    assert!(matches!(error, AuthError::InvalidGrant(_)), "{error:?}");
    assert_eq!(h.grants("password"), 2, "the typo itself was checked by the server");
}

// 8 ---------------------------------------------------------------------------------

#[tokio::test]
async fn logout_succeeds_when_the_access_token_revocation_is_unsupported() {
    let h = Harness::start().await;
    let client = h.client();
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    h.server.inject(Endpoint::Revocation, Fault::delay_ms(0));
    h.server.inject(
        Endpoint::Revocation,
        Fault::json(400, serde_json::json!({"error": "unsupported_token_type"})),
    );
    alice.logout().await.unwrap();
    let hints: Vec<_> = h
        .server
        .stats()
        .revocations
        .iter()
        .map(|r| r.token_type_hint.clone())
        .collect();
    assert_eq!(hints, [Some("refresh_token".into()), Some("access_token".into())]);
    assert_eq!(h.server.live_tokens("alice"), 0);
}

// 9 ---------------------------------------------------------------------------------

#[tokio::test]
async fn clear_and_fail_behaves_the_same_in_send_recover_and_handle_unauthorized() {
    let h = Harness::start().await;
    let client = tokenkeeper::AuthClient::new(h.config().recovery_policy(RecoveryPolicy::ClearAndFail)).unwrap();
    let machine = client.client_credentials_session();
    let mut outcomes = Vec::new();
    for entry in ["send", "recover", "handle_unauthorized"] {
        let token = machine.access_token().await.unwrap();
        h.server.revoke_token(&value(&token));
        let result = match entry {
            "send" => get_me(&machine, &h).await.map(|_| ()),
            "recover" => machine.recover(&token, None).await.map(|_| ()),
            _ => machine.handle_unauthorized(&token, &[""; 0]).await.map(|_| ()),
        };
        outcomes.push((entry, result, machine.cached_access_token().is_none()));
    }
    for (entry, result, cleared) in outcomes {
        assert!(matches!(result, Err(AuthError::TokenRevoked)), "{entry}: {result:?}");
        assert!(cleared, "{entry} left the revoked token cached");
    }
    assert_eq!(h.token_requests(), 3, "each next call signed in once, nothing more");
}
