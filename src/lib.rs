//! # tokenkeeper
//!
//! OAuth 2.0 token management for apps: one [`Session`] per identity that caches its
//! token, refreshes it before it expires, lets any number of concurrent callers share
//! one token request, and after a revocation (the user logged out on another device)
//! silently gets a new token and retries once.
//!
//! Every app starts the same way: an [`AuthConfig`] names the authorization server
//! and the client, and [`AuthClient::builder`] fixes the store, event listener and
//! HTTP client before the first session exists. The kinds of app below differ
//! in whose identity they use and who sends the API requests.
//!
//! ## An app with a user (browser sign-in with PKCE, refresh tokens)
//!
//! The user signs in in the system browser: the authorization code flow with PKCE
//! (RFC 7636, RFC 8252), which [`signin`] implements. The app never sees a
//! password; the refresh token is kept in a [`TokenStore`], so the next start
//! resumes with [`AuthClient::restore`]. Only
//! [`AuthError::ReauthenticationRequired`] means "show the sign-in screen".
//!
//! ```no_run
//! use std::sync::Arc;
//! use tokenkeeper::signin::{AuthorizationRequest, LoopbackRedirect};
//! use tokenkeeper::{AuthClient, AuthConfig, AuthError, MemoryStore, Session};
//!
//! # fn open_in_browser(_url: &str) {}
//! # async fn run() -> Result<(), AuthError> {
//! // Endpoints and issuer from the server's metadata (RFC 8414).
//! let config = AuthConfig::discover("https://as.example.com", "desktop-app")
//!     .await?
//!     .scopes(["profile", "offline_access"]);
//! let client = AuthClient::builder(config)
//!     .store(Arc::new(MemoryStore::new())) // KeyringStore (the OS keychain) in a real app
//!     .build()?;
//!
//! let me: Arc<Session> = match client.restore("me").await {
//!     Ok(session) => session,
//!     Err(AuthError::ReauthenticationRequired { .. }) => {
//!         // Desktop: a one-shot listener on 127.0.0.1 (RFC 8252 §7.3); phones use
//!         // their own redirect URI (docs/android.md, docs/ios.md).
//!         let listener = LoopbackRedirect::bind().await?;
//!         let pending = client.authorization_request(AuthorizationRequest::new("me", listener.redirect_uri()))?;
//!         open_in_browser(pending.url());
//!         listener.complete(&client, &pending).await? // the browser's page tells the outcome
//!     }
//!     Err(other) => return Err(other),
//! };
//! match me.send(client.http().get("https://api.example.com/me")).await {
//!     Ok(response) => println!("HTTP {}", response.status()),
//!     Err(AuthError::ReauthenticationRequired { .. }) => println!("please sign in again"),
//!     Err(e) if e.is_retryable() => println!("offline? try again later: {e}"),
//!     Err(e) => return Err(e),
//! }
//! me.logout().await?; // RFC 7009 revocation, and the store entry is removed
//! # Ok(()) }
//! ```
//!
//! Command-line tools and TVs use the device grant
//! ([`AuthClient::start_device_authorization`]). The resource owner password grant
//! ([`AuthClient::login`]) is **legacy**, for servers that cannot offer the browser
//! flow yet: RFC 9700 §2.4 says it must not be used (the app handles the user's
//! password, and multi-factor or federated sign-in is impossible).
//!
//! ## A service with its own identity (client credentials, RFC 6749 §4.4)
//!
//! A backend job or daemon calls an API as itself. No user and no store: the client
//! secret is in memory, and the token is cached and renewed before it expires.
//!
//! ```no_run
//! use tokenkeeper::{AuthClient, AuthConfig, SecretString};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let secret = std::env::var("CLIENT_SECRET")?; // never hard-code it
//! let client = AuthClient::new(
//!     AuthConfig::new("https://as.example.com/oauth2/token", "billing-worker")
//!         .client_secret(SecretString::from(secret))
//!         .scopes(["invoices:read"]),
//! )?;
//! let service = client.client_credentials_session();
//! for id in ["inv-1", "inv-2"] {
//!     // One token request for the whole loop; a 401 after a revocation is recovered
//!     // and the GET re-sent once.
//!     let url = format!("https://api.example.com/invoices/{id}");
//!     let response = service.send(client.http().get(url)).await?;
//!     println!("{id}: HTTP {}", response.status());
//! }
//! # Ok(()) }
//! ```
//!
//! ## An app with its own HTTP stack
//!
//! The app sends requests itself (another HTTP client, a gRPC channel, a WebSocket
//! handshake). It asks the session for the token and, after a 401, hands the failed
//! token and the `WWW-Authenticate` values to [`Session::handle_unauthorized`], which
//! makes the same decision [`Session::send`] makes.
//!
//! ```no_run
//! use tokenkeeper::{AccessToken, AuthError, ExposeSecret, Session};
//!
//! // `my_http_get(url, authorization)` stands for the app's own client; it returns the
//! // status, the `WWW-Authenticate` values and the body.
//! # async fn my_http_get(url: &str, authorization: &str) -> (u16, Vec<String>, String) { unimplemented!() }
//! async fn get(session: &Session, url: &str) -> Result<String, AuthError> {
//!     let token: AccessToken = session.access_token().await?;
//!     let (status, challenges, body) = my_http_get(url, &format!("Bearer {}", token.expose_secret())).await;
//!     if status != 401 {
//!         return Ok(body);
//!     }
//!     match session.handle_unauthorized(&token, &challenges).await? {
//!         // The token was revoked or expired: retry once with the new one.
//!         Some(renewed) => Ok(my_http_get(url, &format!("Bearer {}", renewed.expose_secret())).await.2),
//!         // The 401 is not about the token: the caller sees it as it is.
//!         None => Ok(body),
//!     }
//! }
//! ```
//!
//! ## Errors and refusals
//!
//! [`AuthError`] is named for what the app should do, its message names the party
//! that failed (the authorization server, the resource server, the token store) and
//! never holds a secret, and [`std::error::Error::source`] leads to the underlying
//! I/O, TLS, JSON or store error. A 403 is not an error: [`Session::send`] returns
//! the response whole, and [`insufficient_scope`] reads the RFC 6750 challenge in it.
//!
//! ```no_run
//! use std::error::Error;
//! # async fn run(session: &tokenkeeper::Session, http: &reqwest::Client) {
//! match session.send(http.get("https://api.example.com/admin")).await {
//!     Ok(response) if response.status() == 403 => match tokenkeeper::insufficient_scope(&response) {
//!         Some(refusal) => println!("needs the scope {:?}", refusal.scope),
//!         None => println!("forbidden: {}", response.text().await.unwrap_or_default()),
//!     },
//!     Ok(response) => println!("HTTP {}", response.status()),
//!     Err(error) => {
//!         eprintln!("{error}");
//!         let mut cause = error.source();
//!         while let Some(c) = cause {
//!             eprintln!("  caused by: {c}");
//!             cause = c.source();
//!         }
//!     }
//! }
//! # }
//! ```
//!
//! Layout: the public surface lives in `src/*.rs`; the protocol, transport, cache,
//! single-flight and recovery logic in `src/internal/`. The UniFFI adapters for
//! Kotlin and Swift are the separate crate `tokenkeeper-ffi` (`bindings/ffi/`), so a
//! Rust app that depends on this crate compiles no FFI.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod authorization_headers;
mod client;
mod clock;
mod config;
mod dpop;
mod error;
mod events;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod identity;
mod insufficient_scope;
mod internal;
pub mod oidc;
pub mod seal;
mod session;
pub mod signin;
mod state;
mod storage;
// The store's old module path, kept so code written against it still resolves.
use storage as store;
mod token;
pub mod transport;

pub use authorization_headers::AuthorizationHeaders;
pub use client::{AuthClient, AuthClientBuilder};
pub use clock::{Clock, ManualClock, Sleep, SystemClock};
pub use config::{
    AuthConfig, CachePolicy, ClientAuthMethod, RecoveryPolicy, RetryPolicy, TokenRotation, DEFAULT_REFRESH_MARGIN,
    DEFAULT_STORE_TIMEOUT, DEFAULT_TOKEN_LIFETIME, MAX_TOKEN_LIFETIME,
};
pub use dpop::{DpopKey, DpopKeyError, DpopKeyStore, DpopMode, PublicJwk, SoftwareDpopKey};
pub use error::{AuthError, ErrorSource, JwtCheck, JwtError, ServerError};
pub use events::{AuthEvent, AuthEventListener};
pub use identity::{Identity, Subject, TokenParams};
#[cfg(feature = "reqwest")]
pub use insufficient_scope::insufficient_scope;
pub use insufficient_scope::InsufficientScope;
pub use session::{is_replay_safe, AccessTokenFuture, Replay, Session};
pub use state::{SessionState, TokenChange, TokenObserver};
pub use storage::{
    Deleted, FileStore, KeyringStore, Lease, LocalRefreshLock, LockError, MemoryStore, RecordStore, RefreshLock,
    SharedToken, SharedTokens, StoreError, StoreFuture, TokenStore, TokenStoreRecords, Versioned, Written,
};
pub use token::{AccessToken, Timestamp, TokenType};

/// Re-exported so apps can read a token ([`ExposeSecret`]) and pass secrets
/// ([`SecretString`]) without depending on `secrecy` themselves.
pub use secrecy::{ExposeSecret, SecretString};
