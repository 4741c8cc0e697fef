//! `KeyringStore` against a real Secret Service (GNOME Keyring on a private D-Bus).
//! Run with `scripts/with-secret-service.sh cargo test --test keyring_store`; where no
//! Secret Service can start, each test prints why and skips.
#![cfg(target_os = "linux")]

mod common;

use common::*;
use secrecy::{ExposeSecret, SecretString};
use std::process::Command;
use std::sync::Arc;
use tokenkeeper::{AuthClient, KeyringStore, TokenStore};

/// The store, or `None` (after printing why) where no Secret Service can run.
fn secret_service(service: &str) -> Option<KeyringStore> {
    if let Ok(reason) = std::env::var("TOKENKEEPER_NO_SECRET_SERVICE") {
        eprintln!("SKIPPED: no Secret Service here ({reason})");
        return None;
    }
    if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() {
        eprintln!("SKIPPED: no D-Bus session bus; run under scripts/with-secret-service.sh");
        return None;
    }
    // Inside the script a failure to connect is a failure, not a skip.
    Some(KeyringStore::new(service).expect("the Secret Service answers"))
}

fn service_name(test: &str) -> String {
    format!("tokenkeeper-test-{}-{test}", std::process::id())
}

fn load(store: &KeyringStore, key: &str) -> Option<String> {
    store
        .load(key)
        .expect("load succeeds")
        .map(|v| v.expose_secret().to_owned())
}

/// What `secret-tool` (libsecret, another client of the same service) sees.
fn secret_tool_lookup(service: &str, key: &str) -> Option<String> {
    let output = Command::new("secret-tool")
        .args(["lookup", "service", service, "username", key])
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn round_trip_overwrite_and_delete_against_the_secret_service() {
    let service = service_name("round-trip");
    let Some(store) = secret_service(&service) else { return };
    let key = "tokenkeeper/v2/https:%2F%2Fas.example.com%2Ftoken/app/user=alice/-/-/-";

    assert_eq!(load(&store, key), None, "a fresh keyring holds nothing");
    store.save(key, &SecretString::from("first-value")).unwrap();
    assert_eq!(load(&store, key).as_deref(), Some("first-value"));

    // Cross-check once with libsecret's own client: the value really is in the service.
    match secret_tool_lookup(&service, key) {
        Some(seen) => assert_eq!(seen, "first-value"),
        None => eprintln!("note: secret-tool is not installed; cross-check skipped"),
    }

    store.save(key, &SecretString::from("second-value")).unwrap();
    assert_eq!(load(&store, key).as_deref(), Some("second-value"), "a save overwrites");

    store.remove(key).unwrap();
    assert_eq!(load(&store, key), None, "remove deletes");
    store.remove(key).unwrap();
    assert_eq!(secret_tool_lookup(&service, key), None);
}

#[test]
fn keys_and_services_are_separate_entries_and_large_records_fit() {
    let service = service_name("separate");
    let Some(store) = secret_service(&service) else { return };
    let Some(other_app) = secret_service(&service_name("other-app")) else {
        return;
    };
    // A record holding a JWT refresh token is a few KiB.
    let record = format!(r#"{{"tokenkeeper":1,"refresh_token":"{}"}}"#, "x".repeat(8 * 1024));

    store.save("alice", &SecretString::from(record.clone())).unwrap();
    store.save("bob", &SecretString::from("bob-value")).unwrap();
    other_app.save("alice", &SecretString::from("other-app-value")).unwrap();

    assert_eq!(load(&store, "alice").as_deref(), Some(record.as_str()));
    assert_eq!(load(&store, "bob").as_deref(), Some("bob-value"));
    assert_eq!(load(&other_app, "alice").as_deref(), Some("other-app-value"));

    store.remove("alice").unwrap();
    assert_eq!(load(&store, "alice"), None);
    assert_eq!(
        load(&store, "bob").as_deref(),
        Some("bob-value"),
        "only alice's entry is gone"
    );
    assert_eq!(load(&other_app, "alice").as_deref(), Some("other-app-value"));
    store.remove("bob").unwrap();
    other_app.remove("alice").unwrap();
}

#[tokio::test]
async fn an_app_restart_resumes_from_the_keyring_with_one_refresh_and_no_password() {
    let service = service_name("restart");
    let Some(store) = secret_service(&service) else { return };
    let h = Harness::start().await;
    let client = h.builder().store(Arc::new(store)).build().unwrap();
    let alice = client.login("alice", password(ALICE_PASSWORD)).await.unwrap();
    let key = alice.store_key().to_owned();
    drop((alice, client));

    // A new process would open the keyring afresh: so does this.
    let store = secret_service(&service).unwrap();
    let record = load(&store, &key).expect("the session record is in the keyring");
    let parsed: serde_json::Value = serde_json::from_str(&record).expect("a JSON record");
    assert_eq!(parsed["tokenkeeper"], 1, "a versioned session record");
    assert!(!record.contains(ALICE_PASSWORD));
    let (passwords, refreshes) = (h.grants("password"), h.grants("refresh_token"));
    // The refresh a restart makes (offline start, the default, would serve the stored
    // access token instead; tests/offline.rs covers that).
    let client = AuthClient::builder(h.config().offline_start(false))
        .store(Arc::new(store.clone()))
        .build()
        .unwrap();
    let alice = client.restore("alice").await.unwrap();
    alice.access_token().await.unwrap();
    assert_eq!(h.grants("password"), passwords, "no password after the restart");
    assert_eq!(h.grants("refresh_token"), refreshes + 1, "exactly one refresh");

    alice.logout().await.unwrap();
    assert_eq!(load(&store, &key), None, "logout deletes the keyring entry");
}
