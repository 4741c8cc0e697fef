//! The stored record: what a [`TokenStore`](crate::TokenStore) value holds.
//!
//! One JSON object per session, tagged with its format version:
//!
//! ```json
//! {"tokenkeeper":1,"refresh_token":"…","token_endpoint":"https://as.example.com/token",
//!  "client_id":"my-app","subject":"user:alice","scopes":["read"],
//!  "saved_at":1767225600,"refresh_expires_at":1769817600,
//!  "grant":"5f0c…","writer":"9a41…","revision":7}
//! ```
//!
//! `grant` names the sign-in the refresh token descends from (kept across
//! refreshes, new at every login or sign-in) and `writer` the session instance that
//! wrote the record: with `revision` (kept by the store, or inside the record by
//! [`TokenStoreRecords`](crate::TokenStoreRecords)) they tell a session whether a
//! stored record is newer than what it holds, and whether a logout may delete it.
//!
//! A record over [`COMPACT_RECORD_BYTES`] (a 2 KiB Azure AD refresh token with long
//! scopes) is written without the fields the store key already names (endpoint,
//! client, scopes), so it fits a Windows credential (2,560 bytes).
//!
//! Never a password or client secret: only what a restart needs to resume (the
//! refresh token and, with offline start, `AuthConfig::offline_start`, the current
//! access token and its expiry, `"access_token":"…","access_expires_at":1767229200`)
//! and what tells whose it is. The access token fields are optional: older SDKs
//! ignore them, and a record without them (or with an unusable one) simply costs a
//! refresh at restore.
//!
//! An OpenID Connect session also keeps the claims of its last validated ID token
//! (`"claims":{"iss":"…","sub":"…","name":"…"}`), so `Session::id_token_claims` answers
//! after a restart without a request. Never the ID token itself. A record without
//! them (older SDKs), or with claims this SDK cannot read, still loads, without claims.
//!
//! Decoding reads every format an SDK ever wrote, so an update never signs users out:
//! - format 0 (tokenkeeper 0.1): the bare refresh token string;
//! - format 1: the object above;
//! - later formats: read if they still carry `refresh_token` (the one field every
//!   format keeps), so a downgrade does not sign users out either.
//!
//! Anything else is [`RecordError`]: the caller deletes the entry and asks the user to
//! sign in. Decoding never panics (a proptest feeds it arbitrary input).

use crate::identity::Subject;
use crate::oidc::IdTokenClaims;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The format this SDK writes.
pub(crate) const FORMAT_VERSION: u32 = 1;

/// Largest value accepted from a store. Refresh tokens are at most a few KiB (even as
/// JWTs); a larger value is not ours, and reading it could exhaust memory.
pub(crate) const MAX_RECORD_BYTES: usize = 16 * 1024;

/// Windows Credential Manager's cap on a credential's blob (`CRED_MAX_CREDENTIAL_BLOB_SIZE`,
/// 5 × 512 bytes); a record larger than this is written in its compact form.
pub(crate) const COMPACT_RECORD_BYTES: usize = 2560;

/// Why a stored value cannot be used. Messages never contain the value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RecordError {
    /// Larger than [`MAX_RECORD_BYTES`].
    #[error("the stored entry is {0} bytes, more than the {MAX_RECORD_BYTES} a session record may have")]
    Oversized(usize),
    /// Not JSON we can read, or not a refresh token.
    #[error("the stored entry is corrupt: {0}")]
    Corrupt(&'static str),
    /// A valid record for another token endpoint, client or subject.
    #[error("the stored entry belongs to another {0}")]
    Foreign(&'static str),
}

/// Who a record belongs to; compared on load, so an entry for staging is never
/// used against production, nor one user's entry for another.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Owner<'a> {
    pub token_endpoint: &'a str,
    pub client_id: &'a str,
    pub subject: &'a Subject,
}

/// A decoded (or to-be-encoded) session record.
pub(crate) struct Record {
    /// 0 for the bare-string format.
    pub version: u32,
    pub refresh_token: SecretString,
    pub token_endpoint: Option<String>,
    pub client_id: Option<String>,
    /// `client` or `user:NAME`.
    pub subject: Option<String>,
    pub scopes: Vec<String>,
    pub saved_at: Option<SystemTime>,
    pub refresh_expires_at: Option<SystemTime>,
    /// The access token current when the record was saved, for offline start.
    pub access: Option<StoredAccess>,
    /// The sign-in this refresh token descends from (see the module docs).
    pub grant: Option<u64>,
    /// The session instance that wrote the record.
    pub writer: Option<u64>,
    /// RFC 7638 thumbprint of the DPoP key the tokens are bound to (RFC 9449).
    pub dpop_jkt: Option<String>,
    /// The desktop DPoP key itself (base64url PKCS#8), a secret like the token.
    pub dpop_key: Option<SecretString>,
    /// The alias of a DPoP key that lives in the app's `DpopKeyStore` (a platform
    /// keystore) instead of in this record. Not a secret: the key never leaves it.
    pub dpop_key_alias: Option<String>,
    /// The claims of the session's last validated ID token (OpenID Connect only).
    pub id_token_claims: Option<IdTokenClaims>,
}

/// An access token kept for offline start, with the instant it expires.
pub(crate) struct StoredAccess {
    pub token: SecretString,
    pub expires_at: SystemTime,
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("version", &self.version)
            .field("refresh_token", &"[redacted]")
            .field("token_endpoint", &self.token_endpoint)
            .field("client_id", &self.client_id)
            .field("subject", &self.subject)
            .field("scopes", &self.scopes)
            .field("access", &self.access.as_ref().map(|_| "[redacted]"))
            .field("grant", &self.grant)
            .field("writer", &self.writer)
            .field("dpop_jkt", &self.dpop_jkt)
            .field("dpop_key", &self.dpop_key.as_ref().map(|_| "[redacted]"))
            .field("dpop_key_alias", &self.dpop_key_alias)
            // Personal data, not a credential, but no log needs it.
            .field("id_token_claims", &self.id_token_claims.as_ref().map(|_| "[claims]"))
            .finish_non_exhaustive()
    }
}

/// The wire form. Unknown fields are ignored (a newer format may add some).
#[derive(Serialize, Deserialize)]
struct Wire<'a> {
    tokenkeeper: u32,
    refresh_token: std::borrow::Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    saved_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_expires_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access_token: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access_expires_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    grant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    writer: Option<String>,
    // Added within format 1: readers that do not know them ignore them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dpop_jkt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dpop_key: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dpop_key_alias: Option<String>,
    /// Any JSON here: claims this SDK cannot read are dropped, never a reason to
    /// delete the record (and sign the user out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    claims: Option<serde_json::Value>,
}

/// Ids are hex strings: a JSON number above 2^53 loses digits in JavaScript tools.
fn id_text(id: Option<u64>) -> Option<String> {
    id.map(|id| format!("{id:016x}"))
}

fn id_of(text: Option<&str>) -> Option<u64> {
    text.and_then(|t| u64::from_str_radix(t, 16).ok())
}

/// `client` or `user:NAME`: readable in a keychain viewer, and unambiguous because
/// the prefix decides the kind.
pub(crate) fn subject_label(subject: &Subject) -> String {
    match subject {
        Subject::Client => "client".to_owned(),
        Subject::User(name) => format!("user:{name}"),
    }
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn from_unix_seconds(seconds: u64) -> Option<SystemTime> {
    UNIX_EPOCH.checked_add(Duration::from_secs(seconds))
}

/// RFC 6749 Appendix A.17: `refresh-token = 1*VSCHAR`, VSCHAR = %x20-7E. Anything
/// else cannot have come from a token endpoint.
fn is_refresh_token(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| (0x20..=0x7e).contains(&b)) && value.trim() == value
}

impl Record {
    /// A current-format record for `owner`.
    pub(crate) fn new(
        refresh_token: &SecretString,
        owner: Owner<'_>,
        scope: Option<&str>,
        saved_at: SystemTime,
        refresh_expires_at: Option<SystemTime>,
    ) -> Self {
        Self {
            version: FORMAT_VERSION,
            refresh_token: SecretString::from(refresh_token.expose_secret()),
            token_endpoint: Some(owner.token_endpoint.to_owned()),
            client_id: Some(owner.client_id.to_owned()),
            subject: Some(subject_label(owner.subject)),
            // RFC 6749 §3.3: the scope parameter is a space-delimited list.
            scopes: scope
                .map(|s| s.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect())
                .unwrap_or_default(),
            saved_at: Some(saved_at),
            refresh_expires_at,
            access: None,
            grant: None,
            writer: None,
            dpop_jkt: None,
            dpop_key: None,
            dpop_key_alias: None,
            id_token_claims: None,
        }
    }

    /// The same record carrying `access` for offline start.
    pub(crate) fn with_access(mut self, access: Option<StoredAccess>) -> Self {
        self.access = access;
        self
    }

    /// The same record carrying the session's ID token claims.
    pub(crate) fn with_claims(mut self, claims: Option<IdTokenClaims>) -> Self {
        self.id_token_claims = claims;
        self
    }

    /// The JSON text to store (it contains the refresh token, hence the secret type):
    /// the full form, or the compact one when the full one exceeds
    /// [`COMPACT_RECORD_BYTES`].
    pub(crate) fn encode(&self) -> SecretString {
        let mut wire = Wire {
            tokenkeeper: FORMAT_VERSION,
            refresh_token: self.refresh_token.expose_secret().into(),
            token_endpoint: self.token_endpoint.clone(),
            client_id: self.client_id.clone(),
            subject: self.subject.clone(),
            scopes: self.scopes.clone(),
            saved_at: self.saved_at.map(unix_seconds),
            refresh_expires_at: self.refresh_expires_at.map(unix_seconds),
            access_token: self.access.as_ref().map(|a| a.token.expose_secret().into()),
            access_expires_at: self.access.as_ref().map(|a| unix_seconds(a.expires_at)),
            grant: id_text(self.grant),
            writer: id_text(self.writer),
            dpop_jkt: self.dpop_jkt.clone(),
            dpop_key: self.dpop_key.as_ref().map(|k| k.expose_secret().into()),
            dpop_key_alias: self.dpop_key_alias.clone(),
            claims: self
                .id_token_claims
                .as_ref()
                .map(|c| serde_json::Value::Object(c.all.clone())),
        };
        // Serialising strings, numbers and a Vec<String> to a String cannot fail.
        let full = serde_json::to_string(&wire).unwrap_or_default();
        if full.len() <= COMPACT_RECORD_BYTES {
            return SecretString::from(full);
        }
        // The store key names the endpoint, client and scopes already; the owner
        // check takes a field a record does not name on trust.
        wire.token_endpoint = None;
        wire.client_id = None;
        wire.scopes = Vec::new();
        SecretString::from(serde_json::to_string(&wire).unwrap_or_default())
    }

    /// Reads any format ever written (see the module docs).
    pub(crate) fn decode(raw: &str) -> Result<Self, RecordError> {
        if raw.len() > MAX_RECORD_BYTES {
            return Err(RecordError::Oversized(raw.len()));
        }
        if !raw.trim_start().starts_with('{') {
            // Format 0: tokenkeeper 0.1 stored the bare refresh token.
            if !is_refresh_token(raw) {
                return Err(RecordError::Corrupt("neither a record nor a refresh token"));
            }
            return Ok(Self {
                version: 0,
                refresh_token: SecretString::from(raw),
                token_endpoint: None,
                client_id: None,
                subject: None,
                scopes: Vec::new(),
                saved_at: None,
                refresh_expires_at: None,
                access: None,
                grant: None,
                writer: None,
                dpop_jkt: None,
                dpop_key: None,
                dpop_key_alias: None,
                id_token_claims: None,
            });
        }
        // serde_json never echoes the input in its errors for these types, but the
        // message is not kept anyway: it could quote part of a token.
        let wire: Wire<'_> =
            serde_json::from_str(raw).map_err(|_| RecordError::Corrupt("not a tokenkeeper session record"))?;
        if wire.tokenkeeper == 0 {
            return Err(RecordError::Corrupt("format version 0 is never written as JSON"));
        }
        if !is_refresh_token(&wire.refresh_token) {
            return Err(RecordError::Corrupt(
                "the refresh token is empty or has invalid characters",
            ));
        }
        Ok(Self {
            version: wire.tokenkeeper,
            refresh_token: SecretString::from(wire.refresh_token.as_ref()),
            token_endpoint: wire.token_endpoint,
            client_id: wire.client_id,
            subject: wire.subject,
            scopes: wire.scopes,
            saved_at: wire.saved_at.and_then(from_unix_seconds),
            refresh_expires_at: wire.refresh_expires_at.and_then(from_unix_seconds),
            // An access token that could not have come from a token endpoint (RFC 6750
            // §2.1 b64token is a subset of VSCHAR), or without an expiry, is ignored:
            // the restore then refreshes, as without offline start.
            access: match (wire.access_token, wire.access_expires_at.and_then(from_unix_seconds)) {
                (Some(token), Some(expires_at)) if is_refresh_token(&token) => Some(StoredAccess {
                    token: SecretString::from(token.as_ref()),
                    expires_at,
                }),
                _ => None,
            },
            grant: id_of(wire.grant.as_deref()),
            writer: id_of(wire.writer.as_deref()),
            dpop_jkt: wire.dpop_jkt,
            dpop_key: wire.dpop_key.map(|k| SecretString::from(k.as_ref())),
            dpop_key_alias: wire.dpop_key_alias,
            id_token_claims: match wire.claims {
                Some(serde_json::Value::Object(all)) => IdTokenClaims::from_map(all),
                _ => None,
            },
        })
    }

    /// A field a record names must match its owner; a field it does not name (older
    /// formats) is taken on trust, as the SDK that wrote it did.
    pub(crate) fn check_owner(&self, owner: Owner<'_>) -> Result<(), RecordError> {
        if self
            .token_endpoint
            .as_deref()
            .is_some_and(|e| e != owner.token_endpoint)
        {
            return Err(RecordError::Foreign("token endpoint"));
        }
        if self.client_id.as_deref().is_some_and(|c| c != owner.client_id) {
            return Err(RecordError::Foreign("client"));
        }
        if self
            .subject
            .as_ref()
            .is_some_and(|s| *s != subject_label(owner.subject))
        {
            return Err(RecordError::Foreign("user"));
        }
        Ok(())
    }

    /// True when the server said the refresh token expires and that time has passed.
    pub(crate) fn is_expired(&self, now: SystemTime) -> bool {
        self.refresh_expires_at.is_some_and(|at| at <= now)
    }
}

/// The revision a [`TokenStoreRecords`](crate::TokenStoreRecords) adapter keeps inside
/// a stored value: the `revision` field of a JSON object, 0 for anything without one
/// (a 0.1 bare token, a record an older SDK wrote, a corrupt value).
pub(crate) fn revision_of(raw: &str) -> u64 {
    #[derive(Deserialize)]
    struct Peek {
        #[serde(default)]
        revision: u64,
    }
    if raw.len() > MAX_RECORD_BYTES || !raw.trim_start().starts_with('{') {
        return 0;
    }
    serde_json::from_str::<Peek>(raw).map_or(0, |peek| peek.revision)
}

/// `raw` (a JSON object) with its `revision` field set; `None` if it is not an object.
pub(crate) fn with_revision(raw: &str, revision: u64) -> Option<SecretString> {
    let mut object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(raw).ok()?;
    object.insert("revision".to_owned(), revision.into());
    serde_json::to_string(&object).ok().map(SecretString::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ENDPOINT: &str = "https://as.example.com/token";

    fn alice() -> Subject {
        Subject::User("alice".into())
    }

    fn owner(subject: &Subject) -> Owner<'_> {
        Owner {
            token_endpoint: ENDPOINT,
            client_id: "app",
            subject,
        }
    }

    #[test]
    fn a_record_round_trips_with_every_field() {
        let subject = alice();
        let saved = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        let expires = saved + Duration::from_secs(86_400);
        let record = Record::new(
            &SecretString::from("rt-1"),
            owner(&subject),
            Some("read  write"),
            saved,
            Some(expires),
        );
        let encoded = record.encode();
        let decoded = Record::decode(encoded.expose_secret()).unwrap();
        assert_eq!(decoded.version, FORMAT_VERSION);
        assert_eq!(decoded.refresh_token.expose_secret(), "rt-1");
        assert_eq!(decoded.token_endpoint.as_deref(), Some(ENDPOINT));
        assert_eq!(decoded.client_id.as_deref(), Some("app"));
        assert_eq!(decoded.subject.as_deref(), Some("user:alice"));
        assert_eq!(decoded.scopes, ["read", "write"]);
        assert_eq!(decoded.saved_at, Some(saved));
        assert_eq!(decoded.refresh_expires_at, Some(expires));
        decoded.check_owner(owner(&subject)).unwrap();
        assert!(!decoded.is_expired(saved));
        assert!(decoded.is_expired(expires));
    }

    #[test]
    fn the_bare_string_of_tokenkeeper_0_1_is_read_as_format_0() {
        let decoded = Record::decode("legacy-refresh-token.with~chars/+=").unwrap();
        assert_eq!(decoded.version, 0);
        assert_eq!(
            decoded.refresh_token.expose_secret(),
            "legacy-refresh-token.with~chars/+="
        );
        // Format 0 names no owner: it is trusted, as tokenkeeper 0.1 trusted it.
        decoded.check_owner(owner(&Subject::Client)).unwrap();
    }

    #[test]
    fn a_newer_format_is_read_through_its_refresh_token() {
        let raw = r#"{"tokenkeeper":7,"refresh_token":"rt-7","client_id":"app","new_field":{"x":[1,2]}}"#;
        let decoded = Record::decode(raw).unwrap();
        assert_eq!(decoded.version, 7);
        assert_eq!(decoded.refresh_token.expose_secret(), "rt-7");
    }

    #[test]
    fn id_token_claims_round_trip_and_unreadable_ones_are_dropped_not_fatal() {
        let subject = alice();
        let all: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
            r#"{"iss":"https://as.example.com","sub":"alice","name":"Alice","email_verified":true,"x":[1]}"#,
        )
        .unwrap();
        let claims = IdTokenClaims::from_map(all).unwrap();
        let record = Record::new(
            &SecretString::from("rt"),
            owner(&subject),
            None,
            SystemTime::now(),
            None,
        )
        .with_claims(Some(claims.clone()));
        let decoded = Record::decode(record.encode().expose_secret()).unwrap();
        assert_eq!(decoded.id_token_claims.as_ref(), Some(&claims));
        assert!(
            !format!("{decoded:?}").contains("Alice"),
            "Debug shows no personal data"
        );
        // A record an older SDK wrote has none; claims without iss/sub, or not an
        // object, are dropped and the record still loads.
        for raw in [
            r#"{"tokenkeeper":1,"refresh_token":"rt"}"#,
            r#"{"tokenkeeper":1,"refresh_token":"rt","claims":"alice"}"#,
            r#"{"tokenkeeper":1,"refresh_token":"rt","claims":{"sub":1}}"#,
            r#"{"tokenkeeper":1,"refresh_token":"rt","claims":null}"#,
        ] {
            let decoded = Record::decode(raw).unwrap();
            assert_eq!(decoded.refresh_token.expose_secret(), "rt", "{raw}");
            assert!(decoded.id_token_claims.is_none(), "{raw}");
        }
    }

    #[test]
    fn a_record_of_another_endpoint_client_or_user_is_foreign() {
        let subject = alice();
        let staging = Owner {
            token_endpoint: "https://staging.example.com/token",
            ..owner(&subject)
        };
        let record = Record::new(&SecretString::from("rt"), staging, None, SystemTime::now(), None);
        let decoded = Record::decode(record.encode().expose_secret()).unwrap();
        assert_eq!(
            decoded.check_owner(owner(&subject)).unwrap_err(),
            RecordError::Foreign("token endpoint")
        );
        let other_client = Owner {
            client_id: "other",
            ..owner(&subject)
        };
        assert_eq!(
            Record::decode(
                Record::new(&SecretString::from("rt"), other_client, None, SystemTime::now(), None)
                    .encode()
                    .expose_secret()
            )
            .unwrap()
            .check_owner(owner(&subject))
            .unwrap_err(),
            RecordError::Foreign("client")
        );
        let bob = Subject::User("bob".into());
        assert_eq!(
            decoded_for(&bob).check_owner(owner(&subject)).unwrap_err(),
            RecordError::Foreign("user")
        );
    }

    fn decoded_for(subject: &Subject) -> Record {
        let encoded = Record::new(&SecretString::from("rt"), owner(subject), None, SystemTime::now(), None).encode();
        Record::decode(encoded.expose_secret()).unwrap()
    }

    #[test]
    fn corrupt_and_oversized_values_are_typed_errors() {
        for raw in [
            "",
            " ",
            "{",
            "{}",
            r#"{"tokenkeeper":1}"#,
            r#"{"tokenkeeper":1,"refresh_token":""}"#,
            r#"{"tokenkeeper":1,"refresh_token":"a\nb"}"#,
            r#"{"tokenkeeper":0,"refresh_token":"rt"}"#,
            r#"{"tokenkeeper":"1","refresh_token":"rt"}"#,
            r#"{"refresh_token":"rt"}"#,
            "token with\nnewline",
            "tøken",
            " padded",
        ] {
            assert!(
                matches!(Record::decode(raw), Err(RecordError::Corrupt(_))),
                "{raw:?} must be corrupt"
            );
        }
        let huge = "a".repeat(MAX_RECORD_BYTES + 1);
        assert_eq!(
            Record::decode(&huge).unwrap_err(),
            RecordError::Oversized(MAX_RECORD_BYTES + 1)
        );
    }

    #[test]
    fn a_2_kib_refresh_token_with_long_scopes_fits_a_windows_credential() {
        let subject = Subject::User("someone.with.a.long.name@contoso.onmicrosoft.com".into());
        let owner = Owner {
            token_endpoint: "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token",
            client_id: "04b07795-8ddb-461a-bbee-02f9e1bf7b46",
            subject: &subject,
        };
        let token = "0.A".to_owned() + &"x".repeat(2045);
        let scope =
            "openid profile offline_access https://graph.microsoft.com/User.Read https://graph.microsoft.com/Mail.Read";
        let mut record = Record::new(
            &SecretString::from(token.clone()),
            owner,
            Some(scope),
            SystemTime::now(),
            None,
        );
        record.grant = Some(u64::MAX);
        record.writer = Some(1);
        let encoded = record.encode();
        let stamped = with_revision(encoded.expose_secret(), u64::MAX).unwrap();
        assert!(
            stamped.expose_secret().len() <= COMPACT_RECORD_BYTES,
            "{} bytes",
            stamped.expose_secret().len()
        );
        let decoded = Record::decode(stamped.expose_secret()).unwrap();
        assert_eq!(decoded.refresh_token.expose_secret(), token);
        assert_eq!((decoded.grant, decoded.writer), (Some(u64::MAX), Some(1)));
        decoded.check_owner(owner).unwrap();
        // A small record keeps every field.
        let small = Record::new(&SecretString::from("rt"), owner, Some(scope), SystemTime::now(), None).encode();
        assert!(small.expose_secret().contains("graph.microsoft.com"));
    }

    #[test]
    fn the_revision_is_a_field_of_the_record_and_0_without_one() {
        let raw = Record::new(
            &SecretString::from("rt"),
            owner(&alice()),
            None,
            SystemTime::now(),
            None,
        )
        .encode();
        assert_eq!(revision_of(raw.expose_secret()), 0);
        let stamped = with_revision(raw.expose_secret(), 7).unwrap();
        assert_eq!(revision_of(stamped.expose_secret()), 7);
        assert_eq!(
            revision_of(with_revision(stamped.expose_secret(), 8).unwrap().expose_secret()),
            8
        );
        // Still a record this SDK (and an older one) reads.
        assert_eq!(
            Record::decode(stamped.expose_secret())
                .unwrap()
                .refresh_token
                .expose_secret(),
            "rt"
        );
        assert_eq!(revision_of("bare-token"), 0);
        assert_eq!(revision_of("{corrupt"), 0);
        assert!(with_revision("bare-token", 1).is_none());
    }

    #[test]
    fn errors_and_debug_never_show_the_token() {
        let error = Record::decode(r#"{"tokenkeeper":1,"refresh_token":"secret-rt\u0001"}"#).unwrap_err();
        assert!(!error.to_string().contains("secret-rt"));
        let record = Record::decode("secret-rt").unwrap();
        assert!(!format!("{record:?}").contains("secret-rt"));
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_text_never_panics(raw in ".{0,400}") {
            let _ = Record::decode(&raw);
        }

        #[test]
        fn decoding_json_shaped_text_never_panics(raw in r#"\{("[a-z_]{1,14}":("[ -~]{0,12}"|-?[0-9]{1,25}|null|\[\]|\{\}),?){0,6}\}"#) {
            if let Ok(record) = Record::decode(&raw) {
                let _ = record.check_owner(owner(&Subject::Client));
            }
        }

        #[test]
        fn every_refresh_token_round_trips(token in "[!-~]([ -~]{0,200}[!-~])?", scope in proptest::option::of("[a-z: ]{0,40}")) {
            let subject = alice();
            let record = Record::new(&SecretString::from(token.clone()), owner(&subject), scope.as_deref(), SystemTime::now(), None);
            let decoded = Record::decode(record.encode().expose_secret()).unwrap();
            prop_assert_eq!(decoded.refresh_token.expose_secret(), token.as_str());
        }
    }
}
