//! # tokenkeeper
//!
//! OAuth 2.0 token management for apps: one [`Session`] per identity that caches its
//! token, refreshes it before it expires, lets any number of concurrent callers share
//! one token request, and after a revocation (the user logged out on another device)
//! silently gets a new token and retries once.
//!
//! ```no_run
//! use tokenkeeper::{AuthClient, AuthConfig};
//! use secrecy::SecretString;
//! # async fn run() -> Result<(), tokenkeeper::AuthError> {
//! let client = AuthClient::new(
//!     AuthConfig::new("https://as.example.com/oauth2/token", "my-client")
//!         .client_secret(SecretString::from("…"))
//!         .scopes(["read"]),
//! )?;
//! let machine = client.client_credentials_session();
//! let token = machine.access_token().await?;
//! println!("token valid until {}", token.expires_at());
//! # Ok(()) }
//! ```
//!
//! Layout: the public surface lives in `src/*.rs`; the protocol, transport, cache,
//! single-flight and recovery logic in `src/internal/`; the UniFFI adapters for
//! Kotlin and Swift in `src/ffi/`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod clock;
mod config;
mod error;
mod events;
pub mod ffi;
mod identity;
mod internal;
mod session;
mod state;
mod storage;
// The store's old module path, kept so code written against it still resolves.
use storage as store;
mod token;

pub use client::{AuthClient, AuthClientBuilder};
pub use clock::{Clock, ManualClock, Sleep, SystemClock};
pub use config::{
    AuthConfig, CachePolicy, ClientAuthMethod, RecoveryPolicy, RetryPolicy, TokenRotation, DEFAULT_REFRESH_MARGIN,
    DEFAULT_STORE_TIMEOUT, DEFAULT_TOKEN_LIFETIME, MAX_TOKEN_LIFETIME,
};
pub use error::{AuthError, ServerError};
pub use events::{AuthEvent, AuthEventListener};
pub use identity::{Identity, Subject, TokenParams};
pub use session::{is_replay_safe, Replay, Session};
pub use state::{SessionState, TokenChange, TokenObserver};
pub use storage::{KeyringStore, MemoryStore, StoreError, TokenStore};
pub use token::{AccessToken, Timestamp};

/// Re-exported so apps can read a token ([`ExposeSecret`]) and pass secrets
/// ([`SecretString`]) without depending on `secrecy` themselves.
pub use secrecy::{ExposeSecret, SecretString};

uniffi::setup_scaffolding!();
