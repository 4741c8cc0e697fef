//! What every session of one [`AuthClient`](crate::AuthClient) shares: configuration,
//! endpoints, the HTTP connection pool, the store, the event sink and the clock; and
//! the registry that keeps one session per identity.

use crate::clock::Clock;
use crate::config::{AuthConfig, ClientAuthMethod};
use crate::error::AuthError;
use crate::events::EventSink;
use crate::identity::Identity;
use crate::internal::protocol::request;
use crate::session::Session;
use crate::store::{LocalRefreshLock, RecordStore, RefreshLock};
use reqwest::header::HeaderValue;
use reqwest::Url;
use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

pub(crate) struct ClientContext {
    pub config: AuthConfig,
    pub token_url: Url,
    pub revocation_url: Option<Url>,
    pub http: reqwest::Client,
    /// `Authorization: Basic …` for `client_secret_basic`, built once per client in a
    /// buffer that is wiped when the client and its last request are gone.
    pub basic_authorization: Option<HeaderValue>,
    /// The store seam: the app's `TokenStore` behind the revision adapter, or a
    /// native `RecordStore`.
    pub store: Option<Arc<dyn RecordStore>>,
    /// Taken for every refresh of a stored session.
    pub refresh_lock: Arc<dyn RefreshLock>,
    pub events: EventSink,
    /// Identities whose logout left a revocation queued in the store
    /// (`internal::offline_logout`), sent when the server answers again.
    pub pending_revocations: std::sync::Mutex<crate::internal::offline_logout::Queue>,
}

impl ClientContext {
    pub(crate) fn new(
        config: AuthConfig,
        http: Option<reqwest::Client>,
        store: Option<Arc<dyn RecordStore>>,
        refresh_lock: Option<Arc<dyn RefreshLock>>,
        events: EventSink,
    ) -> Result<Self, AuthError> {
        let endpoints = config.validate()?;
        let http = match http {
            Some(http) => http,
            None => Self::default_http(&config)?,
        };
        let basic_authorization = match (&config.client_secret, config.client_auth_method) {
            (Some(secret), ClientAuthMethod::Basic) => Some(
                request::basic_authorization(&config.client_id, secret)
                    .ok_or_else(|| AuthError::config("the client id and secret cannot form a Basic header"))?,
            ),
            _ => None,
        };
        let refresh_lock =
            refresh_lock.unwrap_or_else(|| Arc::new(LocalRefreshLock::new(config.store_lock_directory.clone())));
        Ok(Self {
            basic_authorization,
            config,
            token_url: endpoints.token,
            revocation_url: endpoints.revocation,
            http,
            store,
            refresh_lock,
            events,
            pending_revocations: std::sync::Mutex::default(),
        })
    }

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
        self.config.clock.as_ref()
    }
}

/// A root certificate given as PEM (one or more `CERTIFICATE` blocks) or DER. The
/// certificate is checked here, so a bad one fails `AuthClient::new` with a clear
/// error instead of every later request failing its TLS handshake.
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
        let mut sessions = self.lock();
        if sessions
            .get(session.identity())
            .is_some_and(|s| std::ptr::eq(Arc::as_ptr(&s.0), session))
        {
            sessions.remove(session.identity());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<Registered>> {
        self.sessions.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
