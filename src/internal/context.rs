//! What every session of one [`AuthClient`](crate::AuthClient) shares: configuration,
//! endpoints, the HTTP connection pool, the store, the event sink and the clock; and
//! the registry that keeps one session per identity.

use crate::clock::Clock;
use crate::config::AuthConfig;
use crate::error::AuthError;
use crate::events::EventSink;
use crate::identity::Identity;
use crate::session::Session;
use crate::store::TokenStore;
use reqwest::Url;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub(crate) struct ClientContext {
    pub config: AuthConfig,
    pub token_url: Url,
    pub revocation_url: Option<Url>,
    pub http: reqwest::Client,
    pub store: Option<Arc<dyn TokenStore>>,
    pub events: EventSink,
}

impl ClientContext {
    pub(crate) fn new(
        config: AuthConfig,
        http: Option<reqwest::Client>,
        store: Option<Arc<dyn TokenStore>>,
        events: EventSink,
    ) -> Result<Self, AuthError> {
        let endpoints = config.validate()?;
        let http = match http {
            Some(http) => http,
            None => Self::default_http(&config)?,
        };
        Ok(Self {
            config,
            token_url: endpoints.token,
            revocation_url: endpoints.revocation,
            http,
            store,
            events,
        })
    }

    fn default_http(config: &AuthConfig) -> Result<reqwest::Client, AuthError> {
        reqwest::Client::builder()
            // A redirect could carry a bearer token or client secret to a host the app never named.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .user_agent(concat!("tokenkeeper/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|_| AuthError::config("could not initialise the HTTP client (TLS backend)"))
    }

    pub(crate) fn clock(&self) -> &dyn Clock {
        self.config.clock.as_ref()
    }
}

/// At most one session per identity (seed 002: one active token per user).
#[derive(Default)]
pub(crate) struct Registry {
    sessions: Mutex<HashMap<Identity, Arc<Session>>>,
}

impl Registry {
    pub(crate) fn get(&self, identity: &Identity) -> Option<Arc<Session>> {
        self.lock().get(identity).cloned()
    }

    /// The session for `identity`, created by `create` if there is none; `true` if created.
    pub(crate) fn get_or_insert_with(
        &self,
        identity: &Identity,
        create: impl FnOnce() -> Session,
    ) -> (Arc<Session>, bool) {
        let mut sessions = self.lock();
        if let Some(existing) = sessions.get(identity) {
            return (Arc::clone(existing), false);
        }
        let session = Arc::new(create());
        sessions.insert(identity.clone(), Arc::clone(&session));
        (session, true)
    }

    /// Removes `session` if it is still the registered one for its identity.
    pub(crate) fn remove(&self, session: &Session) {
        let mut sessions = self.lock();
        if sessions
            .get(session.identity())
            .is_some_and(|s| std::ptr::eq(Arc::as_ptr(s), session))
        {
            sessions.remove(session.identity());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Identity, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
