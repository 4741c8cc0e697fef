//! What every session of one [`AuthClient`](crate::AuthClient) shares: configuration,
//! endpoints, the HTTP connection pool, the store, the event sink and the clock; and
//! the registry that keeps one session per identity.

use crate::clock::{Clock, SystemClock};
use crate::config::{AuthConfig, ClientAuthMethod};
use crate::error::AuthError;
use crate::events::EventSink;
use crate::identity::Identity;
use crate::internal::dpop::DpopState;
use crate::internal::protocol::request;
use crate::session::Session;
use crate::store::{LocalRefreshLock, RecordStore, RefreshLock, SharedTokens};
use crate::transport::HttpTransport;
use bytes::Bytes;
use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use url::Url;

pub(crate) struct ClientContext {
    pub config: AuthConfig,
    pub token_url: Url,
    pub revocation_url: Option<Url>,
    /// Carries every request the SDK itself sends (token, revocation, device).
    pub transport: Arc<dyn HttpTransport>,
    /// The client behind [`AuthClient::http`](crate::AuthClient::http) and `Session::send`.
    #[cfg(feature = "reqwest")]
    pub http: reqwest::Client,
    /// `Authorization: Basic …` for `client_secret_basic`, built once per client in a
    /// buffer that is wiped when the client and its last request are gone.
    pub basic_authorization: Option<Bytes>,
    /// The store seam: the app's `TokenStore` behind the revision adapter, or a
    /// native `RecordStore`.
    pub store: Option<Arc<dyn RecordStore>>,
    /// Taken for every refresh of a stored session.
    pub refresh_lock: Arc<dyn RefreshLock>,
    /// A server fleet's shared access tokens (`AuthClientBuilder::shared_tokens`).
    pub shared: Option<Arc<dyn SharedTokens>>,
    pub events: EventSink,
    /// Validates ID tokens, when the config names a key set and an issuer.
    pub id_tokens: Option<crate::oidc::IdTokenValidator>,
    /// Identities whose logout left a revocation queued in the store
    /// (`internal::offline_logout`), sent when the server answers again.
    pub pending_revocations: std::sync::Mutex<crate::internal::offline_logout::Queue>,
    /// Nonces and the server clock offset, when the client sends DPoP proofs.
    pub dpop: Option<DpopState>,
}

impl ClientContext {
    pub(crate) fn new(
        config: AuthConfig,
        choice: HttpChoice,
        store: Option<Arc<dyn RecordStore>>,
        refresh_lock: Option<Arc<dyn RefreshLock>>,
        events: EventSink,
    ) -> Result<Self, AuthError> {
        let endpoints = config.validate()?;
        #[cfg(feature = "reqwest")]
        let (http, transport) = {
            let http = match choice.reqwest {
                Some(http) => http,
                None => Self::default_http(&config)?,
            };
            let transport = choice
                .transport
                .unwrap_or_else(|| Arc::new(crate::transport::ReqwestTransport::new(http.clone())));
            (http, transport)
        };
        #[cfg(not(feature = "reqwest"))]
        let transport = {
            if !config.root_certificates.is_empty() {
                return Err(AuthError::config(
                    "root certificates need the reqwest transport; with the app's own HTTP stack, \
                     add them to its trust store",
                ));
            }
            choice.transport.ok_or_else(|| {
                AuthError::config("no HTTP transport: give AuthClientBuilder::transport the app's own HTTP stack")
            })?
        };
        let basic_authorization = match (&config.client_secret, config.client_auth_method) {
            (Some(secret), ClientAuthMethod::Basic) => Some(
                request::basic_authorization(&config.client_id, secret)
                    .ok_or_else(|| AuthError::config("the client id and secret cannot form a Basic header"))?,
            ),
            _ => None,
        };
        let id_tokens = crate::internal::id_token::validator_for(&config, &transport)?;
        // iOS kills a suspended app that holds a file lock in a shared container
        // (0xdead10cc): there the refresh lock is in-process only, and the lock
        // directory serves the store's compare-and-set alone, held around one
        // read-compare-write, never across a network request (docs/ios.md).
        let refresh_directory = if cfg!(target_os = "ios") {
            None
        } else {
            config.store_lock_directory.clone()
        };
        let refresh_lock = refresh_lock.unwrap_or_else(|| Arc::new(LocalRefreshLock::new(refresh_directory)));
        Ok(Self {
            id_tokens,
            dpop: config.sends_dpop().then(DpopState::new),
            basic_authorization,
            config,
            token_url: endpoints.token,
            revocation_url: endpoints.revocation,
            transport,
            #[cfg(feature = "reqwest")]
            http,
            store,
            refresh_lock,
            shared: None,
            events,
            pending_revocations: std::sync::Mutex::default(),
        })
    }

    #[cfg(feature = "reqwest")]
    fn default_http(config: &AuthConfig) -> Result<reqwest::Client, AuthError> {
        let mut builder = reqwest::Client::builder();
        for (index, raw) in config.root_certificates.iter().enumerate() {
            for certificate in parse_root_certificate(raw)
                .map_err(|reason| AuthError::config(format!("root certificate #{} {reason}", index + 1)))?
            {
                builder = builder.add_root_certificate(certificate);
            }
        }
        builder
            // A redirect could carry a bearer token or client secret to a host the app never named.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .user_agent(concat!("tokenkeeper/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|_| AuthError::config("could not initialise the HTTP client (TLS backend or root certificates)"))
    }

    pub(crate) fn clock(&self) -> &dyn Clock {
        self.config.clock.as_deref().unwrap_or(&SystemClock)
    }

    /// The time on the configured clock. The system clock is called directly, not
    /// through the vtable: this is on every cached read.
    #[inline]
    pub(crate) fn now(&self) -> SystemTime {
        match &self.config.clock {
            None => SystemClock.now(),
            Some(clock) => clock.now(),
        }
    }
}

/// A root certificate given as PEM (one or more `CERTIFICATE` blocks) or DER. The
/// certificate is checked here, so a bad one fails `AuthClient::new` with a clear
/// error instead of every later request failing its TLS handshake.
#[cfg(feature = "reqwest")]
fn parse_root_certificate(raw: &[u8]) -> Result<Vec<reqwest::Certificate>, &'static str> {
    let is_pem = raw.trim_ascii_start().starts_with(b"-----BEGIN");
    let certificates = if is_pem {
        reqwest::Certificate::from_pem_bundle(raw).map_err(|_| "is not valid PEM")?
    } else {
        vec![reqwest::Certificate::from_der(raw).map_err(|_| "is not valid DER")?]
    };
    if certificates.is_empty() {
        return Err("holds no CERTIFICATE block");
    }
    // reqwest parses lazily; the build of a throw-away client checks the X.509 structure.
    let mut probe = reqwest::Client::builder();
    for certificate in &certificates {
        probe = probe.add_root_certificate(certificate.clone());
    }
    probe.build().map_err(|_| "is not a valid X.509 certificate")?;
    Ok(certificates)
}

/// The HTTP stack the app chose on the builder, if any.
#[derive(Default)]
pub(crate) struct HttpChoice {
    /// [`AuthClientBuilder::transport`](crate::AuthClientBuilder::transport).
    pub transport: Option<Arc<dyn HttpTransport>>,
    /// [`AuthClientBuilder::http_client`](crate::AuthClientBuilder::http_client).
    #[cfg(feature = "reqwest")]
    pub reqwest: Option<reqwest::Client>,
}

/// At most one session per identity (seed 002: one active token per user).
///
/// A set of sessions looked up by the identity each one already holds, rather than a
/// map from a second copy of that identity: an entry is one pointer, not a pointer
/// plus a 96-byte key and its strings, which matters at 100,000 sessions.
#[derive(Default)]
pub(crate) struct Registry {
    sessions: Mutex<HashSet<Registered>>,
}

/// A registered session, hashed and compared by its identity so the set can be
/// searched with a bare `&Identity` (`Borrow` requires exactly that agreement).
struct Registered(Arc<Session>);

impl Borrow<Identity> for Registered {
    fn borrow(&self) -> &Identity {
        self.0.identity()
    }
}

impl Hash for Registered {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.identity().hash(state);
    }
}

impl PartialEq for Registered {
    fn eq(&self, other: &Self) -> bool {
        self.0.identity() == other.0.identity()
    }
}

impl Eq for Registered {}

impl Registry {
    pub(crate) fn get(&self, identity: &Identity) -> Option<Arc<Session>> {
        self.lock().get(identity).map(|registered| Arc::clone(&registered.0))
    }

    /// The session for `identity`, created by `create` if there is none; `true` if created.
    pub(crate) fn get_or_insert_with(
        &self,
        identity: &Identity,
        create: impl FnOnce() -> Session,
    ) -> (Arc<Session>, bool) {
        let mut sessions = self.lock();
        if let Some(existing) = sessions.get(identity) {
            return (Arc::clone(&existing.0), false);
        }
        let session = Arc::new(create());
        debug_assert_eq!(session.identity(), identity);
        sessions.insert(Registered(Arc::clone(&session)));
        (session, true)
    }

    /// Removes `session` if it is still the registered one for its identity.
    pub(crate) fn remove(&self, session: &Session) {
        self.remove_if(session, |_| true);
    }

    /// Removes `session` if it is still the registered one and `condition` holds for
    /// it, both checked under the registry lock.
    pub(crate) fn remove_if(&self, session: &Session, condition: impl FnOnce(&Session) -> bool) {
        let mut sessions = self.lock();
        if sessions
            .get(session.identity())
            .is_some_and(|s| std::ptr::eq(Arc::as_ptr(&s.0), session))
            && condition(session)
        {
            sessions.remove(session.identity());
        }
    }

    /// The registered sessions `select` picks.
    pub(crate) fn matching(&self, select: impl Fn(&Session) -> bool) -> Vec<Arc<Session>> {
        self.lock()
            .iter()
            .filter(|registered| select(&registered.0))
            .map(|registered| Arc::clone(&registered.0))
            .collect()
    }

    /// Registers `session` again if its identity has no session (a concurrent failing
    /// login unregistered it before this one signed it in). A logged-out session is
    /// never brought back.
    pub(crate) fn keep(&self, session: &Arc<Session>) {
        let mut sessions = self.lock();
        if !sessions.contains(session.identity()) && !session.core().is_logged_out() {
            sessions.insert(Registered(Arc::clone(session)));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<Registered>> {
        self.sessions.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
