//! `tokenkeeper-devserver`: a small in-memory OAuth2 authorization server and
//! protected resource for tokenkeeper's tests, demo, benchmarks and the Kotlin
//! JVM tests. It always binds `127.0.0.1`. Never ship it in an app.
//!
//! | route | what |
//! | --- | --- |
//! | `POST /oauth2/token` | RFC 6749 token endpoint: client credentials, password, refresh token |
//! | `POST /oauth2/revoke` | RFC 7009 revocation |
//! | `GET/POST /oauth2/authorize` | RFC 6749 §4.1 authorization endpoint: PKCE S256 required, `iss` in the redirect (RFC 9207); POST with `username`/`password` is the browser-less test login |
//! | `POST /oauth2/device_authorization` | RFC 8628 device authorization; `GET/POST /device` is the verification page |
//! | `GET /.well-known/oauth-authorization-server` | RFC 8414 metadata (also at `/.well-known/openid-configuration`) |
//! | `GET /oauth2/jwks` | the ID token signing keys (JWK Set, `Cache-Control: max-age`); ID tokens are issued for scope `openid`, see [`IdTokenFault`] |
//! | `POST /oauth2/par` | RFC 9126 pushed authorization requests (201 with `request_uri`); `require_pushed_authorization_requests` refuses the others |
//! | (no route) | [`DevServer::logout_token`] mints OIDC back-channel logout tokens, valid or forged ([`LogoutTokenFault`]); ID tokens carry the [`session_id`] as `sid` |
//! | `GET /oauth2/logout` | OIDC RP-initiated logout: revokes the `id_token_hint` subject's tokens, 303 to a registered `post_logout_redirect_uri` with `state` |
//! | any `/api/{*path}` | bearer-protected resource (`/api/admin...` needs scope `admin`) |
//! | `/_admin/...` | admin API, see below |
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use tokenkeeper_devserver::{DevServer, DevServerConfig, Endpoint, Fault};
//!
//! let server = DevServer::start(DevServerConfig::default()).await?;
//! server.inject(Endpoint::Token, Fault::status(503).with_header("Retry-After", "1"));
//! let url = server.token_endpoint(); // http://127.0.0.1:PORT/oauth2/token
//! # let _ = url;
//! # Ok(()) }
//! ```
//!
//! # Admin HTTP API
//!
//! `GET /_admin/stats`, `POST /_admin/reset-stats`,
//! `POST /_admin/revoke-subject?subject=alice`, `POST /_admin/revoke-all`,
//! `POST /_admin/revoke-token?token=...`,
//! `POST /_admin/set-password?username=...&password=...`,
//! `POST /_admin/fault?endpoint=token|revocation|resource` with a JSON body such as
//! `{"kind":"status","status":503,"body":"...","headers":[["Retry-After","1"]]}`,
//! `{"kind":"delay","millis":200}`, `{"kind":"hang"}`, `{"kind":"drop"}`,
//! `{"kind":"partial_body"}` or `{"kind":"oversized_body","bytes":1048576}`, and
//! `POST /_admin/clear-faults`.

mod admin;
mod authorize;
mod config;
mod device;
mod dpop;
mod faults;
mod id_token;
pub mod jose;
mod logout_token;
mod metadata;
mod oauth;
mod resource;
mod revocation;
mod state;
mod token_endpoint;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::State;
use axum::http::header::DATE;
use axum::http::HeaderValue;
use axum::response::Response;
use axum::routing::{any, get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::{
    tenant_client_id, tenant_client_secret, ClientSpec, DevServerConfig, RotationSpec, UserSpec, DEVICE_CODE_GRANT,
    NATIVE_REDIRECT_URIS,
};
pub use dpop::DpopSpec;
pub use faults::{Endpoint, Fault};
pub use id_token::IdTokenFault;
pub use logout_token::{session_id, LogoutTokenFault, BACKCHANNEL_LOGOUT_EVENT};
pub use state::{RevocationRecord, Stats};

use state::AppState;

/// A running development server. Dropping it (or [`DevServer::shutdown`])
/// stops the server task.
pub struct DevServer {
    addr: SocketAddr,
    state: Arc<AppState>,
    shutdown: watch::Sender<bool>,
    /// The task serving the listener; `None` while [`stop`](DevServer::stop)ped.
    serving: Option<tokio::task::JoinHandle<()>>,
}

impl DevServer {
    /// Starts a server on a free port of `127.0.0.1`, serving in a task
    /// spawned on the current Tokio runtime.
    pub async fn start(config: DevServerConfig) -> std::io::Result<DevServer> {
        Self::start_on(config, 0).await
    }

    /// Starts a server on `127.0.0.1:port` (`0` picks a free port).
    pub async fn start_on(config: DevServerConfig, port: u16) -> std::io::Result<DevServer> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
        let addr = listener.local_addr()?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let state = Arc::new(AppState::new(config, format!("http://{addr}"), shutdown_rx));
        let serving = Some(serve(listener, Arc::clone(&state)));
        Ok(DevServer {
            addr,
            state,
            shutdown,
            serving,
        })
    }

    /// Stops listening, as an unreachable server: connections are refused and
    /// in-flight requests ended, while every token, user, code and counter is kept
    /// for [`resume`](Self::resume). Returns once the port is closed.
    pub async fn stop(&mut self) {
        self.shutdown.send_replace(true);
        if let Some(task) = self.serving.take() {
            let _ = task.await;
        }
    }

    /// Listens again on the same port after [`stop`](Self::stop), with the state it
    /// had. Fails if the port was taken meanwhile.
    pub async fn resume(&mut self) -> std::io::Result<()> {
        if self.serving.is_some() {
            return Ok(());
        }
        let listener = TcpListener::bind(self.addr).await?;
        self.shutdown.send_replace(false);
        self.serving = Some(serve(listener, Arc::clone(&self.state)));
        Ok(())
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.state.base_url.clone()
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/oauth2/token`.
    pub fn token_endpoint(&self) -> String {
        format!("{}/oauth2/token", self.state.base_url)
    }

    /// `http://127.0.0.1:PORT/oauth2/revoke`.
    pub fn revocation_endpoint(&self) -> String {
        format!("{}/oauth2/revoke", self.state.base_url)
    }

    /// The protected resource at `path`, e.g. `resource_url("/me")` is
    /// `http://127.0.0.1:PORT/api/me`.
    pub fn resource_url(&self, path: &str) -> String {
        if path.starts_with('/') || path.is_empty() {
            format!("{}/api{path}", self.state.base_url)
        } else {
            format!("{}/api/{path}", self.state.base_url)
        }
    }

    /// A snapshot of the statistics.
    pub fn stats(&self) -> Stats {
        self.state.lock().stats.clone()
    }

    /// Zeroes the statistics.
    pub fn reset_stats(&self) {
        self.state.lock().stats = Stats::default();
    }

    /// Queues `fault` for one upcoming request to `endpoint` (first in, first out).
    pub fn inject(&self, endpoint: Endpoint, fault: Fault) {
        self.state.lock().faults.entry(endpoint).or_default().push_back(fault);
    }

    /// Drops every queued fault.
    pub fn clear_faults(&self) {
        self.state.lock().faults.clear();
    }

    /// Revokes every access and refresh token of `subject` (a username, or a
    /// client id for client-credentials tokens): "logged out on another device".
    pub fn revoke_subject(&self, subject: &str) {
        self.state.lock().revoke_subject(subject);
    }

    /// Revokes every access and refresh token issued so far (a key rollover, an
    /// incident): every client's next request is a 401.
    pub fn revoke_all(&self) {
        self.state.lock().revoke_all();
    }

    /// Revokes one access or refresh token (a refresh token takes the access
    /// tokens issued with it along). Unknown tokens are ignored.
    pub fn revoke_token(&self, token: &str) {
        self.state.lock().revoke(token, None);
    }

    /// Changes a user's password (adds the user if unknown). Existing tokens
    /// stay valid; combine with [`DevServer::revoke_subject`] if needed.
    pub fn set_user_password(&self, username: &str, password: &str) {
        self.state.lock().users.insert(username.to_owned(), password.to_owned());
    }

    /// `http://127.0.0.1:PORT/oauth2/authorize`.
    pub fn authorization_endpoint(&self) -> String {
        format!("{}/oauth2/authorize", self.state.base_url)
    }

    /// `http://127.0.0.1:PORT/oauth2/device_authorization`.
    pub fn device_authorization_endpoint(&self) -> String {
        format!("{}/oauth2/device_authorization", self.state.base_url)
    }

    /// Approves the pending device code `user_code` for `username` (what the
    /// user does on the verification page). False if no such code is pending.
    pub fn approve_device(&self, user_code: &str, username: &str) -> bool {
        self.state
            .lock()
            .set_device_status(user_code, device::DeviceStatus::Approved(username.to_owned()))
    }

    /// Denies the pending device code `user_code`; its next poll gets `access_denied`.
    pub fn deny_device(&self, user_code: &str) -> bool {
        self.state
            .lock()
            .set_device_status(user_code, device::DeviceStatus::Denied)
    }

    /// The server is under load: the next poll for `user_code` gets `slow_down`
    /// and the code's interval grows by 5 s (RFC 8628 §3.5).
    pub fn throttle_device(&self, user_code: &str) -> bool {
        let mut inner = self.state.lock();
        inner
            .device_by_user_code(user_code)
            .map(|d| d.throttle = true)
            .is_some()
    }

    /// Ends the lifetime of `user_code` now; its next poll gets `expired_token`.
    pub fn expire_device(&self, user_code: &str) -> bool {
        let now = self.state.now();
        let mut inner = self.state.lock();
        inner
            .device_by_user_code(user_code)
            .map(|d| d.expires_at = now)
            .is_some()
    }

    /// The polling interval the server now expects for `user_code`, in seconds.
    pub fn device_interval(&self, user_code: &str) -> Option<u64> {
        let mut inner = self.state.lock();
        inner.device_by_user_code(user_code).map(|d| d.interval.as_secs())
    }

    /// How many tokens of `subject` the server would still accept: unrevoked,
    /// unexpired access tokens plus unrevoked refresh tokens. Zero after a complete
    /// logout.
    pub fn live_tokens(&self, subject: &str) -> usize {
        let now = self.state.now();
        let inner = self.state.lock();
        let access = inner
            .access
            .values()
            .filter(|t| t.subject == subject && !t.revoked && t.expires_at > now)
            .count();
        let refresh = inner
            .refresh
            .values()
            .filter(|t| t.subject == subject && !t.revoked)
            .count();
        access + refresh
    }

    /// How many refresh tokens of `subject` the server would still accept.
    pub fn live_refresh_tokens(&self, subject: &str) -> usize {
        let inner = self.state.lock();
        inner
            .refresh
            .values()
            .filter(|t| t.subject == subject && !t.revoked)
            .count()
    }

    /// Whether the server would accept `token` in a refresh-token grant now.
    pub fn refresh_token_is_live(&self, token: &str) -> bool {
        self.state.lock().refresh.get(token).is_some_and(|t| !t.revoked)
    }

    /// Issues a new DPoP nonce (RFC 9449 §8.2): the next proof carrying the old one
    /// is answered with `use_dpop_nonce` and the new value in `DPoP-Nonce`.
    pub fn rotate_dpop_nonce(&self) -> String {
        self.state.lock().dpop.rotate_nonce()
    }

    /// The DPoP key thumbprint `token` (an access or refresh token) is bound to, if any.
    pub fn dpop_binding(&self, token: &str) -> Option<String> {
        let inner = self.state.lock();
        match inner.access.get(token) {
            Some(access) => access.jkt.clone(),
            None => inner.refresh.get(token).and_then(|r| r.jkt.clone()),
        }
    }

    /// `http://127.0.0.1:PORT`: the issuer (unless `metadata_issuer` overrides it).
    pub fn issuer(&self) -> String {
        self.state.issuer()
    }

    /// `http://127.0.0.1:PORT/oauth2/jwks`: the ID token signing keys.
    pub fn jwks_uri(&self) -> String {
        format!("{}/oauth2/jwks", self.state.base_url)
    }

    /// Replaces the ID token signing key; the key set publishes only the new one.
    /// Returns the new `kid`.
    pub fn rotate_signing_key(&self) -> String {
        self.state.lock().keys.rotate()
    }

    /// The `kid` ID tokens are signed with now.
    pub fn signing_kid(&self) -> String {
        self.state.lock().keys.current.kid().to_owned()
    }

    /// A logout token (OIDC Back-Channel Logout 1.0 §2.4) for `client_id`'s sessions
    /// of `subject` and/or `sid` (see [`session_id`]), signed with the ID token key
    /// and spoiled by `fault` if given; each has a new `jti`.
    pub fn logout_token(
        &self,
        client_id: &str,
        subject: Option<&str>,
        sid: Option<&str>,
        fault: Option<LogoutTokenFault>,
    ) -> String {
        logout_token::mint(&self.state, client_id, subject, sid, fault)
    }

    /// Spoils the next ID token issued (first in, first out).
    pub fn inject_id_token_fault(&self, fault: IdTokenFault) {
        self.state.lock().keys.faults.push_back(fault);
    }

    /// Stops the server: no new connections, in-flight requests (including
    /// hanging ones) are ended.
    pub fn shutdown(self) {
        // Drop does the work.
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

impl std::fmt::Debug for DevServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevServer")
            .field("base_url", &self.state.base_url)
            .finish_non_exhaustive()
    }
}

/// Serves `listener` on a task until the shutdown signal.
fn serve(listener: TcpListener, state: Arc<AppState>) -> tokio::task::JoinHandle<()> {
    let app = router(Arc::clone(&state));
    tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move { state.shutdown_signal().await });
        if let Err(e) = serve.await {
            eprintln!("tokenkeeper-devserver: server error: {e}");
        }
    })
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/oauth2/token", post(token_endpoint::token))
        .route("/oauth2/revoke", post(revocation::revoke))
        .route("/oauth2/authorize", get(authorize::login_page).post(authorize::login))
        .route("/oauth2/device_authorization", post(device::authorize))
        .route("/device", get(device::verification_page).post(device::verify))
        .route("/oauth2/jwks", get(id_token::jwks))
        .route("/oauth2/logout", get(id_token::end_session))
        .route("/oauth2/par", post(authorize::push))
        .route("/.well-known/oauth-authorization-server", get(metadata::metadata))
        .route("/.well-known/openid-configuration", get(metadata::metadata))
        .route("/api/{*path}", any(resource::resource))
        .merge(admin::router())
        .layer(axum::middleware::map_response_with_state(
            Arc::clone(&state),
            server_date,
        ))
        .with_state(state)
}

/// Sets `Date` from the server clock (real clock + `clock_offset_secs`) unless
/// the response (an injected fault) already has one.
async fn server_date(State(state): State<Arc<AppState>>, mut response: Response) -> Response {
    // RFC 9449 §8.2: a server that wants nonces may send the current one with any answer.
    if state.config.dpop.nonces && !response.headers().contains_key("dpop-nonce") {
        let nonce = state.lock().dpop.current_nonce();
        if let Ok(value) = HeaderValue::from_str(&nonce) {
            response.headers_mut().insert("dpop-nonce", value);
        }
    }
    if !response.headers().contains_key(DATE) {
        let date = httpdate::fmt_http_date(state.now());
        if let Ok(value) = HeaderValue::from_str(&date) {
            response.headers_mut().insert(DATE, value);
        }
    }
    response
}
