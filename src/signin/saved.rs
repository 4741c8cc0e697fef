//! Sign-ins that survive process death: a [`PendingAuthorization`] saved as an opaque,
//! sealed string, and completed by another process (or another `AuthClient` on the same
//! store) within its lifetime.
//!
//! Android may kill the app while the browser is open; the redirect then starts a fresh
//! process whose memory holds no PKCE verifier. The app keeps the string from
//! [`AuthClient::save_authorization`] wherever is convenient (`onSaveInstanceState`, a
//! file, `UserDefaults`): the verifier, `state`, `nonce` and DPoP key inside are sealed
//! with AES-256-GCM ([`crate::seal`]) under a key that lives in the app's own store,
//! beside its sessions, under `<client prefix>#signin-key`. So the string is useless
//! without the device's secure store, and it opens only for the same token endpoint and
//! client (the additional authenticated data).
//!
//! The key entry also lists the saved sign-ins not yet completed. Completing one removes
//! it (compare-and-set, so of two processes racing with one saved value exactly one
//! exchanges the code): a replayed value is refused with
//! [`SavedSignInRefusal::AlreadyCompleted`] before anything reaches the server.

use super::authorization::PendingAuthorization;
use crate::client::AuthClient;
use crate::error::AuthError;
use crate::identity::{Identity, Subject};
use crate::internal::context::ClientContext;
use crate::internal::dpop::{Binding, KeyProblem};
use crate::internal::protocol::pkce;
use crate::seal::{SealError, Sealer, SealingKey};
use crate::storage::key::client_prefix;
use crate::storage::{RecordStore, Written};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use zeroize::{Zeroize, Zeroizing};

/// How long a saved sign-in can be completed after it was saved: long enough for a
/// slow login (a password manager, a second factor), short enough that a stale value
/// in a `Bundle` is soon worthless. Authorization codes live shorter still (RFC 6749
/// §4.1.2 recommends 10 minutes at most).
pub const SAVED_SIGN_IN_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// At most this many saved sign-ins wait in the key entry; the oldest is dropped first,
/// so an app that saves on every `onSaveInstanceState` never grows the entry unbounded.
const MAX_OPEN: usize = 32;

/// The longest saved value opened: a real one is a few KiB (the authorization URL, a
/// DPoP key); anything longer is refused before it is decoded.
const MAX_SAVED_LEN: usize = 32 * 1024;

/// Compare-and-set attempts before a busy key entry is a storage error.
const WRITE_ATTEMPTS: usize = 8;

/// Why [`AuthClient::resume_authorization`] (or completing a resumed sign-in) refused a
/// saved value. Every case means the same to the user: start the sign-in again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SavedSignInRefusal {
    /// Saved more than [`SAVED_SIGN_IN_LIFETIME`] ago.
    Expired,
    /// It was completed already (here or in another process): a replay.
    AlreadyCompleted,
    /// Not a sealed sign-in of this client: tampered, truncated, or saved by another
    /// app, client or authorization server.
    Unreadable,
    /// The key it was sealed with is no longer in the store (the app's data was
    /// cleared, or the value comes from another device).
    KeyGone,
}

impl fmt::Display for SavedSignInRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Expired => "it expired",
            Self::AlreadyCompleted => "it was completed already",
            Self::Unreadable => "it is not a sealed sign-in of this client (tampered, or from another app or server)",
            Self::KeyGone => "the key it was sealed with is gone from the store",
        })
    }
}

/// The key entry: the sealing key and the saved sign-ins still open.
#[derive(Serialize, Deserialize)]
struct KeyEntry {
    v: u8,
    /// The key's id, in every value it seals: a value sealed under a key that was lost
    /// and re-created is [`SavedSignInRefusal::KeyGone`], not a forgery.
    id: String,
    /// base64url of the 32 key bytes.
    key: String,
    open: Vec<Open>,
}

impl Drop for KeyEntry {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
struct Open {
    id: String,
    /// Expiry, seconds since the Unix epoch.
    exp: u64,
}

/// What a saved value holds once opened.
#[derive(Serialize, Deserialize)]
struct Payload {
    v: u8,
    id: String,
    exp: u64,
    account: String,
    scopes: Vec<String>,
    audience: Option<String>,
    resource: Option<String>,
    url: String,
    redirect_uri: String,
    state: String,
    nonce: Option<String>,
    max_age: Option<u64>,
    verifier: String,
    /// The sign-in's DPoP key (PKCS#8, base64url) and its thumbprint, the `dpop_jkt`
    /// the code is bound to.
    dpop: Option<(String, String)>,
    /// The alias of a sign-in key in the client's `DpopKeyStore`, and its thumbprint.
    #[serde(default)]
    dpop_alias: Option<(String, String)>,
}

impl Drop for Payload {
    fn drop(&mut self) {
        self.verifier.zeroize();
        if let Some((key, _)) = &mut self.dpop {
            key.zeroize();
        }
    }
}

fn epoch(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn refused(why: SavedSignInRefusal) -> AuthError {
    AuthError::SavedSignInRefused(why)
}

fn store(ctx: &ClientContext) -> Result<&Arc<dyn RecordStore>, AuthError> {
    ctx.store.as_ref().ok_or_else(|| {
        AuthError::config("saving a sign-in needs a store (AuthClientBuilder::store): its sealing key lives there")
    })
}

fn key_name(ctx: &ClientContext) -> String {
    format!("{}#signin-key", aad(ctx))
}

/// The additional authenticated data: the token endpoint and client id.
fn aad(ctx: &ClientContext) -> String {
    client_prefix(ctx.token_url.as_str(), &ctx.config.client_id)
}

fn storage(reason: &str) -> AuthError {
    AuthError::Storage {
        reason: reason.to_owned(),
        source: None,
    }
}

/// The key entry and its revision, if there is one. An entry that does not decode
/// is reported, never overwritten: it may be a newer SDK's.
async fn read_entry(ctx: &ClientContext) -> Result<Option<(u64, KeyEntry)>, AuthError> {
    let store = store(ctx)?;
    let name = key_name(ctx);
    let found = crate::internal::persistence::bounded(ctx.config.store_timeout, "load", store.read(&name)).await?;
    let Some(found) = found else { return Ok(None) };
    let entry: KeyEntry = serde_json::from_str(found.value.expose_secret())
        .map_err(|_| storage("the saved sign-in key entry is unreadable"))?;
    Ok(Some((found.revision, entry)))
}

/// Writes `entry` if the key entry still holds `expected`; `false` on a conflict.
async fn write_entry(ctx: &ClientContext, expected: Option<u64>, entry: &KeyEntry) -> Result<bool, AuthError> {
    let store = store(ctx)?;
    let name = key_name(ctx);
    let value = SecretString::from(serde_json::to_string(entry).map_err(|_| storage("could not encode"))?);
    let call = store.compare_and_set(&name, expected, &value, None);
    let written = crate::internal::persistence::bounded(ctx.config.store_timeout, "save", call).await?;
    Ok(matches!(written, Written::Written { .. }))
}

fn sealer(entry: &KeyEntry) -> Result<Sealer, AuthError> {
    let bytes = Zeroizing::new(
        URL_SAFE_NO_PAD
            .decode(&entry.key)
            .map_err(|_| storage("the saved sign-in key entry is unreadable"))?,
    );
    let key = SealingKey::new(entry.id.clone(), &bytes).map_err(|_| storage("the saved sign-in key is unusable"))?;
    Sealer::new(key, []).map_err(|_| storage("the saved sign-in key is unusable"))
}

/// A new key entry: 32 bytes from the system CSPRNG and a fresh id.
fn new_entry() -> Result<KeyEntry, AuthError> {
    Ok(KeyEntry {
        v: 1,
        // 12 characters of base64url: 72 random bits, only to tell keys apart.
        id: pkce::random_string()?.chars().take(12).collect(),
        // base64url of 32 CSPRNG bytes: an AES-256 key.
        key: pkce::random_string()?,
        open: Vec::new(),
    })
}

impl AuthClient {
    /// Saves a sign-in in progress as an opaque string that a new process can complete
    /// with [`resume_authorization`](Self::resume_authorization) within
    /// [`SAVED_SIGN_IN_LIFETIME`]. Its secrets (the PKCE verifier, `state`, `nonce`, the
    /// DPoP key) are sealed with a key kept in this client's store, created on first
    /// use: keep the string anywhere (an Android `Bundle`, a file), it opens only on a
    /// device whose store holds the key, and only once.
    ///
    /// Saving the same pending sign-in again gives another string for the same
    /// sign-in: whichever is completed first spends them all. Needs a store. The
    /// sign-in is spent before its code is exchanged, so a failed exchange (like a
    /// spent code) means a new sign-in.
    pub async fn save_authorization(&self, pending: &PendingAuthorization) -> Result<String, AuthError> {
        let ctx = self.context();
        let id = pending.saved_id()?;
        let exp = epoch(ctx.clock().now()).saturating_add(SAVED_SIGN_IN_LIFETIME.as_secs());
        let now = epoch(ctx.clock().now());
        let mut attempt = read_entry(ctx).await?;
        for _ in 0..WRITE_ATTEMPTS {
            let (expected, mut entry) = match attempt.take() {
                Some((revision, entry)) => (Some(revision), entry),
                None => (None, new_entry()?),
            };
            entry.open.retain(|open| open.exp > now && open.id != id);
            entry.open.push(Open { id: id.clone(), exp });
            let excess = entry.open.len().saturating_sub(MAX_OPEN);
            entry.open.drain(..excess);
            if write_entry(ctx, expected, &entry).await? {
                let payload = pending.payload(id, exp);
                let plain = Zeroizing::new(serde_json::to_vec(&payload).map_err(|_| storage("could not encode"))?);
                return sealer(&entry)?.seal(&aad(ctx), &plain).map_err(|error| match error {
                    SealError::Random => {
                        AuthError::config("the operating system's random number generator is unavailable")
                    }
                    _ => storage("could not seal the sign-in"),
                });
            }
            attempt = read_entry(ctx).await?;
        }
        Err(storage(
            "could not save the sign-in: other writers kept changing its key entry",
        ))
    }

    /// Opens a value from [`save_authorization`](Self::save_authorization), in this
    /// process or a new one on the same store: the pending sign-in, ready for
    /// [`complete_authorization`](Self::complete_authorization), which spends it.
    ///
    /// Refusals are [`AuthError::SavedSignInRefused`]: expired, already completed
    /// (a replay), unreadable (tampered, another client's), or its key is gone.
    pub async fn resume_authorization(&self, saved: &str) -> Result<PendingAuthorization, AuthError> {
        let ctx = self.context();
        if saved.len() > MAX_SAVED_LEN {
            return Err(refused(SavedSignInRefusal::Unreadable));
        }
        let Some((_, entry)) = read_entry(ctx).await? else {
            return Err(refused(SavedSignInRefusal::KeyGone));
        };
        let plain = sealer(&entry)?.open(&aad(ctx), saved).map_err(|error| match error {
            SealError::UnknownKey(_) => refused(SavedSignInRefusal::KeyGone),
            _ => refused(SavedSignInRefusal::Unreadable),
        })?;
        let payload: Payload = serde_json::from_slice(&plain).map_err(|_| refused(SavedSignInRefusal::Unreadable))?;
        if payload.v != 1 {
            return Err(refused(SavedSignInRefusal::Unreadable));
        }
        if payload.exp <= epoch(ctx.clock().now()) {
            return Err(refused(SavedSignInRefusal::Expired));
        }
        if !entry.open.iter().any(|open| open.id == payload.id) {
            return Err(refused(SavedSignInRefusal::AlreadyCompleted));
        }
        PendingAuthorization::from_payload(ctx, &payload)
    }

    /// [`resume_authorization`](Self::resume_authorization) then
    /// [`complete_authorization`](Self::complete_authorization): the redirect URL and
    /// the saved value are all a new process needs.
    pub async fn complete_saved_authorization(
        &self,
        saved: &str,
        redirect_url: &str,
    ) -> Result<Arc<crate::Session>, AuthError> {
        let pending = self.resume_authorization(saved).await?;
        self.complete_authorization(&pending, redirect_url).await
    }
}

/// Spends saved sign-in `id` before its code is exchanged: removes it from the key
/// entry by compare-and-set, so two completions of one saved value never both reach
/// the server. Absent (completed elsewhere, or dropped as the oldest):
/// [`SavedSignInRefusal::AlreadyCompleted`].
pub(super) async fn spend(ctx: &ClientContext, id: &str) -> Result<(), AuthError> {
    for _ in 0..WRITE_ATTEMPTS {
        let Some((revision, mut entry)) = read_entry(ctx).await? else {
            return Err(refused(SavedSignInRefusal::KeyGone));
        };
        let before = entry.open.len();
        entry.open.retain(|open| open.id != id);
        if entry.open.len() == before {
            return Err(refused(SavedSignInRefusal::AlreadyCompleted));
        }
        if write_entry(ctx, Some(revision), &entry).await? {
            return Ok(());
        }
    }
    Err(storage(
        "could not complete the saved sign-in: other writers kept changing its key entry",
    ))
}

impl PendingAuthorization {
    fn payload(&self, id: String, exp: u64) -> Payload {
        let account = match self.identity.subject() {
            Subject::User(name) => name.clone(),
            Subject::Client => String::new(),
        };
        Payload {
            v: 1,
            id,
            exp,
            account,
            scopes: self.identity.scopes().map(str::to_owned).collect(),
            audience: self.identity.audience.clone(),
            resource: self.identity.resource.clone(),
            url: self.url.clone(),
            redirect_uri: self.redirect_uri.clone(),
            state: self.state.clone(),
            nonce: self.nonce.clone(),
            max_age: self.max_age.map(|age| age.as_secs()),
            verifier: self.verifier.expose_secret().to_owned(),
            dpop: self.dpop.as_ref().and_then(|binding| {
                let key = binding.stored_software()?;
                Some((key.expose_secret().to_owned(), binding.jkt.clone()))
            }),
            dpop_alias: self.dpop.as_ref().and_then(|binding| {
                // The saved value now owns the key: this process may die before the
                // pending sign-in is dropped, and the resumed one needs it.
                binding.adopt();
                Some((binding.alias()?.to_owned(), binding.jkt.clone()))
            }),
        }
    }

    fn from_payload(ctx: &ClientContext, payload: &Payload) -> Result<Self, AuthError> {
        if payload.account.trim().is_empty() {
            return Err(refused(SavedSignInRefusal::Unreadable));
        }
        let software = payload
            .dpop
            .as_ref()
            .map(|(key, jkt)| (Some(SecretString::from(key.as_str())), None, jkt));
        let platform = payload
            .dpop_alias
            .as_ref()
            .map(|(alias, jkt)| (None, Some(alias.as_str()), jkt));
        let dpop = match software.or(platform) {
            Some((key, alias, jkt)) => Some(match Binding::from_record(ctx, jkt, key.as_ref(), alias) {
                Ok(binding) => binding,
                Err(KeyProblem::Failed(error)) => return Err(error),
                Err(KeyProblem::Unusable(_)) => return Err(refused(SavedSignInRefusal::Unreadable)),
            }),
            // The code is bound to no key: a client that now sends DPoP proofs would
            // fail the exchange with a mismatch, so say it here.
            None if ctx.dpop.is_some() => return Err(refused(SavedSignInRefusal::Unreadable)),
            None => None,
        };
        let pending = PendingAuthorization {
            url: payload.url.clone(),
            state: payload.state.clone(),
            nonce: payload.nonce.clone(),
            max_age: payload.max_age.map(Duration::from_secs),
            verifier: SecretString::from(payload.verifier.as_str()),
            redirect_uri: payload.redirect_uri.clone(),
            identity: Identity {
                subject: Subject::User(payload.account.clone()),
                scopes: payload.scopes.iter().cloned().collect(),
                audience: payload.audience.clone(),
                resource: payload.resource.clone(),
            },
            dpop,
            saved_id: std::sync::OnceLock::new(),
        };
        let _ = pending.saved_id.set(payload.id.clone());
        Ok(pending)
    }

    /// The id this sign-in is saved under, made at its first save.
    fn saved_id(&self) -> Result<String, AuthError> {
        if let Some(id) = self.saved_id.get() {
            return Ok(id.clone());
        }
        let fresh = pkce::random_string()?;
        Ok(self.saved_id.get_or_init(|| fresh).clone())
    }
}
