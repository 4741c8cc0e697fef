//! Configuration of a [`DevServer`](crate::DevServer): the registered clients,
//! the users, token lifetimes and the optional behaviours (refresh-token
//! rotation, JWT-shaped tokens, WSO2-style token reuse, clock skew and
//! per-response access-token rotation).

use std::time::Duration;

/// The device authorization grant type (RFC 8628 §3.4).
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Redirect URIs of the default `native-app` client: a loopback URI (any
/// port, RFC 8252 §7.3) and a private-use scheme (RFC 8252 §7.1).
pub const NATIVE_REDIRECT_URIS: &[&str] = &["http://127.0.0.1/callback", "dev.tokenkeeper.demo:/oauth2redirect"];

/// Everything a [`DevServer`](crate::DevServer) needs to know before it starts.
///
/// All fields are public; start from [`DevServerConfig::default()`] and change
/// what a test needs:
///
/// ```
/// use std::time::Duration;
/// use tokenkeeper_devserver::DevServerConfig;
///
/// let config = DevServerConfig {
///     access_token_lifetime: Duration::from_secs(60),
///     rotate_refresh_tokens: true,
///     ..DevServerConfig::default()
/// };
/// assert_eq!(config.clients.len(), 4);
/// ```
#[derive(Clone, Debug)]
pub struct DevServerConfig {
    /// Registered OAuth clients.
    pub clients: Vec<ClientSpec>,
    /// Resource owners accepted by the password grant.
    pub users: Vec<UserSpec>,
    /// Lifetime of every issued access token (default 3600 s). `expires_in`
    /// reports it in whole seconds.
    pub access_token_lifetime: Duration,
    /// Issue refresh tokens for the password and refresh grants (default `true`).
    pub issue_refresh_tokens: bool,
    /// Issue refresh tokens for the client-credentials grant (default `false`).
    pub refresh_tokens_for_client_credentials: bool,
    /// The refresh grant returns a new refresh token and invalidates the one
    /// presented (default `false`).
    pub rotate_refresh_tokens: bool,
    /// Like Keycloak's SSO session idle timeout: refresh tokens stop working this long
    /// after they were issued, and token responses announce it as
    /// `refresh_expires_in`. Default `None`: refresh tokens never expire.
    pub refresh_token_lifetime: Option<Duration>,
    /// Leave `expires_in` out of token responses (default `false`).
    pub omit_expires_in: bool,
    /// Issue JWT-shaped access tokens (`header.payload.signature`, base64url;
    /// the payload carries `iss`, `sub`, `client_id`, `scope`, `jti`, `iat`,
    /// `exp` and, when requested, `aud`). The signature is random bytes: it is
    /// not verifiable. Default `false`.
    pub jwt_access_tokens: bool,
    /// Like WSO2 API Manager: a token request for the same (client, subject,
    /// scope) while an unrevoked, unexpired access token exists returns that
    /// same access token (and its refresh token), with `expires_in` set to the
    /// time it has left. Default `false`.
    pub reuse_active_token: bool,
    /// The server's clock is the real clock plus this many seconds. It drives
    /// the `Date` header, `iat`/`exp` in JWTs, token expiry and the rotation
    /// expiry header. Default 0.
    pub clock_offset_secs: i64,
    /// Per-response access-token rotation at the protected resource; `None`
    /// (the default) turns it off.
    pub rotation: Option<RotationSpec>,
    /// How long an authorization code can be exchanged (default 60 s).
    pub authorization_code_lifetime: Duration,
    /// How long a device code can be polled (default 600 s).
    pub device_code_lifetime: Duration,
    /// The polling `interval` the device authorization endpoint announces
    /// (default 5 s).
    pub device_poll_interval: Duration,
    /// Add `iss` to authorization responses (RFC 9207) and advertise it in the
    /// metadata (default `true`).
    pub authorization_response_iss: bool,
    /// The `issuer` the metadata documents claim; `None` (the default) is the
    /// server's base URL. Tests set another value to check issuer validation.
    pub metadata_issuer: Option<String>,
    /// DPoP (RFC 9449): which clients must send proofs, nonces, the `iat` window.
    pub dpop: crate::dpop::DpopSpec,
    /// The algorithm of the ID token signing key (ES256 by default).
    pub id_token_alg: crate::jose::SigningAlg,
    /// `Cache-Control: max-age` of the key set at `/oauth2/jwks`; `None` sends no caching header.
    pub jwks_max_age: Option<Duration>,
}

impl Default for DevServerConfig {
    /// One confidential client `demo-client`/`demo-secret` (scopes
    /// `read write admin`, all three grants), one public client `public-app`
    /// (scopes `read write`, password and refresh grants), one public native
    /// app `native-app` (scopes `read write`, authorization code, device code
    /// and refresh grants; redirect URIs [`NATIVE_REDIRECT_URIS`]), and the users
    /// `alice`/`alice-password` and `bob`/`bob-password`.
    fn default() -> Self {
        DevServerConfig {
            clients: vec![
                ClientSpec::confidential(
                    "demo-client",
                    "demo-secret",
                    &["read", "write", "admin"],
                    &["client_credentials", "password", "refresh_token"],
                ),
                ClientSpec::public("public-app", &["read", "write"], &["password", "refresh_token"]),
                ClientSpec::public(
                    "native-app",
                    &["read", "write"],
                    &["authorization_code", DEVICE_CODE_GRANT, "refresh_token"],
                )
                .with_redirect_uris(NATIVE_REDIRECT_URIS),
                // An OpenID Connect relying party: ID tokens for `openid`.
                ClientSpec::public(
                    "oidc-app",
                    &["openid", "profile", "email", "read"],
                    &["authorization_code", DEVICE_CODE_GRANT, "refresh_token", "password"],
                )
                .with_redirect_uris(NATIVE_REDIRECT_URIS),
            ],
            users: vec![
                UserSpec::new("alice", "alice-password"),
                UserSpec::new("bob", "bob-password"),
            ],
            access_token_lifetime: Duration::from_secs(3600),
            issue_refresh_tokens: true,
            refresh_tokens_for_client_credentials: false,
            rotate_refresh_tokens: false,
            refresh_token_lifetime: None,
            omit_expires_in: false,
            jwt_access_tokens: false,
            reuse_active_token: false,
            clock_offset_secs: 0,
            rotation: None,
            authorization_code_lifetime: Duration::from_secs(60),
            device_code_lifetime: Duration::from_secs(600),
            device_poll_interval: Duration::from_secs(5),
            authorization_response_iss: true,
            metadata_issuer: None,
            dpop: crate::dpop::DpopSpec::default(),
            id_token_alg: crate::jose::SigningAlg::ES256,
            jwks_max_age: Some(Duration::from_secs(300)),
        }
    }
}

/// A registered OAuth client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientSpec {
    /// The `client_id`.
    pub client_id: String,
    /// The secret of a confidential client; `None` for a public client, which
    /// authenticates with its `client_id` form parameter alone.
    pub client_secret: Option<String>,
    /// Scopes the client may obtain; a request without `scope` gets all of them.
    pub scopes: Vec<String>,
    /// Grant types the client may use: `client_credentials`, `password`,
    /// `refresh_token`, `authorization_code`, [`DEVICE_CODE_GRANT`].
    pub grants: Vec<String>,
    /// Redirect URIs registered for the authorization code flow. A loopback
    /// `http://127.0.0.1/...` URI matches any port (RFC 8252 §7.3).
    pub redirect_uris: Vec<String>,
}

impl ClientSpec {
    /// A confidential client (authenticates with a secret).
    pub fn confidential(client_id: &str, secret: &str, scopes: &[&str], grants: &[&str]) -> Self {
        ClientSpec {
            client_id: client_id.to_owned(),
            client_secret: Some(secret.to_owned()),
            scopes: to_strings(scopes),
            grants: to_strings(grants),
            redirect_uris: Vec::new(),
        }
    }

    /// A public client (no secret).
    pub fn public(client_id: &str, scopes: &[&str], grants: &[&str]) -> Self {
        ClientSpec {
            client_id: client_id.to_owned(),
            client_secret: None,
            scopes: to_strings(scopes),
            grants: to_strings(grants),
            redirect_uris: Vec::new(),
        }
    }

    /// The same client with these registered redirect URIs.
    pub fn with_redirect_uris(mut self, uris: &[&str]) -> Self {
        self.redirect_uris = to_strings(uris);
        self
    }
}

/// A resource owner for the password grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserSpec {
    /// The `username`; also the `sub` of the tokens issued to this user.
    pub username: String,
    /// The `password`.
    pub password: String,
}

impl UserSpec {
    /// A user with this name and password.
    pub fn new(username: &str, password: &str) -> Self {
        UserSpec {
            username: username.to_owned(),
            password: password.to_owned(),
        }
    }
}

/// Per-response access-token rotation ("per-request token rotation with batch
/// requests") at the protected resource.
///
/// Each request made with the current access token of a chain gets a new access
/// token in the `token_header` response header and its expiry (epoch seconds
/// with millisecond precision) in `expiry_header`; the token presented becomes
/// superseded. A superseded token is still accepted for `batch_window` after
/// its supersession (requests that were already in flight), and answered with
/// the newest token of its chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotationSpec {
    /// Response header carrying the new access token (default `access-token`).
    pub token_header: String,
    /// Response header carrying the new token's expiry (default `expiry`).
    pub expiry_header: String,
    /// How long a superseded token stays usable (default 5 s).
    pub batch_window: Duration,
}

impl Default for RotationSpec {
    fn default() -> Self {
        RotationSpec {
            token_header: "access-token".to_owned(),
            expiry_header: "expiry".to_owned(),
            batch_window: Duration::from_secs(5),
        }
    }
}

fn to_strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}
