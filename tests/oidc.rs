//! OpenID Connect sign-in against the development server: the ID token of a code
//! exchange, a refresh, a password login and an import is validated before anything
//! is installed; its claims are the session's; key rotation costs one key-set fetch.

mod common;

use common::{browser_login, Harness};
use std::sync::Arc;
use std::time::Duration;
use tokenkeeper::oidc::JwtCheck;
use tokenkeeper::signin::{AuthorizationRequest, ImportedTokens};
use tokenkeeper::{AuthClient, AuthConfig, AuthError, MemoryStore, SecretString, TokenParams};
use tokenkeeper_devserver::{Endpoint, Fault, IdTokenFault};

const APP: &str = "oidc-app";
const REDIRECT: &str = "dev.tokenkeeper.demo:/oauth2redirect";

async fn oidc_config(h: &Harness) -> AuthConfig {
    AuthConfig::discover(&h.server.issuer(), APP)
        .await
        .expect("discovery")
        .clock(h.clock.clone())
}

fn openid() -> TokenParams {
    TokenParams::new().scopes(["openid", "profile", "email"])
}

async fn sign_in(client: &AuthClient, request: AuthorizationRequest) -> Result<Arc<tokenkeeper::Session>, AuthError> {
    let pending = client.authorization_request(request).unwrap();
    let redirect = browser_login(pending.url(), "alice", "alice-password").await;
    client.complete_authorization(&pending, &redirect).await
}

fn refused(result: Result<impl std::fmt::Debug, AuthError>) -> JwtCheck {
    match result {
        Err(AuthError::InvalidJwt(e)) => e.check,
        other => panic!("expected a refused ID token, got {other:?}"),
    }
}

#[tokio::test]
async fn a_code_sign_in_validates_the_id_token_and_keeps_its_claims() {
    let h = Harness::start().await;
    let client = AuthClient::new(oidc_config(&h).await).unwrap();
    let pending = client
        .authorization_request(AuthorizationRequest::new("alice", REDIRECT).params(openid()))
        .unwrap();
    assert!(pending.nonce().is_some(), "openid implies a nonce");
    let redirect = browser_login(pending.url(), "alice", "alice-password").await;
    let session = client.complete_authorization(&pending, &redirect).await.unwrap();
    let claims = session.id_token_claims().expect("claims after an openid sign-in");
    assert_eq!(claims.subject, "alice");
    assert_eq!(claims.email.as_deref(), Some("alice@example.test"));
    assert_eq!(claims.all["nonce"].as_str(), pending.nonce());
    assert_eq!(h.server.stats().jwks_requests, 1);
    // Without openid there is neither an ID token nor claims.
    let plain = sign_in(
        &client,
        AuthorizationRequest::new("bob-label", REDIRECT).params(TokenParams::new().scopes(["read"])),
    )
    .await
    .unwrap();
    assert!(plain.id_token_claims().is_none());
}

#[tokio::test]
async fn every_refused_id_token_of_a_sign_in_installs_nothing() {
    let h = Harness::start().await;
    let store = Arc::new(MemoryStore::new());
    let client = AuthClient::builder(oidc_config(&h).await)
        .store(store.clone())
        .build()
        .unwrap();
    // Where alice's session would be stored: learnt from one sign-in, then logged out.
    let first = sign_in(&client, AuthorizationRequest::new("alice", REDIRECT).params(openid()))
        .await
        .unwrap();
    let key = first.store_key().to_owned();
    first.logout().await.unwrap();
    assert_eq!(common::stored_refresh_token(&*store, &key), None);
    let mut cases = common::SPOILED_ID_TOKENS.to_vec();
    cases.push((IdTokenFault::WrongNonce, JwtCheck::Nonce));
    for (fault, check) in cases {
        h.server.inject_id_token_fault(fault);
        let result = sign_in(&client, AuthorizationRequest::new("alice", REDIRECT).params(openid())).await;
        assert_eq!(refused(result), check, "{fault:?}");
        assert!(client.session("alice").is_none(), "{fault:?}: no session");
        assert_eq!(
            common::stored_refresh_token(&*store, &key),
            None,
            "{fault:?}: nothing stored"
        );
        assert_eq!(
            h.server.live_refresh_tokens("alice"),
            0,
            "{fault:?}: what the refused sign-in obtained is revoked, not left live and unowned"
        );
        // The made-up kid's refetch starts a cooldown; let it pass for the next case.
        h.clock.advance(Duration::from_secs(31));
    }
    sign_in(&client, AuthorizationRequest::new("alice", REDIRECT).params(openid()))
        .await
        .expect("an unspoiled sign-in after all of them");
}

#[tokio::test]
async fn max_age_refuses_an_old_login_and_is_sent_to_the_provider() {
    let h = Harness::start().await;
    let client = AuthClient::new(oidc_config(&h).await).unwrap();
    let request = || {
        AuthorizationRequest::new("alice", REDIRECT)
            .params(openid())
            .max_age(Duration::from_secs(60))
            .prompt("login")
    };
    let pending = client.authorization_request(request()).unwrap();
    let url = reqwest::Url::parse(pending.url()).unwrap();
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!((query["max_age"].as_str(), query["prompt"].as_str()), ("60", "login"));
    h.server.inject_id_token_fault(IdTokenFault::StaleAuthTime);
    assert_eq!(refused(sign_in(&client, request()).await), JwtCheck::AuthTime);
    sign_in(&client, request()).await.expect("a fresh login meets max_age");
    assert!(matches!(
        client.authorization_request(AuthorizationRequest::new("alice", REDIRECT).extra_param("max_age", "5")),
        Err(AuthError::InvalidConfig { .. })
    ));
}

#[tokio::test]
async fn a_refresh_with_another_subject_installs_nothing_and_keeps_the_claims() {
    let h = Harness::start().await;
    let client = AuthClient::new(oidc_config(&h).await).unwrap();
    let session = sign_in(&client, AuthorizationRequest::new("alice", REDIRECT).params(openid()))
        .await
        .unwrap();
    let before = session.access_token().await.unwrap();
    h.server.inject_id_token_fault(IdTokenFault::OtherSubject);
    assert_eq!(refused(session.refresh().await), JwtCheck::SubjectChanged);
    assert_eq!(session.id_token_claims().unwrap().subject, "alice");
    let after = session.access_token().await.unwrap();
    assert_eq!(
        tokenkeeper::ExposeSecret::expose_secret(&after),
        tokenkeeper::ExposeSecret::expose_secret(&before),
        "the refused answer's access token was not installed"
    );
}

#[tokio::test]
async fn after_a_key_rotation_a_refresh_fetches_the_new_key_once() {
    let h = Harness::start().await;
    let client = AuthClient::new(oidc_config(&h).await).unwrap();
    let session = sign_in(&client, AuthorizationRequest::new("alice", REDIRECT).params(openid()))
        .await
        .unwrap();
    assert_eq!(h.server.stats().jwks_requests, 1);
    h.server.rotate_signing_key();
    for _ in 0..3 {
        session
            .refresh()
            .await
            .expect("the refreshed ID token verifies with the new key");
    }
    assert_eq!(h.server.stats().jwks_requests, 2, "one refetch for the new kid");
    assert_eq!(session.id_token_claims().unwrap().subject, "alice");
}

#[tokio::test]
async fn password_logins_and_imports_validate_their_id_tokens_too() {
    let h = Harness::start().await;
    let client = AuthClient::new(oidc_config(&h).await.scopes(["openid", "email"])).unwrap();
    let session = client
        .login("alice", SecretString::from("alice-password"))
        .await
        .unwrap();
    assert_eq!(
        session.id_token_claims().unwrap().email.as_deref(),
        Some("alice@example.test")
    );
    h.server.inject_id_token_fault(IdTokenFault::WrongAudience);
    assert_eq!(
        refused(client.login("bob", SecretString::from("bob-password")).await),
        JwtCheck::Audience
    );
    assert!(client.session("bob").is_none());
    assert_eq!(
        h.server.live_refresh_tokens("bob"),
        0,
        "the refused login's tokens are revoked"
    );
    // An import: the app got the tokens elsewhere, the ID token is still checked.
    h.server.inject_id_token_fault(IdTokenFault::BadSignature);
    let body = reqwest::Client::new()
        .post(h.server.token_endpoint())
        .form(&[
            ("grant_type", "password"),
            ("username", "bob"),
            ("password", "bob-password"),
            ("client_id", APP),
            ("scope", "openid"),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let tokens = ImportedTokens::new(SecretString::from(json["access_token"].as_str().unwrap()))
        .id_token(SecretString::from(json["id_token"].as_str().unwrap()));
    let imported = client
        .import_tokens("bob", TokenParams::new().scopes(["openid"]), tokens)
        .await;
    assert_eq!(refused(imported), JwtCheck::Signature);
    assert!(client.session("bob").is_none());
}

#[tokio::test]
async fn without_a_key_set_an_id_token_fails_the_grant_and_installs_nothing() {
    let h = Harness::start().await;
    let store = Arc::new(MemoryStore::new());
    // A client configured by hand, without the issuer's metadata: nothing to verify
    // an ID token against. It fails closed rather than hand out an unchecked sign-in.
    let config = AuthConfig::new(h.server.token_endpoint(), APP)
        .scopes(["openid"])
        .clock(h.clock.clone());
    let client = AuthClient::builder(config).store(store.clone()).build().unwrap();
    let result = client.login("alice", SecretString::from("alice-password")).await;
    assert_eq!(refused(result), JwtCheck::KeySet);
    assert!(client.session("alice").is_none(), "nothing installed");
    let stored = tokenkeeper::TokenStore::keys(&*store).unwrap().unwrap_or_default();
    assert!(stored.is_empty(), "nothing stored");
    assert_eq!(h.server.stats().jwks_requests, 0);
    // An import with an ID token is refused the same way.
    let tokens = ImportedTokens::new(SecretString::from("at-imported")).id_token(SecretString::from("a.b.c"));
    let imported = client
        .import_tokens("bob", TokenParams::new().scopes(["openid"]), tokens)
        .await;
    assert_eq!(refused(imported), JwtCheck::KeySet);
    assert!(client.session("bob").is_none());
    // An app that does not ask for openid gets no ID token and is unaffected.
    let plain = AuthClient::new(AuthConfig::new(h.server.token_endpoint(), APP).clock(h.clock.clone())).unwrap();
    let session = plain
        .login("alice", SecretString::from("alice-password"))
        .await
        .unwrap();
    assert!(session.id_token_claims().is_none());
    session.refresh().await.unwrap();
    assert!(
        session.end_session_request(None).is_err(),
        "no end_session_endpoint configured"
    );
}

#[tokio::test]
async fn claims_are_kept_with_the_stored_session_across_a_restart_without_a_request() {
    let h = Harness::start().await;
    let store = Arc::new(MemoryStore::new());
    let config = oidc_config(&h).await;
    let app = |config: &AuthConfig| {
        AuthClient::builder(config.clone())
            .store(store.clone())
            .build()
            .unwrap()
    };
    let first = app(&config);
    let session = sign_in(&first, AuthorizationRequest::new("alice", REDIRECT).params(openid()))
        .await
        .unwrap();
    let signed_in = session.id_token_claims().unwrap();
    let key = session.store_key().to_owned();
    drop((session, first));

    // The restart: a new client on the same store (offline start is on by default).
    let before = h.server.stats();
    let second = app(&config);
    let restored = second.restore_with("alice", openid()).await.unwrap();
    assert_eq!(restored.id_token_claims().as_ref(), Some(&signed_in));
    assert_eq!(
        h.server.stats(),
        before,
        "no request at all: not a token, key set or UserInfo"
    );

    // A refresh that brings a new ID token replaces them, in memory and in the store;
    // it is checked against the restored claims (same iss and sub, OIDC Core §12.2).
    restored.refresh().await.unwrap();
    let refreshed = restored.id_token_claims().unwrap();
    assert_eq!(refreshed.subject, "alice");
    // at_hash is the new access token's: the claims are the new ID token's.
    assert!(refreshed.all["at_hash"].is_string());
    assert_ne!(
        refreshed.all["at_hash"], signed_in.all["at_hash"],
        "the new ID token's claims"
    );
    let third = app(&config);
    let again = third.restore_with("alice", openid()).await.unwrap();
    assert_eq!(again.id_token_claims(), Some(refreshed.clone()));

    // Without offline start the restore refreshes, and the refreshed ID token must
    // keep the restored sub: another user's is refused and nothing is installed.
    let fourth = app(&config.clone().offline_start(false));
    h.server.inject_id_token_fault(IdTokenFault::OtherSubject);
    assert_eq!(
        refused(fourth.restore_with("alice", openid()).await),
        JwtCheck::SubjectChanged
    );

    // Logout forgets them, and the next start has nothing to restore.
    again.logout().await.unwrap();
    assert!(again.id_token_claims().is_none());
    assert!(app(&config).restore_with("alice", openid()).await.is_err());

    // A record an older SDK wrote (no claims) still loads, without claims.
    let other = sign_in(&third, AuthorizationRequest::new("alice", REDIRECT).params(openid()))
        .await
        .unwrap();
    assert!(other.id_token_claims().is_some());
    let raw = tokenkeeper::TokenStore::load(&*store, &key).unwrap().unwrap();
    let mut record: serde_json::Value = serde_json::from_str(tokenkeeper::ExposeSecret::expose_secret(&raw)).unwrap();
    assert!(record["claims"].is_object(), "the record holds the claims");
    record.as_object_mut().unwrap().remove("claims");
    tokenkeeper::TokenStore::save(&*store, &key, &SecretString::from(record.to_string())).unwrap();
    let old = app(&config)
        .restore_with("alice", openid())
        .await
        .expect("a record without claims loads");
    assert!(old.id_token_claims().is_none());
}

#[tokio::test]
async fn userinfo_answers_for_the_signed_in_user_and_a_foreign_sub_is_refused() {
    let h = Harness::start().await;
    let client = AuthClient::new(oidc_config(&h).await).unwrap();
    let session = sign_in(&client, AuthorizationRequest::new("alice", REDIRECT).params(openid()))
        .await
        .unwrap();
    let info = session.userinfo().await.unwrap();
    assert_eq!(
        (info.subject.as_str(), info.email.as_deref()),
        ("alice", Some("alice@example.test"))
    );
    assert_eq!(info.issuer, h.server.issuer());
    h.server.inject(
        Endpoint::Resource,
        Fault::json(200, serde_json::json!({"sub": "mallory", "name": "Mallory"})),
    );
    assert_eq!(refused(session.userinfo().await), JwtCheck::SubjectChanged);
    // A revoked token is renewed once and the request re-sent, as for any GET.
    h.server
        .revoke_token(&common::value(&session.access_token().await.unwrap()));
    assert_eq!(session.userinfo().await.unwrap().subject, "alice");
}

#[tokio::test]
async fn rp_initiated_logout_ends_the_provider_session_and_checks_the_state() {
    let h = Harness::start().await;
    let client = AuthClient::new(oidc_config(&h).await).unwrap();
    let session = sign_in(&client, AuthorizationRequest::new("alice", REDIRECT).params(openid()))
        .await
        .unwrap();
    let end = session.end_session_request(Some(REDIRECT)).unwrap();
    assert!(
        !format!("{end:?}").contains("id_token_hint="),
        "Debug hides the ID token"
    );
    let url = reqwest::Url::parse(end.url()).unwrap();
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(query["client_id"], APP);
    assert_eq!(query["post_logout_redirect_uri"], REDIRECT);
    assert!(query["id_token_hint"].split('.').count() == 3);
    session.logout().await.unwrap();
    assert!(session.id_token_claims().is_none(), "local logout forgets the claims");
    // The browser: the provider ends its session and redirects back.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = browser.get(end.url()).send().await.unwrap();
    assert_eq!(answer.status(), 303);
    let redirect = answer.headers()["location"].to_str().unwrap().to_owned();
    end.complete(&redirect).expect("our state came back");
    assert_eq!(h.server.stats().end_sessions, vec!["alice".to_owned()]);
    assert_eq!(h.server.live_tokens("alice"), 0);
    let forged = format!("{REDIRECT}?state=someone-elses");
    assert!(matches!(end.complete(&forged), Err(AuthError::StateMismatch)));
}

#[tokio::test]
async fn a_step_up_challenge_is_typed_and_the_stronger_sign_in_replaces_the_token() {
    let h = Harness::start().await;
    let client = AuthClient::new(oidc_config(&h).await).unwrap();
    let session = sign_in(&client, AuthorizationRequest::new("alice", REDIRECT).params(openid()))
        .await
        .unwrap();
    let weak = common::value(&session.access_token().await.unwrap());
    let challenge = r#"Bearer error="insufficient_user_authentication", error_description="MFA needed", acr_values="urn:mfa", max_age="300""#;
    h.server.inject(
        Endpoint::Resource,
        Fault::status(401).with_header("WWW-Authenticate", challenge),
    );
    let error = session
        .send(client.http().get(h.server.resource_url("/payments")))
        .await
        .unwrap_err();
    match &error {
        AuthError::StepUpRequired { acr_values, max_age } => {
            assert_eq!(acr_values.as_deref(), Some("urn:mfa"));
            assert_eq!(*max_age, Some(Duration::from_secs(300)));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        common::value(&session.access_token().await.unwrap()),
        weak,
        "the token is kept"
    );
    let pending = client
        .authorization_request(
            AuthorizationRequest::new("alice", REDIRECT)
                .params(openid())
                .step_up(&error),
        )
        .unwrap();
    let url = reqwest::Url::parse(pending.url()).unwrap();
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(
        (query["acr_values"].as_str(), query["max_age"].as_str()),
        ("urn:mfa", "300")
    );
    let redirect = browser_login(pending.url(), "alice", "alice-password").await;
    let stronger = client.complete_authorization(&pending, &redirect).await.unwrap();
    assert!(Arc::ptr_eq(&stronger, &session), "the same session, one per identity");
    assert_ne!(common::value(&session.access_token().await.unwrap()), weak);
    // A "stronger" sign-in as someone else does not replace alice's token.
    let pending = client
        .authorization_request(AuthorizationRequest::new("alice", REDIRECT).params(openid()))
        .unwrap();
    let redirect = browser_login(pending.url(), "bob", "bob-password").await;
    assert_eq!(
        refused(client.complete_authorization(&pending, &redirect).await),
        JwtCheck::SubjectChanged
    );
    assert_eq!(session.id_token_claims().unwrap().subject, "alice");
}

#[tokio::test]
async fn a_pushed_authorization_request_opens_a_short_url_and_signs_in() {
    let h = Harness::start().await;
    let client = AuthClient::new(oidc_config(&h).await).unwrap();
    let pending = client
        .start_authorization(
            AuthorizationRequest::new("alice", REDIRECT)
                .params(openid())
                .login_hint("alice"),
        )
        .await
        .unwrap();
    let url = reqwest::Url::parse(pending.url()).unwrap();
    let names: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
    assert_eq!(
        names,
        ["client_id", "request_uri"],
        "nothing of the request is in the browser"
    );
    assert_eq!(h.server.stats().pushed_authorization_requests, 1);
    let redirect = browser_login(pending.url(), "alice", "alice-password").await;
    let session = client.complete_authorization(&pending, &redirect).await.unwrap();
    assert_eq!(
        session.id_token_claims().unwrap().subject,
        "alice",
        "nonce and all checked as usual"
    );
    // The push's own errors are typed: a scope the client may not have.
    let refused = client
        .push_authorization_request(
            AuthorizationRequest::new("alice", REDIRECT).params(TokenParams::new().scopes(["admin"])),
        )
        .await;
    assert!(matches!(refused, Err(AuthError::InvalidRequest(_))), "{refused:?}");
}

#[tokio::test]
async fn a_server_that_requires_par_gets_only_pushed_requests() {
    let h = Harness::with(tokenkeeper_devserver::DevServerConfig {
        require_pushed_authorization_requests: true,
        ..Default::default()
    })
    .await;
    let client = AuthClient::new(oidc_config(&h).await).unwrap();
    let plain = client.authorization_request(AuthorizationRequest::new("alice", REDIRECT).params(openid()));
    assert!(matches!(plain, Err(AuthError::InvalidConfig { .. })), "{plain:?}");
    let session = sign_in_pushed(&client).await;
    assert_eq!(session.id_token_claims().unwrap().subject, "alice");
}

async fn sign_in_pushed(client: &AuthClient) -> Arc<tokenkeeper::Session> {
    let pending = client
        .start_authorization(AuthorizationRequest::new("alice", REDIRECT).params(openid()))
        .await
        .unwrap();
    let redirect = browser_login(pending.url(), "alice", "alice-password").await;
    client.complete_authorization(&pending, &redirect).await.unwrap()
}

#[tokio::test]
async fn a_store_too_small_for_the_claims_gets_the_record_without_them() {
    let h = Harness::start().await;
    // Large enough for the refresh token and the owner fields, too small for the
    // access token or the claims besides (Windows Credential Manager's cap is 2,560).
    let store = common::store::TestStore::capped(500);
    let client = AuthClient::builder(oidc_config(&h).await)
        .store(store.clone())
        .build()
        .unwrap();
    let session = sign_in(&client, AuthorizationRequest::new("alice", REDIRECT).params(openid()))
        .await
        .unwrap();
    assert!(session.id_token_claims().is_some(), "in memory they are kept");
    let raw = store.raw(session.store_key()).expect("the record was saved");
    let record: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert!(record["refresh_token"].is_string());
    assert!(record.get("claims").is_none(), "{} bytes without claims", raw.len());
    assert!(record.get("access_token").is_none());
    let before = h.token_requests();
    let restored = AuthClient::builder(oidc_config(&h).await)
        .store(store.clone())
        .build()
        .unwrap()
        .restore_with("alice", openid())
        .await
        .unwrap();
    // Nothing stored but the refresh token: the restore refreshes, and the claims
    // are the refreshed ID token's.
    assert_eq!(h.token_requests(), before + 1);
    assert_eq!(restored.id_token_claims().unwrap().subject, "alice");
}
