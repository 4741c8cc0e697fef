//! The store key: which entry of a [`TokenStore`](crate::TokenStore) a session uses.
//!
//! ```text
//! tokenkeeper/v2/https:%2F%2Fas.example.com%2Ftoken/my-app/user=alice/scope=read,write/-/-
//! tokenkeeper/v2/<token endpoint>/<client id>/<subject>/<scopes>/<audience>/<resource>
//! ```
//!
//! Readable in a keychain viewer, and unambiguous: every part is escaped so it cannot
//! contain `/` (the part separator), `,` (the scope separator) or `%` itself, and the
//! optional parts are `-` when absent and `name=value` when present. So two different
//! (endpoint, client, identity) tuples never share a key, whatever a user name or
//! scope contains; production and staging with one client id never share an entry.
//!
//! tokenkeeper 0.1 used `tokenkeeper/v1/{client_id}/{identity}` (no endpoint, not
//! escaped); [`legacy`] names it so the first load can move such an entry.

use crate::identity::{Identity, Subject};
use std::fmt::Write;

/// Percent-escapes `%`, `/`, `,`, and everything outside printable ASCII (spaces,
/// control characters, non-ASCII bytes). Injective: `%XX` decodes to exactly one byte.
fn escape(part: &str, out: &mut String) {
    for byte in part.bytes() {
        match byte {
            b'%' | b'/' | b',' => {
                let _ = write!(out, "%{byte:02X}");
            }
            0x21..=0x7e => out.push(char::from(byte)),
            _ => {
                let _ = write!(out, "%{byte:02X}");
            }
        }
    }
}

fn optional(out: &mut String, name: &str, value: Option<&str>) {
    out.push('/');
    match value {
        None => out.push('-'),
        Some(value) => {
            out.push_str(name);
            out.push('=');
            escape(value, out);
        }
    }
}

/// What every key of `client_id` at `token_endpoint` starts with, for listing them.
pub(crate) fn client_prefix(token_endpoint: &str, client_id: &str) -> String {
    let mut key = String::from("tokenkeeper/v2/");
    escape(token_endpoint, &mut key);
    key.push('/');
    escape(client_id, &mut key);
    key.push('/');
    key
}

/// The key of `identity`'s entry for `client_id` at `token_endpoint`.
pub(crate) fn store_key(token_endpoint: &str, client_id: &str, identity: &Identity) -> String {
    let mut key = client_prefix(token_endpoint, client_id);
    match identity.subject() {
        Subject::Client => key.push_str("client"),
        Subject::User(name) => {
            key.push_str("user=");
            escape(name, &mut key);
        }
    }
    key.push('/');
    if identity.scopes.is_empty() {
        key.push('-');
    } else {
        key.push_str("scope=");
        // A set, sorted: the same scopes in another order are the same identity.
        for (i, scope) in identity.scopes().enumerate() {
            if i > 0 {
                key.push(',');
            }
            escape(scope, &mut key);
        }
    }
    optional(&mut key, "aud", identity.audience.as_deref());
    optional(&mut key, "res", identity.resource.as_deref());
    key
}

/// The key tokenkeeper 0.1 used for the same identity (see the module docs).
pub(crate) fn legacy(client_id: &str, identity: &Identity) -> String {
    identity.store_key(client_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn identity(subject: Subject, scopes: &[&str], audience: Option<&str>, resource: Option<&str>) -> Identity {
        Identity {
            subject,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            audience: audience.map(str::to_owned),
            resource: resource.map(str::to_owned),
        }
    }

    fn user(name: &str) -> Subject {
        Subject::User(name.to_owned())
    }

    #[test]
    fn the_key_is_readable() {
        let key = store_key(
            "https://as.example.com/token",
            "my-app",
            &identity(user("alice"), &["write", "read"], Some("api"), None),
        );
        assert_eq!(
            key,
            "tokenkeeper/v2/https:%2F%2Fas.example.com%2Ftoken/my-app/user=alice/scope=read,write/aud=api/-"
        );
    }

    #[test]
    fn production_and_staging_never_share_a_key() {
        let alice = identity(user("alice"), &[], None, None);
        assert_ne!(
            store_key("https://as.example.com/token", "app", &alice),
            store_key("https://staging.as.example.com/token", "app", &alice)
        );
    }

    #[test]
    fn crafted_names_and_scopes_do_not_collide() {
        let endpoint = "https://as.example.com/token";
        let pairs = [
            (
                identity(user("alice/scope=x"), &[], None, None),
                identity(user("alice"), &["x"], None, None),
            ),
            (
                identity(user("a"), &["b,c"], None, None),
                identity(user("a"), &["b", "c"], None, None),
            ),
            (
                identity(user("a"), &[], None, None),
                identity(user("a"), &[""], None, None),
            ),
            (
                identity(user("-"), &[], None, None),
                identity(user("%2D"), &[], None, None),
            ),
            (
                identity(Subject::Client, &[], None, None),
                identity(user("client"), &[], None, None),
            ),
            (
                identity(user("a"), &[], Some("-"), None),
                identity(user("a"), &[], None, None),
            ),
            (
                identity(user("a"), &[], Some("x"), None),
                identity(user("a"), &[], None, Some("x")),
            ),
        ];
        for (a, b) in pairs {
            assert_ne!(
                store_key(endpoint, "app", &a),
                store_key(endpoint, "app", &b),
                "{a} vs {b}"
            );
        }
        // An endpoint and client id cannot be confused with each other either.
        let alice = identity(user("alice"), &[], None, None);
        assert_ne!(
            store_key("https://a/x", "y", &alice),
            store_key("https://a", "x/y", &alice)
        );
    }

    #[test]
    fn the_legacy_key_is_the_0_1_format() {
        let alice = identity(user("alice"), &["read"], None, None);
        assert_eq!(legacy("app", &alice), "tokenkeeper/v1/app/user:alice scope=\"read\"");
    }

    fn arb_identity() -> impl Strategy<Value = Identity> {
        let text = "[a-c/,%= -]{0,4}";
        (
            proptest::option::of(text),
            proptest::collection::btree_set(text, 0..3),
            proptest::option::of(text),
            proptest::option::of(text),
        )
            .prop_map(
                |(user, scopes, audience, resource): (Option<String>, BTreeSet<String>, _, _)| Identity {
                    subject: user.map_or(Subject::Client, Subject::User),
                    scopes,
                    audience,
                    resource,
                },
            )
    }

    proptest! {
        #[test]
        fn different_identities_have_different_keys(
            a in arb_identity(), b in arb_identity(),
            ea in "[a-c/%]{0,3}", eb in "[a-c/%]{0,3}", ca in "[a-c/%]{0,3}", cb in "[a-c/%]{0,3}",
        ) {
            let same = a == b && ea == eb && ca == cb;
            prop_assert_eq!(store_key(&ea, &ca, &a) == store_key(&eb, &cb, &b), same);
        }
    }
}
