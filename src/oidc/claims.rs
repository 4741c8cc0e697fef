//! [`IdTokenClaims`]: what an account screen shows, read from a validated ID token.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The claims of a validated ID token (OIDC Core §2, §5.1): the standard profile
/// fields as typed values, and every claim as JSON in [`all`](Self::all).
///
/// Kept with the session and its stored record, so an account screen works after a
/// restart without a request. `Debug` shows the claims (they are personal data, not
/// credentials); the ID token itself is never kept here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Map<String, Value>", into = "Map<String, Value>")]
pub struct IdTokenClaims {
    /// `iss`: the issuer.
    pub issuer: String,
    /// `sub`: the user's stable identifier at the issuer; key local data by it.
    pub subject: String,
    /// `name`.
    pub name: Option<String>,
    /// `email`.
    pub email: Option<String>,
    /// `email_verified`.
    pub email_verified: Option<bool>,
    /// `preferred_username`.
    pub preferred_username: Option<String>,
    /// `picture`: a URL.
    pub picture: Option<String>,
    /// `auth_time`: when the user last authenticated, in seconds since the Unix epoch.
    pub auth_time: Option<u64>,
    /// `acr`: the authentication context class the login satisfied (RFC 9470).
    pub acr: Option<String>,
    /// Every claim, including the ones above.
    pub all: Map<String, Value>,
}

impl IdTokenClaims {
    /// The claims from a claims set; `None` without a string `iss` and `sub`.
    pub fn from_map(all: Map<String, Value>) -> Option<Self> {
        let text = |name: &str| all.get(name).and_then(Value::as_str).map(str::to_owned);
        Some(Self {
            issuer: text("iss")?,
            subject: text("sub")?,
            name: text("name"),
            email: text("email"),
            // Some providers send "true" as a string.
            email_verified: match all.get("email_verified") {
                Some(Value::Bool(b)) => Some(*b),
                Some(Value::String(s)) => s.parse().ok(),
                _ => None,
            },
            preferred_username: text("preferred_username"),
            picture: text("picture"),
            auth_time: all.get("auth_time").and_then(Value::as_u64),
            acr: text("acr"),
            all,
        })
    }

    /// `sid`: the provider's session id (OIDC Front-/Back-Channel Logout), which a
    /// back-channel logout token may name to end this session.
    pub fn session_id(&self) -> Option<&str> {
        self.all.get("sid").and_then(Value::as_str)
    }

    /// Every claim as a JSON object text.
    pub fn to_json(&self) -> String {
        Value::Object(self.all.clone()).to_string()
    }
}

impl TryFrom<Map<String, Value>> for IdTokenClaims {
    type Error = &'static str;

    fn try_from(map: Map<String, Value>) -> Result<Self, Self::Error> {
        Self::from_map(map).ok_or("ID token claims without iss and sub")
    }
}

impl From<IdTokenClaims> for Map<String, Value> {
    fn from(claims: IdTokenClaims) -> Self {
        claims.all
    }
}
