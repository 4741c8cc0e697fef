//! The device authorization grant (RFC 8628) for TVs and command-line tools: show
//! the user a code and a URL, then poll until they approve on another device.

use super::{endpoint, one_time_grant, sign_in_key};
use crate::client::AuthClient;
use crate::error::AuthError;
use crate::identity::{Identity, TokenParams};
use crate::internal::dpop::Binding;
use crate::internal::protocol::device::{self as protocol, Poll};
use crate::internal::protocol::request::{self, Grant};
use crate::session::Session;
use crate::token::Timestamp;
use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// Upper bound of the wait after network failures while polling (RFC 8628 §3.5
/// asks for exponential backoff on connection timeouts).
const MAX_NETWORK_BACKOFF: Duration = Duration::from_secs(60);

/// A device sign-in in progress: show [`user_code`](Self::user_code) and
/// [`verification_uri`](Self::verification_uri) to the user, then call
/// [`AuthClient::complete_device_authorization`]. `Debug` never shows the device code.
pub struct DeviceAuthorization {
    device_code: SecretString,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: Option<String>,
    expires_at: SystemTime,
    interval: Duration,
    identity: Identity,
    cancel: watch::Sender<bool>,
    /// The DPoP key the polls prove and the tokens will be bound to.
    dpop: Option<Arc<Binding>>,
}

impl DeviceAuthorization {
    /// The code the user types on the verification page (e.g. `WDJB-MJHT`).
    pub fn user_code(&self) -> &str {
        &self.user_code
    }

    /// The page where the user enters the code.
    pub fn verification_uri(&self) -> &str {
        &self.verification_uri
    }

    /// The page with the code already filled in, for a QR code (if the server sends one).
    pub fn verification_uri_complete(&self) -> Option<&str> {
        self.verification_uri_complete.as_deref()
    }

    /// When the codes expire; polling stops then with [`AuthError::DeviceCodeExpired`].
    pub fn expires_at(&self) -> Timestamp {
        Timestamp(self.expires_at)
    }

    /// The polling interval the server asked for.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Stops [`AuthClient::complete_device_authorization`] (from any thread):
    /// it returns [`AuthError::Cancelled`] at once. Dropping its future works too.
    pub fn cancel(&self) {
        self.cancel.send_replace(true);
    }
}

impl fmt::Debug for DeviceAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceAuthorization")
            .field("identity", &self.identity)
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .field("device_code", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl AuthClient {
    /// Starts a device sign-in (RFC 8628 §3.1) for the account the app calls
    /// `account`. Needs
    /// [`AuthConfig::device_authorization_endpoint`](crate::AuthConfig::device_authorization_endpoint).
    pub async fn start_device_authorization(
        &self,
        account: &str,
        params: TokenParams,
    ) -> Result<DeviceAuthorization, AuthError> {
        let ctx = self.context();
        let url = endpoint(
            &ctx.config,
            "device authorization endpoint",
            ctx.config.device_authorization_endpoint.as_deref(),
        )?;
        let identity = self.account_identity(account, params)?;
        let dpop = sign_in_key(ctx, &identity)?;
        let build = || request::device_authorization_request(ctx, &url, &identity);
        let (response, now) =
            crate::internal::dpop::authorization_server_exchange(ctx, dpop.as_deref(), &url, build).await?;
        let grant = protocol::parse(&response)?;
        Ok(DeviceAuthorization {
            device_code: grant.device_code,
            user_code: grant.user_code,
            verification_uri: grant.verification_uri,
            verification_uri_complete: grant.verification_uri_complete,
            // A hostile `expires_in` (u64::MAX seconds) must not overflow the clock.
            expires_at: now.checked_add(grant.expires_in).unwrap_or(now),
            interval: grant.interval,
            identity,
            cancel: watch::channel(false).0,
            dpop,
        })
    }

    /// Polls the token endpoint until the user approves (RFC 8628 §3.4, §3.5),
    /// waiting `interval` between polls on the configured clock, 5 s longer after
    /// each `slow_down`, and backing off after network failures. Returns the user's
    /// session. Stops with [`AuthError::AccessDenied`], [`AuthError::DeviceCodeExpired`]
    /// or [`AuthError::Cancelled`].
    ///
    /// `Cancelled` means not signed in: a cancel (or a dropped future) takes effect
    /// between polls; a poll already sent runs to its end on its own task, and if it
    /// redeemed the code the user is signed in and the session is returned (or, for a
    /// dropped future, kept in the registry and the store), never left half-done.
    pub async fn complete_device_authorization(&self, device: &DeviceAuthorization) -> Result<Arc<Session>, AuthError> {
        let ctx = self.context();
        let clock = ctx.clock();
        let mut cancelled = device.cancel.subscribe();
        let mut interval = device.interval;
        let mut network_backoff = interval;
        let mut wait = interval;
        loop {
            tokio::select! {
                biased;
                _ = cancelled.wait_for(|c| *c) => return Err(AuthError::Cancelled),
                () = clock.sleep(wait) => {}
            }
            if clock.now() >= device.expires_at {
                return Err(AuthError::DeviceCodeExpired);
            }
            let error = match self.poll_once(device).await {
                Ok(session) => return Ok(session),
                Err(error) => error,
            };
            wait = interval;
            match protocol::classify(error) {
                Poll::Pending => {}
                Poll::SlowDown => {
                    interval = protocol::slowed(interval);
                    wait = interval;
                    tracing::debug!(interval_s = interval.as_secs(), "device grant: slow_down");
                }
                Poll::Fail(error @ AuthError::TemporarilyUnavailable { .. }) => {
                    network_backoff = network_backoff.saturating_mul(2).min(MAX_NETWORK_BACKOFF);
                    tracing::debug!(%error, wait_s = network_backoff.as_secs(), "device grant: poll failed, backing off");
                    wait = network_backoff.max(interval);
                }
                Poll::Fail(error) => return Err(error),
            }
        }
    }

    /// One poll, and the install if it redeemed the code, on a task of its own: a
    /// caller that goes away mid-poll cannot drop tokens the server already issued.
    async fn poll_once(&self, device: &DeviceAuthorization) -> Result<Arc<Session>, AuthError> {
        let client = self.clone();
        let identity = device.identity.clone();
        let device_code = SecretString::from(device.device_code.expose_secret());
        let dpop = device.dpop.clone();
        let task = crate::internal::flight::runtime()?.spawn(async move {
            let grant = Grant::DeviceCode(&device_code);
            let (issued, sent_at) = one_time_grant(client.context(), &identity, &grant, dpop.as_deref()).await?;
            client.install_signed_in(identity, issued, sent_at, dpop).await
        });
        task.await
            .unwrap_or_else(|_| Err(AuthError::unavailable("the device grant poll was stopped")))
    }
}
