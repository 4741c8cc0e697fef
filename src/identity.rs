//! [`Identity`]: who a session's token is for, and [`TokenParams`], the request
//! parameters that are part of that identity. Two sessions share a token only if
//! their identities are equal.

use std::collections::BTreeSet;
use std::fmt;

/// Whom a token represents: the client itself or one user.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    /// The client, via the client-credentials grant (RFC 6749 §4.4).
    Client,
    /// A user, via the password grant (RFC 6749 §4.3).
    User(String),
}

/// The whole identity of a session: subject, scope set, audience and resource.
/// It is the key of the session registry, of single-flight and of the token store.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    pub(crate) subject: Subject,
    pub(crate) scopes: BTreeSet<String>,
    pub(crate) audience: Option<String>,
    pub(crate) resource: Option<String>,
}

impl Identity {
    /// The subject.
    pub fn subject(&self) -> &Subject {
        &self.subject
    }

    /// The account name the app gave the user session (at sign-in, `login`,
    /// `restore`); `None` for the client's own session.
    pub fn account(&self) -> Option<&str> {
        match &self.subject {
            Subject::User(name) => Some(name),
            Subject::Client => None,
        }
    }

    /// The account name; the old name of [`account`](Self::account).
    #[deprecated(
        since = "0.2.0",
        note = "use Identity::account(): one name for the account across the SDK"
    )]
    pub fn username(&self) -> Option<&str> {
        self.account()
    }

    /// The requested scopes, sorted.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scopes.iter().map(String::as_str)
    }

    /// The space-separated scope parameter (RFC 6749 §3.3), if any scopes.
    pub(crate) fn scope_param(&self) -> Option<String> {
        (!self.scopes.is_empty()).then(|| self.scopes.iter().cloned().collect::<Vec<_>>().join(" "))
    }

    /// A stable key for a [`TokenStore`](crate::TokenStore).
    pub(crate) fn store_key(&self, client_id: &str) -> String {
        format!("tokenkeeper/v1/{client_id}/{self}")
    }
}

/// Prints `client` or `user:alice`, then the non-default parts, e.g.
/// `user:alice scope="read write" audience=api`.
impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.subject {
            Subject::Client => f.write_str("client")?,
            Subject::User(name) => write!(f, "user:{name}")?,
        }
        if let Some(scope) = self.scope_param() {
            write!(f, " scope=\"{scope}\"")?;
        }
        if let Some(audience) = &self.audience {
            write!(f, " audience={audience}")?;
        }
        if let Some(resource) = &self.resource {
            write!(f, " resource={resource}")?;
        }
        Ok(())
    }
}

/// Per-session token request parameters, overriding the config's defaults.
///
/// ```
/// use tokenkeeper::TokenParams;
/// let params = TokenParams::new().scopes(["orders:read"]).resource("https://orders.example.com");
/// # let _ = params;
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenParams {
    pub(crate) scopes: Option<Vec<String>>,
    pub(crate) audience: Option<String>,
    pub(crate) resource: Option<String>,
}

impl TokenParams {
    /// The config's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Scopes to request instead of the config's.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// The `audience` to request instead of the config's.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// The RFC 8707 `resource` to request instead of the config's.
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }
}
