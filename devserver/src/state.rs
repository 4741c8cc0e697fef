//! The server's in-memory state: the token tables (access tokens, refresh
//! tokens, rotation chains), the users' passwords, the request statistics and
//! the fault queues, plus the server clock and token minting.
//!
//! Everything mutable sits behind one `std::sync::Mutex` that is never held
//! across an `.await`.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::config::{ClientSpec, DevServerConfig};
use crate::faults::{Endpoint, Fault};

/// A snapshot of what the server has seen since it started or since the last
/// [`DevServer::reset_stats`](crate::DevServer::reset_stats).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Every POST to the token endpoint, including faulted and rejected ones.
    pub token_requests: u64,
    /// Token requests per `grant_type`: `client_credentials`, `password`,
    /// `refresh_token`, or `unknown` (missing or anything else).
    pub token_requests_by_grant: BTreeMap<String, u64>,
    /// Every POST to the revocation endpoint, in arrival order.
    pub revocations: Vec<RevocationRecord>,
    /// Every request to the protected resource (`/api/...`).
    pub resource_requests: u64,
    /// Resource requests per HTTP method (`GET`, `POST`, ...).
    pub resource_requests_by_method: BTreeMap<String, u64>,
    /// 401 responses sent by the protected resource (including injected ones).
    pub resource_unauthorized: u64,
    /// Password grants rejected for a wrong password, per username: what an
    /// identity provider counts towards locking an account.
    #[serde(default)]
    pub rejected_passwords_by_user: BTreeMap<String, u64>,
    /// DPoP proofs accepted (token endpoint and resource).
    #[serde(default)]
    pub dpop_proofs_accepted: u64,
    /// DPoP proofs (or their absence) refused, per reason: `missing`, `malformed`,
    /// `bad_signature`, `wrong_htm`, `wrong_htu`, `iat_outside_window`,
    /// `jti_replayed`, `wrong_ath`, `nonce`, `wrong_key`, `bound_token_as_bearer`.
    #[serde(default)]
    pub dpop_rejections: BTreeMap<String, u64>,
    /// Requests for the key set (`GET /oauth2/jwks`).
    #[serde(default)]
    pub jwks_requests: u64,
    /// Access tokens issued per client id: with one client per tenant, the token
    /// requests each tenant cost (a server fleet's "one per tenant per expiry").
    #[serde(default)]
    pub tokens_issued_by_client: BTreeMap<String, u64>,
    /// Refresh tokens presented again after rotation had spent them (RFC 9700
    /// §4.14.2 reuse detection): a client that spends a rotating token twice.
    #[serde(default)]
    pub refresh_token_reuse: u64,
    /// RP-initiated logouts (`GET /oauth2/logout`), by the subject of their
    /// `id_token_hint` (empty without one), in arrival order.
    #[serde(default)]
    pub end_sessions: Vec<String>,
    /// Requests to the pushed authorization request endpoint.
    #[serde(default)]
    pub pushed_authorization_requests: u64,
}

/// One request to the revocation endpoint, as received.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RevocationRecord {
    /// The `token` parameter (empty when it was missing).
    pub token: String,
    /// The `token_type_hint` parameter, if any.
    pub token_type_hint: Option<String>,
    /// The client id the request claimed (Basic credentials or `client_id`
    /// parameter), authenticated or not.
    pub client_id: Option<String>,
    /// Whether the request carried a `DPoP` proof header (RFC 9449), valid or not.
    #[serde(default)]
    pub dpop_proof: bool,
}

/// An issued access token.
#[derive(Clone, Debug)]
pub(crate) struct AccessToken {
    pub client_id: String,
    /// Username, or the client id for client credentials.
    pub subject: String,
    pub scope: Vec<String>,
    pub audience: Option<String>,
    pub resource: Option<String>,
    /// Server-clock expiry, whole milliseconds.
    pub expires_at: SystemTime,
    pub revoked: bool,
    /// The refresh token issued alongside (or the one used to obtain it).
    pub refresh_token: Option<String>,
    /// Rotation chain this token belongs to (see `Inner::chains`).
    pub chain: u64,
    /// When a rotation replaced this token (server clock).
    pub superseded_at: Option<SystemTime>,
    /// The thumbprint of the DPoP key it is bound to (`cnf.jkt`, RFC 9449 §6).
    pub jkt: Option<String>,
}

/// An issued refresh token.
#[derive(Clone, Debug)]
pub(crate) struct RefreshToken {
    pub client_id: String,
    pub subject: String,
    pub scope: Vec<String>,
    pub audience: Option<String>,
    pub resource: Option<String>,
    pub revoked: bool,
    /// Spent by rotation (a successor was issued): presenting it again is reuse.
    pub rotated: bool,
    /// Access tokens issued with (or from) this refresh token.
    pub access_tokens: Vec<String>,
    /// When it stops working (server clock), with `refresh_token_lifetime` set.
    pub expires_at: Option<SystemTime>,
    /// The DPoP key it is bound to (RFC 9449 §5): refreshes must prove it.
    pub jkt: Option<String>,
}

/// What a new access token is for.
pub(crate) struct Grant<'a> {
    pub client_id: &'a str,
    pub subject: &'a str,
    pub scope: &'a [String],
    pub audience: Option<&'a str>,
    pub resource: Option<&'a str>,
    /// The DPoP key to bind the tokens to.
    pub jkt: Option<&'a str>,
}

/// Mutable state, behind [`AppState::lock`].
#[derive(Default)]
pub(crate) struct Inner {
    /// username → password
    pub users: HashMap<String, String>,
    pub access: HashMap<String, AccessToken>,
    pub refresh: HashMap<String, RefreshToken>,
    /// rotation chain id → newest access token of the chain
    pub chains: HashMap<u64, String>,
    next_chain: u64,
    pub stats: Stats,
    pub faults: HashMap<Endpoint, VecDeque<Fault>>,
    /// authorization code → its record
    pub codes: HashMap<String, crate::authorize::AuthCode>,
    /// device code → its record
    pub devices: HashMap<String, crate::device::DeviceRecord>,
    /// DPoP proof ids seen and the current nonce.
    pub dpop: crate::dpop::DpopMemory,
    /// The ID token signing key and queued ID token faults.
    pub keys: crate::id_token::Keys,
    /// request_uri → a pushed authorization request (RFC 9126)
    pub pushed: HashMap<String, crate::authorize::Pushed>,
    /// Logout tokens minted so far (part of each `jti`).
    pub logout_tokens_minted: u64,
}

/// Shared by every request handler and by the [`DevServer`](crate::DevServer) handle.
pub(crate) struct AppState {
    pub config: DevServerConfig,
    pub base_url: String,
    inner: Mutex<Inner>,
    shutdown: watch::Receiver<bool>,
}

impl AppState {
    pub fn new(config: DevServerConfig, base_url: String, shutdown: watch::Receiver<bool>) -> Self {
        let inner = Inner {
            users: config
                .users
                .iter()
                .map(|u| (u.username.clone(), u.password.clone()))
                .collect(),
            keys: crate::id_token::Keys::new(config.id_token_alg),
            ..Inner::default()
        };
        AppState {
            config,
            base_url,
            inner: Mutex::new(inner),
            shutdown,
        }
    }

    /// Locks the mutable state. A poisoned lock (a panic elsewhere) is
    /// recovered: the tables stay usable for the remaining tests.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The server clock: real time plus `clock_offset_secs`.
    pub fn now(&self) -> SystemTime {
        let offset = self.config.clock_offset_secs;
        let real = SystemTime::now();
        if offset >= 0 {
            real + Duration::from_secs(offset.unsigned_abs())
        } else {
            real.checked_sub(Duration::from_secs(offset.unsigned_abs()))
                .unwrap_or(UNIX_EPOCH)
        }
    }

    /// The `issuer` of the metadata and of the `iss` response parameter.
    pub fn issuer(&self) -> String {
        self.config
            .metadata_issuer
            .clone()
            .unwrap_or_else(|| self.base_url.clone())
    }

    /// The registered client with this id.
    pub fn client(&self, client_id: &str) -> Option<&ClientSpec> {
        self.config.clients.iter().find(|c| c.client_id == client_id)
    }

    /// Resolves once the server is shutting down (or its handle is gone).
    pub async fn shutdown_signal(&self) {
        let mut rx = self.shutdown.clone();
        // An error means the sender (the DevServer handle) is gone: shut down too.
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

impl Inner {
    /// Mints an access token starting a new rotation chain, linked to `refresh`.
    pub fn mint_access(&mut self, state: &AppState, grant: &Grant<'_>, refresh: Option<&str>) -> String {
        let chain = self.next_chain;
        self.next_chain += 1;
        let expires_at = truncate_to_millis(state.now() + state.config.access_token_lifetime);
        let token = self.insert_access(state, grant, refresh, chain, expires_at);
        self.chains.insert(chain, token.clone());
        token
    }

    /// Mints the successor of `previous` in its rotation chain: same grant,
    /// an expiry at least one millisecond after the previous one.
    pub fn mint_successor(&mut self, state: &AppState, previous: &AccessToken) -> String {
        let natural = truncate_to_millis(state.now() + state.config.access_token_lifetime);
        let expires_at = natural.max(previous.expires_at + Duration::from_millis(1));
        let grant = Grant {
            client_id: &previous.client_id,
            subject: &previous.subject,
            scope: &previous.scope,
            audience: previous.audience.as_deref(),
            resource: previous.resource.as_deref(),
            jkt: previous.jkt.as_deref(),
        };
        let refresh = previous.refresh_token.clone();
        let token = self.insert_access(state, &grant, refresh.as_deref(), previous.chain, expires_at);
        self.chains.insert(previous.chain, token.clone());
        token
    }

    fn insert_access(
        &mut self,
        state: &AppState,
        grant: &Grant<'_>,
        refresh: Option<&str>,
        chain: u64,
        expires_at: SystemTime,
    ) -> String {
        let token = if state.config.jwt_access_tokens {
            jwt(state, grant, expires_at)
        } else {
            random_token()
        };
        self.access.insert(
            token.clone(),
            AccessToken {
                client_id: grant.client_id.to_owned(),
                subject: grant.subject.to_owned(),
                scope: grant.scope.to_vec(),
                audience: grant.audience.map(str::to_owned),
                resource: grant.resource.map(str::to_owned),
                expires_at,
                revoked: false,
                refresh_token: refresh.map(str::to_owned),
                chain,
                superseded_at: None,
                jkt: grant.jkt.map(str::to_owned),
            },
        );
        if let Some(rt) = refresh.and_then(|r| self.refresh.get_mut(r)) {
            rt.access_tokens.push(token.clone());
        }
        token
    }

    /// Mints a refresh token for `grant`.
    pub fn mint_refresh(&mut self, grant: &Grant<'_>, expires_at: Option<SystemTime>) -> String {
        let token = random_token();
        self.refresh.insert(
            token.clone(),
            RefreshToken {
                client_id: grant.client_id.to_owned(),
                subject: grant.subject.to_owned(),
                scope: grant.scope.to_vec(),
                audience: grant.audience.map(str::to_owned),
                resource: grant.resource.map(str::to_owned),
                revoked: false,
                rotated: false,
                access_tokens: Vec::new(),
                expires_at,
                jkt: grant.jkt.map(str::to_owned),
            },
        );
        token
    }

    /// An unrevoked, unexpired, unsuperseded access token of (client, subject)
    /// with exactly this scope (as a set), for `reuse_active_token`.
    pub fn find_active(
        &self,
        client_id: &str,
        subject: &str,
        scope: &[String],
        now: SystemTime,
    ) -> Option<(String, AccessToken)> {
        let wanted = sorted(scope);
        self.access
            .iter()
            .filter(|(_, t)| {
                t.client_id == client_id
                    && t.subject == subject
                    && !t.revoked
                    && t.superseded_at.is_none()
                    && t.expires_at > now
                    && sorted(&t.scope) == wanted
            })
            // The one that lives longest, for determinism.
            .max_by_key(|(_, t)| t.expires_at)
            .map(|(k, t)| (k.clone(), t.clone()))
    }

    /// Revokes one token. A refresh token takes its access tokens with it.
    /// With `only_client`, tokens of other clients are left alone.
    /// Returns whether a token was found (and revoked).
    pub fn revoke(&mut self, token: &str, only_client: Option<&str>) -> bool {
        let owned_by = |owner: &str| only_client.is_none_or(|c| c == owner);
        if let Some(at) = self.access.get_mut(token) {
            if owned_by(&at.client_id) {
                at.revoked = true;
                return true;
            }
            return false;
        }
        let linked = match self.refresh.get_mut(token) {
            Some(rt) if owned_by(&rt.client_id) => {
                rt.revoked = true;
                rt.access_tokens.clone()
            }
            _ => return false,
        };
        for access in linked {
            if let Some(at) = self.access.get_mut(&access) {
                at.revoked = true;
            }
        }
        true
    }

    /// Revokes every access and refresh token the server ever issued.
    pub fn revoke_all(&mut self) {
        for at in self.access.values_mut() {
            at.revoked = true;
        }
        for rt in self.refresh.values_mut() {
            rt.revoked = true;
        }
    }

    /// Revokes every access and refresh token whose subject is `subject`.
    pub fn revoke_subject(&mut self, subject: &str) {
        for at in self.access.values_mut().filter(|t| t.subject == subject) {
            at.revoked = true;
        }
        for rt in self.refresh.values_mut().filter(|t| t.subject == subject) {
            rt.revoked = true;
        }
    }

    /// Takes the next queued fault for `endpoint`, if any.
    pub fn next_fault(&mut self, endpoint: Endpoint) -> Option<Fault> {
        self.faults.get_mut(&endpoint).and_then(VecDeque::pop_front)
    }
}

fn sorted(scope: &[String]) -> Vec<&str> {
    let mut v: Vec<&str> = scope.iter().map(String::as_str).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Seconds since the epoch, with millisecond precision (e.g. `1764000000.123`).
pub(crate) fn epoch_millis_string(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:03}", d.as_secs(), d.subsec_millis())
}

/// Whole seconds since the epoch.
pub(crate) fn epoch_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

fn truncate_to_millis(t: SystemTime) -> SystemTime {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    UNIX_EPOCH + Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `N` unpredictable bytes from std's randomly keyed SipHash (seeded from the
/// OS), mixed with a process-wide counter and the time. Good enough for a
/// development server; no extra dependency.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut out = [0u8; N];
    for chunk in out.chunks_mut(8) {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        hasher.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        );
        let bytes = hasher.finish().to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
    out
}

/// A random, URL-safe opaque token (256 bits).
fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// A JWT-shaped access token. The signature is random: nobody can verify it,
/// which is fine since only this server interprets its tokens.
fn jwt(state: &AppState, grant: &Grant<'_>, expires_at: SystemTime) -> String {
    let header = serde_json::json!({ "alg": "HS256", "typ": "JWT", "kid": "devserver" });
    let mut payload = serde_json::json!({
        "iss": state.base_url,
        "sub": grant.subject,
        "client_id": grant.client_id,
        "scope": grant.scope.join(" "),
        "jti": URL_SAFE_NO_PAD.encode(random_bytes::<16>()),
        "iat": epoch_secs(state.now()),
        "exp": epoch_secs(expires_at),
    });
    if let Some(aud) = grant.audience.or(grant.resource) {
        payload["aud"] = serde_json::Value::from(aud);
    }
    if let Some(resource) = grant.resource {
        payload["resource"] = serde_json::Value::from(resource);
    }
    if let Some(jkt) = grant.jkt {
        payload["cnf"] = serde_json::json!({ "jkt": jkt });
    }
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string()),
        URL_SAFE_NO_PAD.encode(random_bytes::<32>()),
    )
}
