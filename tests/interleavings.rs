//! A seeded, randomized interleaving harness for the session state machine.
//!
//! Each seed builds its own development server and `AuthClient`, then runs a random
//! schedule of operations on two users' sessions and the client's own session:
//! concurrent and cancelled callers, 401s after server-side revocation, password
//! changes on the server, invalidation, login (right or wrong password), logout with
//! a request in flight, restore, late rotated tokens, failing and panicking stores,
//! panicking listeners, token-endpoint delays and errors, clock jumps both ways;
//! and, where a session meets its store (issue 24): app restarts (drop the client,
//! build a new one on the same store, restore everyone signed in), a second
//! `AuthClient` on the same store, a store that is slow or whose writes fail for a
//! while and recover, cancelled logouts, a wrong and a right login at once, import,
//! code-exchange and device sign-ins (some cancelled) racing a logout, `PerRequest`
//! sessions with a logout landing on their requests, and long
//! `access_token_valid_for` asks.
//! A third of the seeds run with DPoP required (issue 20), half of those with server
//! nonces, and their schedules rotate the nonce: every token a session holds must be
//! bound to its own key, every stored bound refresh token must have its key beside
//! it, and no proof may be refused for anything but a stale nonce or `iat`.
//! After every step it checks the invariants below; a watchdog fails any step that
//! does not finish (a deadlock).
//!
//! `TOKENKEEPER_SEEDS=N` runs seeds 0..N (default 2000); `TOKENKEEPER_SEED=S` replays
//! one seed alone and prints its schedule. A failing seed prints itself.

mod common;

use common::dpop_keys::PlatformKeys;
use common::{browser_login, stored_refresh_token, EventLog};
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokenkeeper::signin::{AuthorizationRequest, ImportedTokens};
use tokenkeeper::{
    AuthClient, AuthConfig, AuthError, AuthEvent, AuthEventListener, CachePolicy, DpopMode, ManualClock, MemoryStore,
    RetryPolicy, Session, SessionState, StoreError, TokenChange, TokenObserver, TokenParams, TokenRotation, TokenStore,
};
use tokenkeeper_devserver::{ClientSpec, DevServer, DevServerConfig, DpopSpec, Endpoint, Fault, DEVICE_CODE_GRANT};

const USERS: [&str; 2] = ["u0", "u1"];
/// The user of the `PerRequest` client (its own client and store, so its requests
/// never count against the two users' invariants).
const PER_REQUEST_USER: &str = "pr";
const PER_REQUEST_PASSWORD: &str = "pw-pr";
const REDIRECT: &str = "http://127.0.0.1/callback";
/// Steps per seed (`TOKENKEEPER_STEPS` overrides).
const STEPS: usize = 24;
/// A step may cost one flight of three attempts, a background refresh, a recovery and
/// a sign-in's revocation; anything above this is a request per call.
const MAX_TOKEN_REQUESTS_PER_STEP: u64 = 9;
const WATCHDOG: Duration = Duration::from_secs(10);

/// splitmix64: small, fast, and the same sequence on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// How a sign-in that races a logout obtains its tokens.
#[derive(Clone, Copy, Debug)]
enum SignIn {
    /// The browser's authorization code, exchanged with PKCE.
    Code,
    /// The device authorization grant, polled until the user approves.
    Device,
}

#[derive(Clone, Copy, Debug)]
enum Who {
    User(usize),
    Machine,
}

#[derive(Clone, Debug)]
enum Op {
    Access {
        who: Who,
        callers: u64,
        cancelled: u64,
    },
    Send401 {
        who: Who,
    },
    ServerRevoke {
        user: usize,
    },
    PasswordChange {
        user: usize,
    },
    Invalidate {
        who: Who,
    },
    Login {
        user: usize,
        correct: bool,
    },
    Logout {
        user: usize,
        with_flight: bool,
    },
    Restore {
        user: usize,
    },
    LateRotation {
        who: Who,
        offset_s: i64,
    },
    Store(u8),
    ListenerPanics(bool),
    TokenFault(u8),
    ClockForward(u64),
    ClockBack(u64),
    Restart,
    SecondClient {
        user: usize,
        restore: bool,
    },
    CancelledLogout {
        user: usize,
        after_ms: u64,
    },
    RacingLogins {
        user: usize,
    },
    ImportRacingLogout {
        user: usize,
    },
    SignInRacingLogout {
        user: usize,
        via: SignIn,
        cancel: bool,
    },
    PerRequest {
        callers: u64,
        logout: bool,
    },
    LongAsk {
        who: Who,
        secs: u64,
    },
    /// The server starts demanding a new DPoP nonce (a no-op without nonces).
    NonceRotation,
}

fn random_op(rng: &mut Rng) -> Op {
    let who = |rng: &mut Rng| {
        if rng.chance(25) {
            Who::Machine
        } else {
            Who::User(rng.below(2) as usize)
        }
    };
    let user = |rng: &mut Rng| rng.below(2) as usize;
    match rng.below(23) {
        0..=2 => Op::Access {
            who: who(rng),
            callers: 1 + rng.below(6),
            cancelled: rng.below(3),
        },
        3 | 4 => Op::Send401 { who: who(rng) },
        5 => Op::ServerRevoke { user: user(rng) },
        6 => Op::PasswordChange { user: user(rng) },
        7 => Op::Invalidate { who: who(rng) },
        8 => Op::Login {
            user: user(rng),
            correct: rng.chance(75),
        },
        9 => Op::Logout {
            user: user(rng),
            with_flight: rng.chance(50),
        },
        10 => Op::Restore { user: user(rng) },
        11 => Op::LateRotation {
            who: who(rng),
            offset_s: rng.below(7200) as i64 - 1800,
        },
        12 => match rng.below(4) {
            0 => Op::Store(rng.below(5) as u8),
            1 => Op::ListenerPanics(rng.chance(50)),
            2 => Op::TokenFault(rng.below(4) as u8),
            _ => Op::NonceRotation,
        },
        13 => Op::ClockForward(rng.below(4000)),
        14 => Op::ClockBack(rng.below(600)),
        15 => Op::Restart,
        16 => Op::SecondClient {
            user: user(rng),
            restore: rng.chance(50),
        },
        17 => Op::CancelledLogout {
            user: user(rng),
            after_ms: rng.below(3),
        },
        18 => Op::RacingLogins { user: user(rng) },
        19 => Op::ImportRacingLogout { user: user(rng) },
        20 => Op::SignInRacingLogout {
            user: user(rng),
            via: if rng.chance(50) { SignIn::Code } else { SignIn::Device },
            // Only the device grant has a cancel to press (its poll loop).
            cancel: rng.chance(30),
        },
        21 => Op::PerRequest {
            callers: 1 + rng.below(3),
            logout: rng.chance(50),
        },
        _ => Op::LongAsk {
            who: who(rng),
            secs: 1800 + rng.below(3 * 3600),
        },
    }
}

/// A store that works, fails or panics on save, is slow, or fails every write (a
/// locked keychain: saves and removes) until the schedule sets it back to 0.
struct FlakyStore {
    inner: MemoryStore,
    mode: AtomicU8,
}

const STORE_OK: u8 = 0;
const STORE_SLOW: u8 = 3;
const STORE_LOCKED: u8 = 4;

impl TokenStore for FlakyStore {
    fn load(&self, key: &str) -> Result<Option<SecretString>, StoreError> {
        if self.mode.load(Ordering::SeqCst) == STORE_SLOW {
            std::thread::sleep(Duration::from_millis(2));
        }
        self.inner.load(key)
    }
    fn save(&self, key: &str, refresh_token: &SecretString) -> Result<(), StoreError> {
        match self.mode.load(Ordering::SeqCst) {
            1 | STORE_LOCKED => Err(StoreError("the keychain is locked".into())),
            2 => panic!("the keychain crashed"),
            STORE_SLOW => {
                std::thread::sleep(Duration::from_millis(2));
                self.inner.save(key, refresh_token)
            }
            _ => self.inner.save(key, refresh_token),
        }
    }
    fn remove(&self, key: &str) -> Result<(), StoreError> {
        match self.mode.load(Ordering::SeqCst) {
            STORE_LOCKED => Err(StoreError("the keychain is locked".into())),
            _ => self.inner.remove(key),
        }
    }
}

/// Forwards events to a log, or panics while told to.
struct Listener {
    log: Arc<EventLog>,
    panics: std::sync::atomic::AtomicBool,
}

impl AuthEventListener for Listener {
    fn on_event(&self, event: &AuthEvent) {
        self.log.on_event(event);
        if self.panics.load(Ordering::SeqCst) {
            panic!("the listener crashed");
        }
    }
}

/// Checks that a session's generations only grow.
#[derive(Default)]
struct GenerationWatch {
    last: Mutex<Option<u64>>,
    regressions: Mutex<Vec<(u64, u64)>>,
}

impl TokenObserver for GenerationWatch {
    fn on_token_change(&self, change: &TokenChange) {
        let mut last = self.last.lock().unwrap();
        if let Some(previous) = *last {
            if change.generation <= previous {
                self.regressions.lock().unwrap().push((previous, change.generation));
            }
        }
        *last = Some(change.generation);
    }
}

struct World {
    server: DevServer,
    clock: Arc<ManualClock>,
    store: Arc<FlakyStore>,
    listener: Arc<Listener>,
    config: AuthConfig,
    client: AuthClient,
    /// A second `AuthClient` on the same store (an app extension), built on first use.
    second: Option<AuthClient>,
    second_sessions: HashMap<usize, Arc<Session>>,
    /// The user logged out and has not signed in since: a restart must not bring
    /// them back.
    logged_out: [bool; 2],
    /// The store failed (or was told to) since the user last signed in on a healthy
    /// store: a save may be pending, so the store may lag the session.
    store_faulted: [bool; 2],
    /// A restart dropped a session whose save may not have landed: its refresh token
    /// can stay live at the server, owned by a process that is gone, so "no live
    /// refresh token after logout" cannot be asked for this user any more.
    dropped_unsaved: [bool; 2],
    machine: Arc<Session>,
    sessions: HashMap<usize, Arc<Session>>,
    /// A `PerRequest` client (a fresh token for every call), built on first use.
    per_request: Option<AuthClient>,
    /// Each user's store key, once a session of theirs was seen.
    store_keys: [Option<String>; 2],
    watches: Vec<Arc<GenerationWatch>>,
    server_password: [String; 2],
    /// Wrong passwords the schedule allowed to reach the server, per user: one per
    /// explicit wrong login, one per password change (the SDK may try its stale
    /// password once).
    allowed_rejections: [u64; 2],
    /// The server revoked the user's tokens since the SDK last obtained one.
    revoked_by_server: [bool; 2],
    /// A fake `invalid_grant` was injected: the SDK rightly drops a refresh token the
    /// server still holds live, so "no live refresh token after logout" cannot be
    /// asked of it for the rest of the seed.
    fake_rejection: bool,
    /// The seed runs with DPoP required (and maybe server nonces).
    dpop: bool,
    /// The seed's DPoP keys live in a platform key store (shared by every client, as
    /// a device's keystore is), not in the records.
    keys: Option<Arc<PlatformKeys>>,
}

/// What a seed's server and client do about DPoP.
#[derive(Clone, Copy, Debug)]
enum Dpop {
    Off,
    Required { nonces: bool, platform_keys: bool },
}

fn build_client(config: &AuthConfig, store: &Arc<FlakyStore>, listener: &Arc<Listener>) -> AuthClient {
    AuthClient::builder(config.clone())
        .store(store.clone())
        .event_listener(listener.clone())
        .build()
        .expect("valid config")
}

impl World {
    async fn new(dpop: Dpop) -> World {
        let spec = match dpop {
            Dpop::Off => DpopSpec::default(),
            Dpop::Required { nonces, .. } => DpopSpec {
                required_for_clients: vec!["demo-client".into()],
                nonces,
                ..DpopSpec::default()
            },
        };
        let mut server_config = DevServerConfig {
            rotate_refresh_tokens: true,
            dpop: spec,
            ..DevServerConfig::default()
        };
        // The app's client may sign users in every way: password, browser, device.
        server_config.clients[0] = ClientSpec::confidential(
            "demo-client",
            "demo-secret",
            &["read", "write", "admin"],
            &[
                "client_credentials",
                "password",
                "refresh_token",
                "authorization_code",
                DEVICE_CODE_GRANT,
            ],
        )
        .with_redirect_uris(&[REDIRECT]);
        let server = DevServer::start(server_config).await.expect("devserver starts");
        for (i, user) in USERS.iter().enumerate() {
            server.set_user_password(user, &format!("pw-{i}-0"));
        }
        server.set_user_password(PER_REQUEST_USER, PER_REQUEST_PASSWORD);
        let clock = Arc::new(ManualClock::starting_now());
        let store = Arc::new(FlakyStore {
            inner: MemoryStore::new(),
            mode: AtomicU8::new(0),
        });
        let listener = Arc::new(Listener {
            log: EventLog::new(),
            panics: false.into(),
        });
        let config = AuthConfig::new(server.token_endpoint(), "demo-client")
            .client_secret(SecretString::from("demo-secret"))
            .revocation_endpoint(server.revocation_endpoint())
            .authorization_endpoint(server.authorization_endpoint())
            .device_authorization_endpoint(server.device_authorization_endpoint())
            .token_rotation(TokenRotation::headers("access-token", "expiry"))
            .clock(clock.clone())
            .request_timeout(Duration::from_secs(5))
            .retry_policy(RetryPolicy {
                max_attempts: 3,
                initial_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(1),
                deadline: Duration::from_secs(30),
            });
        let keys = matches!(
            dpop,
            Dpop::Required {
                platform_keys: true,
                ..
            }
        )
        .then(|| Arc::new(PlatformKeys::default()));
        let config = match dpop {
            Dpop::Off => config,
            Dpop::Required { .. } => config.dpop(DpopMode::Required),
        };
        let config = match &keys {
            Some(keys) => config.dpop_key_store(keys.clone()),
            None => config,
        };
        let client = build_client(&config, &store, &listener);
        let machine = client.client_credentials_session();
        let watch = Arc::new(GenerationWatch::default());
        machine.observe(watch.clone());
        World {
            server,
            clock,
            store,
            listener,
            config,
            client,
            second: None,
            second_sessions: HashMap::new(),
            logged_out: [false; 2],
            store_faulted: [false; 2],
            dropped_unsaved: [false; 2],
            machine,
            sessions: HashMap::new(),
            per_request: None,
            store_keys: [None, None],
            watches: vec![watch],
            server_password: ["pw-0-0".into(), "pw-1-0".into()],
            allowed_rejections: [0; 2],
            revoked_by_server: [false; 2],
            fake_rejection: false,
            dpop: matches!(dpop, Dpop::Required { .. }),
            keys,
        }
    }

    fn session(&self, who: Who) -> Option<Arc<Session>> {
        match who {
            Who::Machine => Some(self.machine.clone()),
            Who::User(user) => self.sessions.get(&user).cloned(),
        }
    }

    /// The user is signed in on `session` (a login, restore or sign-in succeeded).
    fn signed_in(&mut self, user: usize, session: Arc<Session>) {
        self.logged_out[user] = false;
        self.revoked_by_server[user] = false;
        if self.store.mode.load(Ordering::SeqCst) == STORE_OK {
            self.store_faulted[user] = false;
        }
        self.track(user, session);
    }

    fn track(&mut self, user: usize, session: Arc<Session>) {
        self.store_keys[user] = Some(session.store_key().to_owned());
        let known = self.sessions.get(&user).is_some_and(|s| Arc::ptr_eq(s, &session));
        if !known {
            let watch = Arc::new(GenerationWatch::default());
            session.observe(watch.clone());
            self.watches.push(watch);
            self.sessions.insert(user, session);
        }
    }

    fn token_requests(&self) -> u64 {
        self.server.stats().token_requests
    }

    async fn run(&mut self, op: &Op, rng: &mut Rng) -> Result<(), String> {
        match op.clone() {
            Op::Access {
                who,
                callers,
                cancelled,
            } => {
                let Some(session) = self.session(who) else {
                    return Ok(());
                };
                let mut tasks = Vec::new();
                for _ in 0..callers {
                    let session = session.clone();
                    tasks.push(tokio::spawn(async move { session.access_token().await }));
                }
                for task in tasks.iter().take(cancelled as usize) {
                    tokio::task::yield_now().await;
                    task.abort();
                }
                for task in tasks {
                    if let Ok(Ok(token)) = task.await {
                        let now = self.clock.now_for_tests();
                        if token.expires_at().as_system_time() <= now {
                            return Err("an expired token was served".into());
                        }
                    }
                }
            }
            Op::Send401 { who } => {
                let Some(session) = self.session(who) else {
                    return Ok(());
                };
                if let Some(token) = session.cached_access_token() {
                    self.server.revoke_token(token.expose_secret());
                }
                let url = self.server.resource_url("/me");
                let _ = session.send(self.client.http().get(url)).await;
            }
            Op::ServerRevoke { user } => {
                self.server.revoke_subject(USERS[user]);
                self.revoked_by_server[user] = true;
            }
            Op::PasswordChange { user } => {
                // Like most identity providers, a password change signs the user out
                // everywhere: the SDK's refresh token and password are both stale now.
                let next = format!("pw-{user}-{}", rng.next() % 1000);
                self.server.set_user_password(USERS[user], &next);
                self.server.revoke_subject(USERS[user]);
                self.revoked_by_server[user] = true;
                self.server_password[user] = next;
                self.allowed_rejections[user] += 1;
            }
            Op::Invalidate { who } => {
                if let Some(session) = self.session(who) {
                    session.invalidate();
                }
            }
            Op::Login { user, correct } => {
                let password = if correct {
                    self.server_password[user].clone()
                } else {
                    self.allowed_rejections[user] += 1;
                    "wrong".to_owned()
                };
                if let Ok(session) = self.client.login(USERS[user], SecretString::from(password)).await {
                    self.signed_in(user, session);
                }
            }
            Op::Logout { user, with_flight } => {
                let Some(session) = self.client.session(USERS[user]) else {
                    return Ok(());
                };
                let flight = with_flight.then(|| {
                    self.server.inject(Endpoint::Token, Fault::delay_ms(5));
                    session.invalidate();
                    let session = session.clone();
                    tokio::spawn(async move { session.access_token().await })
                });
                let _ = session.logout().await;
                self.logged_out_everywhere(user, &session).await?;
                if let Some(flight) = flight {
                    if let Ok(Ok(_)) = flight.await {
                        // The caller may have been served before the fence; the token must
                        // not be live on the server now.
                        if !self.fake_rejection
                            && !self.dropped_unsaved[user]
                            && self.server.live_refresh_tokens(USERS[user]) != 0
                        {
                            return Err("the in-flight request left a live refresh token".into());
                        }
                    }
                }
            }
            Op::CancelledLogout { user, after_ms } => {
                let Some(session) = self.client.session(USERS[user]) else {
                    return Ok(());
                };
                // The app gives up on logout() (a timeout, the screen went away) while a
                // token request may be in flight; later it logs out again and waits.
                self.server.inject(Endpoint::Token, Fault::delay_ms(3));
                session.invalidate();
                let flight = {
                    let session = session.clone();
                    tokio::spawn(async move { session.access_token().await })
                };
                let _ = tokio::time::timeout(Duration::from_millis(after_ms), session.logout()).await;
                let _ = session.logout().await;
                self.logged_out_everywhere(user, &session).await?;
                let _ = flight.await;
            }
            Op::Restore { user } => {
                // A restore of a session that still holds a valid token proves nothing
                // about the server's view: only the sign-in bookkeeping changes.
                if let Ok(session) = self.client.restore(USERS[user]).await {
                    self.logged_out[user] = false;
                    self.track(user, session);
                }
            }
            Op::Restart => self.restart().await?,
            Op::SecondClient { user, restore } => {
                let second = self
                    .second
                    .get_or_insert_with(|| build_client(&self.config, &self.store, &self.listener))
                    .clone();
                if restore {
                    if let Ok(session) = second.restore(USERS[user]).await {
                        let watch = Arc::new(GenerationWatch::default());
                        session.observe(watch.clone());
                        self.watches.push(watch);
                        self.logged_out[user] = false;
                        self.second_sessions.insert(user, session);
                    }
                } else if let Some(session) = self.second_sessions.get(&user) {
                    let _ = session.access_token().await;
                }
            }
            Op::RacingLogins { user } => {
                // A typo and the right password at once, for the same user.
                self.allowed_rejections[user] += 1;
                let right = self.server_password[user].clone();
                let (a, b) = (self.client.clone(), self.client.clone());
                let (wrong, right) = tokio::join!(
                    a.login(USERS[user], SecretString::from("wrong")),
                    b.login(USERS[user], SecretString::from(right))
                );
                if wrong.is_ok() {
                    return Err("a wrong password signed in".into());
                }
                if let Ok(session) = right {
                    let registered = self.client.session(USERS[user]);
                    if !registered.is_some_and(|r| Arc::ptr_eq(&r, &session)) {
                        return Err(format!(
                            "{}: the signed-in session is not the registered one",
                            USERS[user]
                        ));
                    }
                    self.signed_in(user, session);
                }
            }
            Op::ImportRacingLogout { user } => {
                let Some(tokens) = self.tokens_from_elsewhere(user).await else {
                    return Ok(());
                };
                let old = self.client.session(USERS[user]);
                let import = self.client.import_tokens(USERS[user], TokenParams::new(), tokens);
                let (_, imported) = tokio::join!(logout_of(&old), import);
                match imported {
                    Err(error) if !matches!(error, AuthError::ReauthenticationRequired { .. }) => {
                        return Err(format!("the import failed: {error:?}"))
                    }
                    imported => self.settle_racing_sign_in(user, old, imported).await?,
                }
            }
            Op::SignInRacingLogout { user, via, cancel } => {
                let old = self.client.session(USERS[user]);
                let client = self.client.clone();
                let password = self.server_password[user].clone();
                let server = &self.server;
                let sign_in = async {
                    match via {
                        SignIn::Code => {
                            let request = AuthorizationRequest::new(USERS[user], REDIRECT);
                            let pending = client.authorization_request(request)?;
                            let redirect = browser_login(pending.url(), USERS[user], &password).await;
                            // (A dropped exchange has no outcome to settle here: it finishes
                            // on its own task; tests/session_races.rs checks it.)
                            client.complete_authorization(&pending, &redirect).await
                        }
                        SignIn::Device => {
                            let device = Arc::new(
                                client
                                    .start_device_authorization(USERS[user], TokenParams::new())
                                    .await?,
                            );
                            server.approve_device(device.user_code(), USERS[user]);
                            if cancel {
                                // "Cancel" pressed while the redeeming poll is on its way.
                                let canceller = Arc::clone(&device);
                                tokio::spawn(async move {
                                    tokio::task::yield_now().await;
                                    canceller.cancel();
                                });
                            }
                            client.complete_device_authorization(&device).await
                        }
                    }
                };
                let (_, signed_in) = tokio::join!(logout_of(&old), sign_in);
                // Any failure is allowed (a fault, a cancellation, the fence); what it
                // obtained must then be revoked, which `check` counts at the server.
                self.settle_racing_sign_in(user, old, signed_in).await?;
            }
            Op::PerRequest { callers, logout } => {
                let client = match &self.per_request {
                    Some(client) => client.clone(),
                    None => {
                        let config = self.config.clone().cache_policy(CachePolicy::PerRequest);
                        let client = AuthClient::builder(config)
                            .store(Arc::new(MemoryStore::new()))
                            .build()
                            .map_err(|e| format!("{e:?}"))?;
                        self.per_request = Some(client.clone());
                        client
                    }
                };
                let session = match client.session(PER_REQUEST_USER) {
                    Some(session) => session,
                    None => match client
                        .login(PER_REQUEST_USER, SecretString::from(PER_REQUEST_PASSWORD))
                        .await
                    {
                        Ok(session) => session,
                        Err(_) => return Ok(()),
                    },
                };
                if logout {
                    self.server.inject(Endpoint::Token, Fault::delay_ms(3));
                }
                let requests: Vec<_> = (0..callers)
                    .map(|_| {
                        let session = session.clone();
                        tokio::spawn(async move { session.access_token().await })
                    })
                    .collect();
                if logout {
                    tokio::task::yield_now().await;
                    let _ = session.logout().await;
                }
                for request in requests {
                    if let Ok(Ok(token)) = request.await {
                        if token.expires_at().as_system_time() <= self.clock.now_for_tests() {
                            return Err("an expired per-request token was served".into());
                        }
                    }
                }
                if logout {
                    if session.access_token().await.is_ok() {
                        return Err("a per-request session served a token after logout".into());
                    }
                    // The requests the fence cut off must not leave their refresh tokens live.
                    if !self.fake_rejection && self.server.live_refresh_tokens(PER_REQUEST_USER) != 0 {
                        return Err("a per-request refresh token is live after logout".into());
                    }
                }
            }
            Op::LongAsk { who, secs } => {
                let Some(session) = self.session(who) else {
                    return Ok(());
                };
                // Longer than any token the server issues, asked again and again.
                for _ in 0..12 {
                    let _ = session.access_token_valid_for(Duration::from_secs(secs)).await;
                }
            }
            Op::LateRotation { who, offset_s } => {
                let Some(session) = self.session(who) else {
                    return Ok(());
                };
                let now = self
                    .clock
                    .now_for_tests()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs() as i64;
                let mut headers = reqwest::header::HeaderMap::new();
                let token = format!("rotated-{}", rng.next());
                headers.insert("access-token", token.parse().map_err(|_| "header")?);
                let expiry = (now + offset_s).max(1).to_string();
                headers.insert("expiry", expiry.parse().map_err(|_| "header")?);
                session.observe_response_headers(&headers);
            }
            Op::Store(mode) => {
                self.store.mode.store(mode, Ordering::SeqCst);
                if mode != STORE_OK {
                    self.store_faulted = [true; 2];
                }
            }
            Op::ListenerPanics(on) => self.listener.panics.store(on, Ordering::SeqCst),
            Op::TokenFault(kind) => {
                let fault = match kind {
                    0 => Fault::delay_ms(3),
                    1 => Fault::status(503),
                    2 => Fault::status(429).with_header("Retry-After", "18446744073709551615"),
                    _ => {
                        self.fake_rejection = true;
                        Fault::json(400, serde_json::json!({"error": "invalid_grant"}))
                    }
                };
                self.server.inject(Endpoint::Token, fault);
            }
            Op::NonceRotation => drop(self.server.rotate_dpop_nonce()),
            Op::ClockForward(secs) => self.clock.advance(Duration::from_secs(secs)),
            Op::ClockBack(secs) => self.clock.rewind(Duration::from_secs(secs)),
        }
        Ok(())
    }

    /// After logout() returned for `user` (the second client's session too): nothing
    /// of the identity remains, in memory, in the store or live at the server.
    async fn logged_out_everywhere(&mut self, user: usize, session: &Arc<Session>) -> Result<(), String> {
        if let Some(other) = self.second_sessions.remove(&user) {
            let _ = other.logout().await;
        }
        let key = session.store_key().to_owned();
        if session.cached_access_token().is_some() || session.access_token().await.is_ok() {
            return Err(format!("{} still has a token after logout", USERS[user]));
        }
        if self.store.inner.load(&key).map_err(|e| e.to_string())?.is_some() && !self.store_faulted[user] {
            return Err(format!("{}'s refresh token is still stored after logout", USERS[user]));
        }
        if !self.fake_rejection && !self.dropped_unsaved[user] && self.server.live_refresh_tokens(USERS[user]) != 0 {
            return Err(format!(
                "a refresh token of {} is live on the server after logout",
                USERS[user]
            ));
        }
        if session.state() != SessionState::LoggedOut {
            return Err("the session does not say it is logged out".into());
        }
        self.sessions.remove(&user);
        self.logged_out[user] = !self.store_faulted[user];
        Ok(())
    }

    /// A sign-in for `user` raced the logout of `old` (if any): the old session is
    /// logged out, and the sign-in either installed into the registered session or
    /// left the user signed out (what it obtained revoked, which `check` counts).
    async fn settle_racing_sign_in(
        &mut self,
        user: usize,
        old: Option<Arc<Session>>,
        signed_in: Result<Arc<Session>, AuthError>,
    ) -> Result<(), String> {
        if let Some(old) = &old {
            if let Some(other) = self.second_sessions.remove(&user) {
                let _ = other.logout().await;
            }
            if old.state() != SessionState::LoggedOut {
                return Err("the session does not say it is logged out".into());
            }
            self.sessions.remove(&user);
        }
        match signed_in {
            Ok(session) => {
                let registered = self.client.session(USERS[user]);
                if !registered.is_some_and(|r| Arc::ptr_eq(&r, &session)) {
                    return Err("the signed-in session is not the registered one".into());
                }
                if session.state() == SessionState::LoggedOut {
                    return Err("a sign-in returned a logged-out session".into());
                }
                self.signed_in(user, session);
            }
            Err(_) if old.is_some() => self.logged_out[user] = !self.store_faulted[user],
            Err(_) => {}
        }
        Ok(())
    }

    /// Tokens for `user` obtained outside the SDK (an older app version, another SDK).
    async fn tokens_from_elsewhere(&self, user: usize) -> Option<ImportedTokens> {
        if self.dpop {
            // Another stack's tokens would be bearer tokens (or bound to a key the SDK
            // does not hold); the server refuses this proof-less request anyway.
            return None;
        }
        let text = reqwest::Client::new()
            .post(self.server.token_endpoint())
            .basic_auth("demo-client", Some("demo-secret"))
            .form(&[
                ("grant_type", "password"),
                ("username", USERS[user]),
                ("password", self.server_password[user].as_str()),
            ])
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let body: serde_json::Value = serde_json::from_str(&text).ok()?;
        Some(
            ImportedTokens::new(SecretString::from(body["access_token"].as_str()?))
                .refresh_token(SecretString::from(body["refresh_token"].as_str()?)),
        )
    }

    /// The app restarts: every client and session is dropped, a new client is built on
    /// the same store, and everyone who was signed in is restored. Exactly those come
    /// back: a user who logged out never does; one signed in on a healthy store does
    /// unless the server revoked them.
    async fn restart(&mut self) -> Result<(), String> {
        let was_signed_in: Vec<bool> = (0..USERS.len())
            .map(|user| {
                self.sessions
                    .get(&user)
                    .is_some_and(|s| matches!(s.state(), SessionState::SignedIn { .. }))
            })
            .collect();
        for session in self.sessions.values().chain(self.second_sessions.values()) {
            session.wait_for_refresh().await;
        }
        for user in 0..USERS.len() {
            // A second client's session may hold another sign-in than the store (a
            // newer login replaced its record): it dies with the process, live.
            if self.store_faulted[user] || self.second_sessions.contains_key(&user) {
                self.dropped_unsaved[user] = true;
            }
        }
        self.sessions.clear();
        self.second_sessions.clear();
        self.second = None;
        self.client = build_client(&self.config, &self.store, &self.listener);
        self.machine = self.client.client_credentials_session();
        for user in 0..USERS.len() {
            let restored = self.client.restore(USERS[user]).await;
            match restored {
                Ok(session) => {
                    if self.logged_out[user] {
                        return Err(format!("{} logged out, and a restart brought them back", USERS[user]));
                    }
                    // Offline start: the restore may serve the stored access token without
                    // asking the server, so what it restored is not yet known live: a grant
                    // the server revoked, or an older record left by a failed save (whose
                    // refresh token the unsaved sign-in revoked), stays unseen, and
                    // allowed, until the user's next sign-in.
                    let (revoked, faulted) = (self.revoked_by_server[user], self.store_faulted[user]);
                    self.signed_in(user, session);
                    self.revoked_by_server[user] = revoked;
                    self.store_faulted[user] = faulted;
                }
                Err(AuthError::ReauthenticationRequired { .. })
                    if was_signed_in[user]
                        && !self.store_faulted[user]
                        && !self.revoked_by_server[user]
                        && !self.fake_rejection =>
                {
                    return Err(format!("{} was signed in, and a restart lost them", USERS[user]));
                }
                Err(_) => {}
            }
        }
        Ok(())
    }

    /// Invariants that hold after every step.
    fn check(&self) -> Result<(), String> {
        let stats = self.server.stats();
        for (i, user) in USERS.iter().enumerate() {
            let rejected = stats.rejected_passwords_by_user.get(*user).copied().unwrap_or(0);
            if rejected > self.allowed_rejections[i] {
                return Err(format!(
                    "{user}: {rejected} wrong passwords reached the server, the schedule allowed {}",
                    self.allowed_rejections[i]
                ));
            }
            if let Some(session) = self.sessions.get(&i) {
                if let Some(stored) = stored_refresh_token(&self.store.inner, session.store_key()) {
                    if !self.revoked_by_server[i]
                        && !self.store_faulted[i]
                        && !self.server.refresh_token_is_live(&stored)
                    {
                        return Err(format!("{user}: the stored refresh token is dead on the server"));
                    }
                }
            }
        }
        for (i, user) in USERS.iter().enumerate() {
            // No live refresh token that no session or store owns: at most one per
            // signed-in session, plus the stored one if there is one.
            if self.fake_rejection || self.store_faulted[i] || self.dropped_unsaved[i] {
                continue;
            }
            let holders = self
                .sessions
                .get(&i)
                .into_iter()
                .chain(self.second_sessions.get(&i))
                .filter(|s| matches!(s.state(), SessionState::SignedIn { .. }))
                .count();
            let stored = self.store_keys[i]
                .as_deref()
                .and_then(|key| stored_refresh_token(&self.store.inner, key))
                .is_some();
            let owners = holders + usize::from(stored);
            let live = self.server.live_refresh_tokens(user);
            if live > owners {
                return Err(format!(
                    "{user}: {live} live refresh tokens, {holders} signed-in sessions and {} stored to own them",
                    usize::from(stored)
                ));
            }
            // A session needs the user only when the server gave a reason.
            if let Some(session) = self.sessions.get(&i) {
                if session.state() == SessionState::ReauthenticationRequired && !self.revoked_by_server[i] {
                    return Err(format!(
                        "{user}: the session needs the user, and the server never revoked them"
                    ));
                }
            }
        }
        // A per-request session keeps at most the refresh token of its last answer.
        if !self.fake_rejection && self.server.live_refresh_tokens(PER_REQUEST_USER) > 1 {
            return Err("the per-request session left more than one refresh token live".into());
        }
        if self.dpop {
            self.check_dpop()?;
        }
        for watch in &self.watches {
            let regressions = watch.regressions.lock().unwrap();
            if !regressions.is_empty() {
                return Err(format!("a token generation went back: {regressions:?}"));
            }
        }
        Ok(())
    }
}

/// Logs `old` out, if there is a session to log out.
async fn logout_of(old: &Option<Arc<Session>>) {
    if let Some(old) = old {
        let _ = old.logout().await;
    }
}

impl World {
    /// DPoP invariants: tokens are bound to their session's own key, a stored bound
    /// refresh token has the key it is bound to beside it, and the server refused no
    /// proof but for a nonce it had rotated or an `iat` off after a clock jump (both
    /// retried once with the server's answer).
    fn check_dpop(&self) -> Result<(), String> {
        let sessions = self
            .sessions
            .values()
            .chain(self.second_sessions.values())
            .chain([&self.machine]);
        for session in sessions {
            let Some(token) = session.cached_access_token() else {
                continue;
            };
            // A token the server never issued (a late rotation's) has no binding to check.
            let Some(bound) = self.server.dpop_binding(token.expose_secret()) else {
                continue;
            };
            let jkt = session.dpop_thumbprint().map_err(|e| e.to_string())?;
            if jkt.as_deref() != Some(bound.as_str()) {
                return Err(format!(
                    "{}: a token bound to another key ({jkt:?})",
                    session.identity()
                ));
            }
        }
        for (i, user) in USERS.iter().enumerate() {
            let key = match self.sessions.get(&i) {
                Some(session) => session.store_key().to_owned(),
                None => continue,
            };
            let Some(raw) = self.store.inner.load(&key).map_err(|e| e.to_string())? else {
                continue;
            };
            let record: serde_json::Value = serde_json::from_str(raw.expose_secret()).map_err(|e| e.to_string())?;
            let Some(refresh) = record["refresh_token"].as_str() else {
                continue;
            };
            if let Some(bound) = self.server.dpop_binding(refresh) {
                let has_key = match &self.keys {
                    None => record["dpop_key"].is_string(),
                    // A logout's removal of this record is pending on a failing store,
                    // its key already deleted: the next start finds the key gone and
                    // needs the user, who was logged out anyway.
                    Some(_) if self.store_faulted[i] => record["dpop_key_alias"].is_string(),
                    Some(keys) => record["dpop_key_alias"]
                        .as_str()
                        .and_then(|alias| keys.thumbprint(alias))
                        .is_some_and(|jkt| jkt == bound),
                };
                if record["dpop_jkt"] != bound.as_str() || !has_key {
                    let deleted = self.keys.as_ref().map(|keys| keys.deleted());
                    return Err(format!(
                        "{user}: a stored bound refresh token without its key (record {:?} {:?}, bound {bound}, deleted {deleted:?}, faulted {:?})",
                        record["dpop_key_alias"], record["dpop_jkt"], self.store_faulted
                    ));
                }
            }
        }
        if let Some(keys) = &self.keys {
            self.check_platform_keys(keys)?;
        }
        let refused: Vec<_> = self
            .server
            .stats()
            .dpop_rejections
            .into_iter()
            .filter(|(reason, _)| reason != "nonce" && reason != "iat_outside_window")
            .collect();
        if !refused.is_empty() {
            return Err(format!("proofs refused: {refused:?}"));
        }
        Ok(())
    }
}

impl World {
    /// A platform key lives exactly as long as what needs it: every key in the store
    /// is held by a live session (of any client) or named by a stored record (a
    /// session's, or a queued revocation's). A session whose unsaved record died with
    /// the app leaves its key behind (the keystore cannot be listed to sweep it), so
    /// such a seed stops asking.
    fn check_platform_keys(&self, keys: &PlatformKeys) -> Result<(), String> {
        if self.dropped_unsaved.iter().any(|&dropped| dropped) {
            return Ok(());
        }
        let mut held: Vec<String> = Vec::new();
        let sessions = self
            .sessions
            .values()
            .chain(self.second_sessions.values())
            .chain([&self.machine]);
        let per_request = self
            .per_request
            .as_ref()
            .and_then(|client| client.session(PER_REQUEST_USER));
        for session in sessions.chain(per_request.iter()) {
            held.extend(session.dpop_thumbprint().map_err(|e| e.to_string())?);
        }
        let stored = self.store.inner.keys().map_err(|e| e.to_string())?.unwrap_or_default();
        let mut named: Vec<String> = Vec::new();
        for key in stored {
            let Some(raw) = self.store.inner.load(&key).map_err(|e| e.to_string())? else {
                continue;
            };
            if let Ok(record) = serde_json::from_str::<serde_json::Value>(raw.expose_secret()) {
                named.extend(record["dpop_key_alias"].as_str().map(str::to_owned));
            }
        }
        for (alias, jkt) in keys.thumbprints() {
            if !held.contains(&jkt) && !named.contains(&alias) {
                return Err(format!(
                    "a DPoP key nothing holds was left in the key store ({alias}, {jkt}; held {held:?}, named {named:?}, created {:?}, deleted {:?})",
                    keys.created(),
                    keys.deleted()
                ));
            }
        }
        Ok(())
    }
}

/// Reads a manual clock (tests only need `now`).
trait NowForTests {
    fn now_for_tests(&self) -> std::time::SystemTime;
}

impl NowForTests for ManualClock {
    fn now_for_tests(&self) -> std::time::SystemTime {
        tokenkeeper::Clock::now(self)
    }
}

async fn run_seed(seed: u64, verbose: bool) -> Result<(), String> {
    let mut rng = Rng(seed);
    // Half of the DPoP seeds keep their keys in a platform key store.
    let platform_keys = (seed / 6) % 2 == 1;
    let dpop = match seed % 6 {
        1 => Dpop::Required {
            nonces: false,
            platform_keys,
        },
        4 => Dpop::Required {
            nonces: true,
            platform_keys,
        },
        _ => Dpop::Off,
    };
    let mut world = World::new(dpop).await;
    if verbose {
        println!("seed {seed}: DPoP {dpop:?}");
    }
    let mut log = Vec::new();
    // Start from a realistic place: both users signed in.
    for user in 0..USERS.len() {
        world.run(&Op::Login { user, correct: true }, &mut rng).await?;
    }
    let steps = std::env::var("TOKENKEEPER_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(STEPS);
    for step in 0..steps {
        let op = random_op(&mut rng);
        log.push(format!("{step:2}: {op:?}"));
        if verbose {
            println!("seed {seed} {}", log.last().map(String::as_str).unwrap_or_default());
        }
        let before = world.token_requests();
        let outcome = tokio::time::timeout(WATCHDOG, async {
            world.run(&op, &mut rng).await?;
            // Background refreshes finish before the invariants are read.
            for session in world
                .sessions
                .values()
                .chain(world.second_sessions.values())
                .chain([&world.machine])
            {
                session.wait_for_refresh().await;
            }
            Ok::<(), String>(())
        })
        .await;
        let result = match outcome {
            Err(_) => Err(format!("step did not finish within {WATCHDOG:?} (deadlock?)")),
            Ok(result) => result.and_then(|()| world.check()),
        };
        let spent = world.token_requests().saturating_sub(before);
        let result = result.and_then(|()| {
            if spent > MAX_TOKEN_REQUESTS_PER_STEP {
                Err(format!("{spent} token requests in one step"))
            } else {
                Ok(())
            }
        });
        if let Err(why) = result {
            return Err(format!(
                "seed {seed} failed at step {step}: {why}\nschedule:\n{}\nreplay alone: TOKENKEEPER_SEED={seed} cargo test --test interleavings -- --nocapture",
                log.join("\n")
            ));
        }
    }
    Ok(())
}

/// The store and listener panic on purpose; keep those out of the output so a real
/// panic stands out.
fn quiet_deliberate_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        if !message.ends_with("crashed") {
            default(info);
        }
    }));
}

#[test]
fn randomized_interleavings_keep_every_invariant() {
    quiet_deliberate_panics();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if let Some(seed) = std::env::var("TOKENKEEPER_SEED").ok().and_then(|s| s.parse().ok()) {
        if let Err(failure) = runtime.block_on(run_seed(seed, true)) {
            panic!("{failure}");
        }
        return;
    }
    let seeds: u64 = std::env::var("TOKENKEEPER_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let first: u64 = std::env::var("TOKENKEEPER_FIRST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let started = std::time::Instant::now();
    let failures = runtime.block_on(async {
        let mut failures = Vec::new();
        let mut pending = tokio::task::JoinSet::new();
        let mut next = first;
        let end = first + seeds;
        while next < end || !pending.is_empty() {
            while next < end && pending.len() < 8 {
                let seed = next;
                pending.spawn(async move { run_seed(seed, false).await });
                next += 1;
            }
            if let Some(done) = pending.join_next().await {
                match done {
                    Ok(Ok(())) => {}
                    Ok(Err(failure)) => failures.push(failure),
                    Err(panicked) => failures.push(format!("a seed panicked: {panicked}")),
                }
                if failures.len() >= 3 {
                    break;
                }
            }
        }
        failures
    });
    println!("{seeds} seeds from {first} in {:.1} s", started.elapsed().as_secs_f64());
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
