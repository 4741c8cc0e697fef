//! DPoP (RFC 9449) verification for the token endpoint and the protected resource:
//! the proof's signature (ES256 with the key in its own `jwk` header), `typ`, `alg`,
//! `htm`, `htu`, the `iat` window on the server clock, `jti` replay, `ath`, and the
//! server nonce (§8, §9), which rotates on demand
//! ([`DevServer::rotate_dpop_nonce`](crate::DevServer::rotate_dpop_nonce)).
//!
//! Verified with `ring` directly; the result is the key's RFC 7638 thumbprint, which
//! the token endpoint binds tokens to (`cnf.jkt`) and the resource compares.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::Value;

use crate::state::{epoch_secs, AppState};

/// What the server expects of DPoP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DpopSpec {
    /// Client ids whose token requests must carry a proof (like Keycloak's "require
    /// DPoP-bound tokens"). Any client that sends a proof gets bound tokens.
    pub required_for_clients: Vec<String>,
    /// Demand the server's current nonce in every proof, at the token endpoint and at
    /// the resource (§8, §9). Default `false`.
    pub nonces: bool,
    /// How far a proof's `iat` may be from the server clock, either way. Default 60 s.
    pub iat_window: Duration,
    /// List `dpop_signing_alg_values_supported: ["ES256"]` in the metadata. Default `true`.
    pub advertise: bool,
}

impl Default for DpopSpec {
    fn default() -> Self {
        DpopSpec {
            required_for_clients: Vec::new(),
            nonces: false,
            iat_window: Duration::from_secs(60),
            advertise: true,
        }
    }
}

/// Why a proof was refused; also the key of `Stats::dpop_rejections`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No proof where one is required.
    Missing,
    /// Not a JWT, bad JSON, wrong `typ`/`alg`, no usable `jwk`, a private key in it.
    Malformed,
    BadSignature,
    WrongMethod,
    WrongUri,
    /// `iat` outside the window.
    Stale,
    Replayed,
    /// `ath` missing or not the hash of the presented token.
    WrongAth,
    /// The nonce is missing or not the current one: answered with `use_dpop_nonce`.
    Nonce,
    /// The proof's key is not the one the token is bound to.
    WrongKey,
}

impl Refusal {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::Malformed => "malformed",
            Refusal::BadSignature => "bad_signature",
            Refusal::WrongMethod => "wrong_htm",
            Refusal::WrongUri => "wrong_htu",
            Refusal::Stale => "iat_outside_window",
            Refusal::Replayed => "jti_replayed",
            Refusal::WrongAth => "wrong_ath",
            Refusal::Nonce => "nonce",
            Refusal::WrongKey => "wrong_key",
        }
    }
}

/// Proof ids seen, kept as long as a proof with them could still be accepted.
#[derive(Default)]
pub(crate) struct DpopMemory {
    seen: HashMap<String, SystemTime>,
    order: VecDeque<(SystemTime, String)>,
    /// The current nonce, once one was issued.
    pub nonce: Option<String>,
}

impl DpopMemory {
    /// The nonce, issuing the first one on demand.
    pub(crate) fn current_nonce(&mut self) -> String {
        self.nonce
            .get_or_insert_with(|| URL_SAFE_NO_PAD.encode(crate::state::random_bytes::<16>()))
            .clone()
    }

    /// A new nonce: proofs carrying the old one are refused from now on.
    pub(crate) fn rotate_nonce(&mut self) -> String {
        self.nonce = None;
        self.current_nonce()
    }

    /// Records `jti`; false if it was seen within the window.
    fn first_use(&mut self, jti: &str, now: SystemTime, window: Duration) -> bool {
        while let Some((at, _)) = self.order.front() {
            if now.duration_since(*at).unwrap_or_default() <= window.saturating_mul(2) {
                break;
            }
            if let Some((_, old)) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        if self.seen.contains_key(jti) {
            return false;
        }
        self.seen.insert(jti.to_owned(), now);
        self.order.push_back((now, jti.to_owned()));
        true
    }
}

/// Verifies the proof `header` for `method` on `uri` (`base_url` + path, no query);
/// with `access_token`, its `ath` too. Returns the key's thumbprint.
pub(crate) fn verify(
    state: &AppState,
    proof: Option<&str>,
    method: &str,
    uri: &str,
    access_token: Option<&str>,
) -> Result<String, Refusal> {
    let proof = proof.ok_or(Refusal::Missing)?;
    let mut parts = proof.split('.');
    let (Some(h), Some(c), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(Refusal::Malformed);
    };
    let header = json(h)?;
    let claims = json(c)?;
    if header["typ"] != "dpop+jwt" || header["alg"] != "ES256" {
        return Err(Refusal::Malformed);
    }
    let jwk = &header["jwk"];
    if jwk["kty"] != "EC" || jwk["crv"] != "P-256" || jwk.get("d").is_some() {
        return Err(Refusal::Malformed);
    }
    let (x, y) = (coordinate(&jwk["x"])?, coordinate(&jwk["y"])?);
    let point = [&[4u8][..], &x, &y].concat();
    let signature = URL_SAFE_NO_PAD.decode(s).map_err(|_| Refusal::Malformed)?;
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point)
        .verify(format!("{h}.{c}").as_bytes(), &signature)
        .map_err(|_| Refusal::BadSignature)?;

    if claims["htm"] != method {
        return Err(Refusal::WrongMethod);
    }
    if claims["htu"] != uri {
        return Err(Refusal::WrongUri);
    }
    let now = state.now();
    let window = state.config.dpop.iat_window;
    let iat = claims["iat"].as_u64().ok_or(Refusal::Malformed)?;
    if iat.abs_diff(epoch_secs(now)) > window.as_secs() {
        return Err(Refusal::Stale);
    }
    if let Some(token) = access_token {
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        if claims["ath"] != URL_SAFE_NO_PAD.encode(digest.as_ref()).as_str() {
            return Err(Refusal::WrongAth);
        }
    }
    let jti = claims["jti"]
        .as_str()
        .filter(|j| j.len() >= 16)
        .ok_or(Refusal::Malformed)?;
    let mut inner = state.lock();
    if state.config.dpop.nonces {
        let current = inner.dpop.current_nonce();
        if claims["nonce"] != current.as_str() {
            return Err(Refusal::Nonce);
        }
    }
    // Last, so a proof refused for another reason can be fixed and sent again.
    if !inner.dpop.first_use(jti, now, window) {
        return Err(Refusal::Replayed);
    }
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(&x),
        URL_SAFE_NO_PAD.encode(&y)
    );
    Ok(URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes())))
}

fn json(part: &str) -> Result<Value, Refusal> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| Refusal::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| Refusal::Malformed)
}

fn coordinate(value: &Value) -> Result<Vec<u8>, Refusal> {
    let bytes = URL_SAFE_NO_PAD
        .decode(value.as_str().ok_or(Refusal::Malformed)?)
        .map_err(|_| Refusal::Malformed)?;
    (bytes.len() == 32).then_some(bytes).ok_or(Refusal::Malformed)
}

/// Counts a refusal in the statistics.
pub(crate) fn count_refusal(state: &AppState, refusal: Refusal) {
    *state
        .lock()
        .stats
        .dpop_rejections
        .entry(refusal.name().to_owned())
        .or_default() += 1;
}
