//! OIDC Back-Channel Logout 1.0 against the development server: the receiver an app
//! mounts ends the sessions a valid logout token names (by `sid`, by `sub`), removes
//! their records and revokes nothing; a forged signature, an unknown key, a wrong
//! `aud` or `iss`, missing `events`, a `nonce`, a stale `iat` and a replayed `jti`
//! each end nothing and answer 400 with the check that failed.

mod common;

use common::Harness;
use std::sync::Arc;
use tokenkeeper::oidc::{BackChannelLogout, LogoutRejection};
use tokenkeeper::{AuthClient, AuthConfig, JwtCheck, MemoryStore, SecretString};
use tokenkeeper_devserver::{session_id, DevServerConfig, LogoutTokenFault};

const APP: &str = "oidc-app";
const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

async fn oidc_config(h: &Harness) -> AuthConfig {
    AuthConfig::discover(&h.server.issuer(), APP)
        .await
        .expect("discovery")
        .clock(h.clock.clone())
        .scopes(["openid"])
}

fn form(token: &str) -> Vec<u8> {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("logout_token", token)
        .finish()
        .into_bytes()
}

struct Signed {
    client: AuthClient,
    store: Arc<MemoryStore>,
    receiver: BackChannelLogout,
}

async fn alice_and_bob_signed_in(h: &Harness) -> Signed {
    let store = Arc::new(MemoryStore::new());
    let client = AuthClient::builder(oidc_config(h).await)
        .store(store.clone())
        .build()
        .unwrap();
    for (user, password) in [("alice", "alice-password"), ("bob", "bob-password")] {
        client.login(user, SecretString::from(password)).await.unwrap();
    }
    let receiver = client.backchannel_logout().unwrap();
    Signed {
        client,
        store,
        receiver,
    }
}

fn stored(store: &MemoryStore, client: &AuthClient, user: &str) -> bool {
    let key = client.session(user).map(|s| s.store_key().to_owned());
    key.is_some_and(|key| common::stored_refresh_token(store, &key).is_some())
}

#[tokio::test]
async fn a_valid_logout_token_ends_the_session_it_names_and_removes_its_record() {
    let h = Harness::start().await;
    let Signed {
        client,
        store,
        receiver,
    } = alice_and_bob_signed_in(&h).await;
    let alice = client.session("alice").unwrap();
    let alice_key = alice.store_key().to_owned();
    let sid = alice.id_token_claims().unwrap().session_id().map(str::to_owned);
    assert_eq!(
        sid.as_deref(),
        Some(session_id(APP, "alice").as_str()),
        "the session keeps its sid"
    );
    assert!(stored(&store, &client, "alice") && stored(&store, &client, "bob"));
    let revocations = h.server.stats().revocations.len();

    let token = h.server.logout_token(APP, None, sid.as_deref(), None);
    let outcome = receiver.handle(FORM, &form(&token)).await;
    assert_eq!(outcome.status, 200, "{:?}", outcome.result);
    assert_eq!(outcome.result.unwrap().ended, 1);
    assert!(client.session("alice").is_none());
    assert_eq!(alice.state(), tokenkeeper::SessionState::LoggedOut);
    assert_eq!(
        common::stored_refresh_token(&*store, &alice_key),
        None,
        "alice's record is removed"
    );
    assert!(stored(&store, &client, "bob"), "bob's session is not named");
    assert_eq!(
        h.server.stats().revocations.len(),
        revocations,
        "the provider ended the session itself: nothing is revoked"
    );

    // By sub: every session of bob ends.
    let token = h.server.logout_token(APP, Some("bob"), None, None);
    let outcome = receiver.handle(FORM, &form(&token)).await;
    assert_eq!((outcome.status, outcome.result.unwrap().ended), (200, 1));
    assert!(client.session("bob").is_none());
}

#[tokio::test]
async fn forged_misaddressed_or_replayed_logout_tokens_end_nothing() {
    let h = Harness::start().await;
    let Signed {
        client,
        store,
        receiver,
    } = alice_and_bob_signed_in(&h).await;
    let sid = session_id(APP, "alice");
    let cases = [
        (LogoutTokenFault::BadSignature, JwtCheck::Signature),
        (LogoutTokenFault::UnknownKid, JwtCheck::UnknownKey),
        (LogoutTokenFault::WrongAudience, JwtCheck::Audience),
        (LogoutTokenFault::WrongIssuer, JwtCheck::Issuer),
        (LogoutTokenFault::MissingEvents, JwtCheck::Events),
        (LogoutTokenFault::WithNonce, JwtCheck::Nonce),
        (LogoutTokenFault::Stale, JwtCheck::IssuedAt),
    ];
    for (fault, check) in cases {
        let token = h.server.logout_token(APP, Some("alice"), Some(&sid), Some(fault));
        let outcome = receiver.handle(FORM, &form(&token)).await;
        assert_eq!(outcome.status, 400, "{fault:?}");
        match outcome.result {
            Err(LogoutRejection::InvalidToken(error)) => assert_eq!(error.check, check, "{fault:?}"),
            other => panic!("{fault:?}: {other:?}"),
        }
        assert!(client.session("alice").is_some(), "{fault:?} ended nothing");
        if fault == LogoutTokenFault::UnknownKid {
            // Its refetch started a cooldown; let it pass (within iat's leeway).
            h.advance(31);
        }
    }
    // Not a form, or no token: 400 before any verification.
    let token = h.server.logout_token(APP, Some("alice"), None, None);
    for (content_type, body) in [(Some("application/json"), form(&token)), (FORM, b"token=x".to_vec())] {
        let outcome = receiver.handle(content_type, &body).await;
        assert!(
            matches!(outcome.result, Err(LogoutRejection::BadRequest(_))),
            "{outcome:?}"
        );
    }
    // An ID token is not a logout token (it has no events claim).
    let id_token_like = h
        .server
        .logout_token(APP, Some("alice"), None, Some(LogoutTokenFault::MissingEvents));
    assert_eq!(receiver.handle(FORM, &form(&id_token_like)).await.status, 400);
    assert!(stored(&store, &client, "alice"));

    // The valid token works once; its replay is refused (and would end nothing new).
    let outcome = receiver.handle(FORM, &form(&token)).await;
    assert_eq!(outcome.status, 200, "{:?}", outcome.result);
    client
        .login("alice", SecretString::from("alice-password"))
        .await
        .unwrap();
    let replay = receiver.handle(FORM, &form(&token)).await;
    assert_eq!(replay.status, 400);
    assert!(
        matches!(&replay.result, Err(LogoutRejection::InvalidToken(e)) if e.check == JwtCheck::Replayed),
        "{replay:?}"
    );
    assert!(client.session("alice").is_some(), "the replay ended the new sign-in");
}

#[tokio::test]
async fn the_iat_window_uses_the_issuer_clock_measured_from_its_key_set_answer() {
    // The provider's clock is an hour ahead of ours: its logout tokens' iat is "in
    // the future" unless the skew its Date headers show is applied.
    let h = Harness::with(DevServerConfig {
        clock_offset_secs: 3600,
        ..DevServerConfig::default()
    })
    .await;
    let client = AuthClient::new(oidc_config(&h).await).unwrap();
    client
        .login("alice", SecretString::from("alice-password"))
        .await
        .unwrap();
    let receiver = client.backchannel_logout().unwrap();
    let token = h.server.logout_token(APP, Some("alice"), None, None);
    let outcome = receiver.handle(FORM, &form(&token)).await;
    assert_eq!(outcome.status, 200, "{:?}", outcome.result);
    assert!(client.session("alice").is_none());
}

#[tokio::test]
async fn without_a_key_set_there_is_no_receiver() {
    let h = Harness::start().await;
    let error = h.client().backchannel_logout().unwrap_err();
    assert!(
        matches!(error, tokenkeeper::AuthError::InvalidConfig { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_session_restored_after_a_restart_is_ended_by_its_sid_before_any_refresh() {
    let h = Harness::start().await;
    let Signed { client, store, .. } = alice_and_bob_signed_in(&h).await;
    let sid = session_id(APP, "alice");
    drop(client);
    // The app restarts: the session comes back from its record (offline start: no
    // request, no new ID token), its claims with it.
    let restarted = AuthClient::builder(oidc_config(&h).await)
        .store(store.clone())
        .build()
        .unwrap();
    let requests = h.token_requests();
    let alice = restarted.restore("alice").await.unwrap();
    assert_eq!(h.token_requests(), requests, "restored without a request");
    assert_eq!(
        alice.id_token_claims().and_then(|c| c.session_id().map(str::to_owned)),
        Some(sid.clone()),
        "the record kept the sid"
    );
    let key = alice.store_key().to_owned();
    let receiver = restarted.backchannel_logout().unwrap();
    let token = h.server.logout_token(APP, None, Some(&sid), None);
    let outcome = receiver.handle(FORM, &form(&token)).await;
    assert_eq!((outcome.status, outcome.result.map(|r| r.ended).ok()), (200, Some(1)));
    assert_eq!(alice.state(), tokenkeeper::SessionState::LoggedOut);
    assert_eq!(
        common::stored_refresh_token(&*store, &key),
        None,
        "its record is removed"
    );
}
