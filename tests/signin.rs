//! User sign-in against the development server: authorization code with PKCE (and
//! every way a redirect can be wrong), the loopback listener, discovery, token
//! import, and recovery of a signed-in session after revocation.

mod common;

use common::{browser_login, value, Harness};
use std::sync::Arc;
use std::time::Duration;
use tokenkeeper::signin::{
    AuthorizationRequest, ImportedTokens, LoopbackPages, LoopbackRedirect, PendingAuthorization,
};
use tokenkeeper::{AuthClient, AuthConfig, AuthError, MemoryStore, SecretString, Subject, TokenParams, TokenStore};
use tokenkeeper_devserver::{DevServerConfig, Endpoint, Fault};

const APP: &str = common::NATIVE_APP;
const REDIRECT: &str = "dev.tokenkeeper.demo:/oauth2redirect";

fn native_config(h: &Harness) -> AuthConfig {
    h.native_config()
}

fn with_param(redirect: &str, name: &str, new_value: &str) -> String {
    let mut url = reqwest::Url::parse(redirect).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .into_owned()
        .map(|(k, v)| if k == name { (k, new_value.to_owned()) } else { (k, v) })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    url.into()
}

fn start(client: &AuthClient) -> PendingAuthorization {
    client
        .authorization_request(AuthorizationRequest::new("alice", REDIRECT))
        .unwrap()
}

#[tokio::test]
async fn pkce_round_trip_signs_the_user_in() {
    let h = Harness::start().await;
    let store = Arc::new(MemoryStore::new());
    let client = AuthClient::builder(native_config(&h))
        .store(store.clone())
        .build()
        .unwrap();
    let pending = client
        .authorization_request(AuthorizationRequest::new("alice", REDIRECT).params(TokenParams::new().scopes(["read"])))
        .unwrap();
    let url = reqwest::Url::parse(pending.url()).unwrap();
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["scope"], "read");
    assert_eq!(query["state"], pending.state());

    let redirect = browser_login(pending.url(), "alice", "alice-password").await;
    assert!(redirect.starts_with(REDIRECT), "{redirect}");
    let session = client.complete_authorization(&pending, &redirect).await.unwrap();

    assert_eq!(session.identity().subject(), &Subject::User("alice".into()));
    assert_eq!(h.grants("authorization_code"), 1);
    let token = session.access_token().await.unwrap();
    assert_eq!(h.token_requests(), 1, "the exchanged token is served from the cache");
    let me = session
        .send(client.http().get(h.server.resource_url("/me")))
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    assert!(token.scopes().eq(["read"]));
    assert!(
        store.load(session.store_key()).unwrap().is_some(),
        "the refresh token is persisted"
    );
    assert!(Arc::ptr_eq(
        &client
            .session_with("alice", TokenParams::new().scopes(["read"]))
            .unwrap(),
        &session
    ));
}

#[tokio::test]
async fn a_redirect_with_another_state_is_rejected_before_any_exchange() {
    let h = Harness::start().await;
    let client = AuthClient::new(native_config(&h)).unwrap();
    let pending = start(&client);
    let redirect = browser_login(pending.url(), "alice", "alice-password").await;
    let forged = with_param(&redirect, "state", "attacker-state");
    let error = client.complete_authorization(&pending, &forged).await.unwrap_err();
    assert!(matches!(error, AuthError::StateMismatch), "{error:?}");
    assert_eq!(h.token_requests(), 0);
    assert!(client.session("alice").is_none());
}

#[tokio::test]
async fn a_code_exchanged_with_another_verifier_is_rejected() {
    let h = Harness::start().await;
    let client = AuthClient::new(native_config(&h)).unwrap();
    let victim = start(&client);
    let attacker = start(&client);
    // The attacker injects the victim's code into its own flow (state passes, PKCE must not).
    let redirect = browser_login(victim.url(), "alice", "alice-password").await;
    let injected = with_param(&redirect, "state", attacker.state());
    let error = client.complete_authorization(&attacker, &injected).await.unwrap_err();
    assert!(
        matches!(&error, AuthError::InvalidGrant(e) if e.description.as_deref().is_some_and(|d| d.contains("code_verifier"))),
        "{error:?}"
    );
    assert!(client.session("alice").is_none());
}

#[tokio::test]
async fn a_replayed_code_is_rejected_and_revokes_what_it_issued() {
    let h = Harness::start().await;
    let client = AuthClient::new(native_config(&h)).unwrap();
    let pending = start(&client);
    let redirect = browser_login(pending.url(), "alice", "alice-password").await;
    let session = client.complete_authorization(&pending, &redirect).await.unwrap();
    let first = value(&session.access_token().await.unwrap());

    let error = client.complete_authorization(&pending, &redirect).await.unwrap_err();
    assert!(matches!(error, AuthError::InvalidGrant(_)), "{error:?}");
    let status = reqwest::Client::new()
        .get(h.server.resource_url("/me"))
        .bearer_auth(&first)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(
        status, 401,
        "RFC 6749 §4.1.2: tokens issued from a replayed code are revoked"
    );
}

#[tokio::test]
async fn an_authorization_response_from_another_issuer_is_rejected() {
    let h = Harness::start().await;
    let client = AuthClient::new(native_config(&h).issuer("https://as.example.com", true)).unwrap();
    let pending = start(&client);
    let redirect = browser_login(pending.url(), "alice", "alice-password").await;
    let error = client.complete_authorization(&pending, &redirect).await.unwrap_err();
    match error {
        AuthError::IssuerMismatch { expected, actual } => {
            assert_eq!(expected, "https://as.example.com");
            assert_eq!(actual, Some(h.server.base_url()));
        }
        other => panic!("expected IssuerMismatch, got {other:?}"),
    }
    assert_eq!(h.token_requests(), 0);
}

#[tokio::test]
async fn a_denied_login_is_access_denied() {
    let h = Harness::start().await;
    let client = AuthClient::new(native_config(&h)).unwrap();
    let pending = start(&client);
    let redirect = browser_login(pending.url(), "alice", "wrong").await;
    let error = client.complete_authorization(&pending, &redirect).await.unwrap_err();
    assert!(matches!(error, AuthError::AccessDenied(_)), "{error:?}");
}

/// A desktop sign-in through the loopback listener: the browser's login, the
/// redirect to 127.0.0.1, and the page the browser finally shows. Returns that
/// page's text and the app's outcome.
async fn loopback_sign_in(
    client: &AuthClient,
    listener: LoopbackRedirect,
    password: &str,
) -> (String, Result<Arc<tokenkeeper::Session>, AuthError>) {
    let redirect_uri = listener.redirect_uri().to_owned();
    assert!(redirect_uri.starts_with("http://127.0.0.1:") && redirect_uri.ends_with("/callback"));
    let pending = client
        .authorization_request(AuthorizationRequest::new("alice", &redirect_uri))
        .unwrap();
    let url = pending.url().to_owned();
    let app = client.clone();
    let completing = tokio::spawn(async move { listener.complete(&app, &pending).await });
    let location = browser_login(&url, "alice", password).await;
    assert!(location.starts_with(&redirect_uri), "{location}");
    let browser = reqwest::Client::new();
    let origin = redirect_uri.trim_end_matches("/callback");
    let favicon = browser.get(format!("{origin}/favicon.ico")).send().await.unwrap();
    assert_eq!(favicon.status(), 404, "other paths do not end the wait");
    let page = browser.get(&location).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let text = page.text().await.unwrap();
    assert!(!text.contains("code="), "the page does not echo the code");
    let outcome = completing.await.unwrap();
    assert!(
        reqwest::Client::new().get(&location).send().await.is_err(),
        "the listener is closed after one redirect"
    );
    (text, outcome)
}

#[tokio::test]
async fn the_loopback_page_says_signed_in_only_after_the_code_is_exchanged() {
    let h = Harness::start().await;
    let client = AuthClient::new(native_config(&h)).unwrap();
    let listener = LoopbackRedirect::bind().await.unwrap();
    let (page, outcome) = loopback_sign_in(&client, listener, "alice-password").await;
    assert!(page.contains("You are signed in"), "{page}");
    assert_eq!(h.grants("authorization_code"), 1, "the page came after the exchange");
    assert!(outcome.unwrap().access_token().await.is_ok());
}

#[tokio::test]
async fn the_loopback_page_reports_a_refused_sign_in() {
    let h = Harness::start().await;
    let client = AuthClient::new(native_config(&h)).unwrap();
    let listener = LoopbackRedirect::bind().await.unwrap();
    let (page, outcome) = loopback_sign_in(&client, listener, "wrong").await;
    assert!(matches!(outcome, Err(AuthError::AccessDenied(_))), "{outcome:?}");
    assert!(
        page.contains("did not complete") && page.contains("refused") && !page.contains("signed in"),
        "{page}"
    );
    assert_eq!(h.grants("authorization_code"), 0);
}

#[tokio::test]
async fn the_loopback_pages_are_the_apps_own_and_report_a_failed_exchange() {
    let h = Harness::start().await;
    let client = AuthClient::new(native_config(&h)).unwrap();
    h.server.inject(
        Endpoint::Token,
        Fault::json(
            400,
            serde_json::json!({"error": "invalid_grant", "error_description": "code <b>spent</b>"}),
        ),
    );
    let listener = LoopbackRedirect::bind().await.unwrap().pages(LoopbackPages::new(
        "<p>Welcome to Example</p>",
        "<p>Example could not sign you in ({error})</p>",
    ));
    let (page, outcome) = loopback_sign_in(&client, listener, "alice-password").await;
    assert!(matches!(outcome, Err(AuthError::InvalidGrant(_))), "{outcome:?}");
    assert!(page.starts_with("<p>Example could not sign you in ("), "{page}");
    assert!(
        page.contains("code &lt;b&gt;spent&lt;/b&gt;"),
        "the server's text is escaped: {page}"
    );
}

/// A loopback listener and a sign-in started for its redirect URI.
async fn listening(client: &AuthClient) -> (LoopbackRedirect, PendingAuthorization) {
    let listener = LoopbackRedirect::bind().await.unwrap();
    let pending = client
        .authorization_request(AuthorizationRequest::new("alice", listener.redirect_uri()))
        .unwrap();
    (listener, pending)
}

#[tokio::test]
async fn a_loopback_callback_dropped_unanswered_shows_a_neutral_page() {
    let h = Harness::start().await;
    let (listener, pending) = listening(&AuthClient::new(native_config(&h)).unwrap()).await;
    let receiving = tokio::spawn(listener.receive());
    let location = browser_login(pending.url(), "alice", "alice-password").await;
    let browser = tokio::spawn(async move { reqwest::get(&location).await.unwrap().text().await.unwrap() });
    let callback = receiving.await.unwrap().unwrap();
    assert!(!format!("{callback:?}").contains("code="), "Debug hides the code");
    drop(callback); // the app gave up (a cancelled task, a panic)
    let page = browser.await.unwrap();
    assert!(
        page.contains("return to the app") && !page.contains("signed in"),
        "{page}"
    );
}

#[tokio::test]
#[allow(deprecated)]
async fn the_deprecated_wait_claims_no_outcome() {
    let h = Harness::start().await;
    let (listener, pending) = listening(&AuthClient::new(native_config(&h)).unwrap()).await;
    let waiting = tokio::spawn(listener.wait());
    let location = browser_login(pending.url(), "alice", "wrong").await;
    let page = reqwest::get(&location).await.unwrap().text().await.unwrap();
    assert!(
        page.contains("return to the app") && !page.contains("signed in"),
        "{page}"
    );
    assert_eq!(waiting.await.unwrap().unwrap(), location);
}

#[tokio::test]
async fn the_loopback_listener_receives_the_redirect_over_http() {
    let h = Harness::start().await;
    let client = AuthClient::new(native_config(&h)).unwrap();
    let listener = LoopbackRedirect::bind().await.unwrap();
    let redirect_uri = listener.redirect_uri().to_owned();
    assert!(redirect_uri.starts_with("http://127.0.0.1:") && redirect_uri.ends_with("/callback"));
    let pending = client
        .authorization_request(AuthorizationRequest::new("alice", &redirect_uri))
        .unwrap();
    let waiting = listener.wait_for(&pending, Duration::from_secs(30));
    let browsing = async {
        let location = browser_login(pending.url(), "alice", "alice-password").await;
        assert!(location.starts_with(&redirect_uri), "{location}");
        let browser = reqwest::Client::new();
        let origin = redirect_uri.trim_end_matches("/callback");
        let favicon = browser.get(format!("{origin}/favicon.ico")).send().await.unwrap();
        assert_eq!(favicon.status(), 404, "other paths do not end the wait");
        let page = browser.get(&location).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let text = page.text().await.unwrap();
        assert!(text.contains("return to the app") && !text.contains("code="));
        location
    };
    let (received, location) = tokio::join!(waiting, browsing);
    let received = received.unwrap();
    assert_eq!(received, location);
    let session = client.complete_authorization(&pending, &received).await.unwrap();
    assert!(session.access_token().await.is_ok());
    assert!(
        reqwest::Client::new().get(&location).send().await.is_err(),
        "the listener is closed after one redirect"
    );
}

#[tokio::test]
async fn the_loopback_listener_cannot_be_hijacked() {
    let h = Harness::start().await;
    let client = AuthClient::new(native_config(&h)).unwrap();
    let listener = LoopbackRedirect::bind().await.unwrap();
    let redirect_uri = listener.redirect_uri().to_owned();
    let pending = client
        .authorization_request(AuthorizationRequest::new("alice", &redirect_uri))
        .unwrap();
    let waiting = listener.wait_for(&pending, Duration::from_secs(30));
    let browsing = async {
        let location = browser_login(pending.url(), "alice", "alice-password").await;
        let attacker = reqwest::Client::new();
        // Another local process (or a web page that found the port) sends callbacks
        // first: a forged state, none at all, an error without state.
        for forged in [
            with_param(&location, "state", "forged"),
            format!("{redirect_uri}?code=stolen"),
            format!("{redirect_uri}?error=access_denied"),
        ] {
            let answer = attacker.get(&forged).send().await.unwrap();
            assert_eq!(answer.status(), 400, "{forged}");
        }
        let page = reqwest::Client::new().get(&location).send().await.unwrap();
        assert_eq!(page.status(), 200);
        location
    };
    let (received, location) = tokio::join!(waiting, browsing);
    assert_eq!(received.unwrap(), location, "the wait ends with the real redirect");
    let session = client.complete_authorization(&pending, &location).await.unwrap();
    assert!(session.access_token().await.is_ok());

    // Bounded: without the right redirect the wait ends after its timeout.
    let listener = LoopbackRedirect::bind().await.unwrap();
    let pending = client
        .authorization_request(AuthorizationRequest::new("alice", listener.redirect_uri()))
        .unwrap();
    assert!(matches!(
        listener.wait_for(&pending, Duration::from_millis(50)).await,
        Err(AuthError::Cancelled)
    ));
}

#[tokio::test]
async fn discovery_builds_a_working_config() {
    let h = Harness::start().await;
    let config = AuthConfig::discover(&h.server.base_url(), APP).await.unwrap();
    let client = AuthClient::new(config.clock(h.clock.clone())).unwrap();
    let pending = start(&client);
    assert!(pending.url().starts_with(&h.server.authorization_endpoint()));
    let redirect = browser_login(pending.url(), "alice", "alice-password").await;
    let session = client.complete_authorization(&pending, &redirect).await.unwrap();
    session.logout().await.unwrap();
    assert_eq!(
        h.server.stats().revocations.len(),
        2,
        "the discovered revocation endpoint is used"
    );
}

#[tokio::test]
async fn discovery_rejects_metadata_naming_another_issuer() {
    let h = Harness::with(DevServerConfig {
        metadata_issuer: Some("https://impostor.example".into()),
        ..Default::default()
    })
    .await;
    let error = AuthConfig::discover(&h.server.base_url(), APP).await.unwrap_err();
    assert!(
        matches!(&error, AuthError::IssuerMismatch { actual: Some(a), .. } if a == "https://impostor.example"),
        "{error:?}"
    );
}

#[tokio::test]
async fn imported_tokens_are_used_then_refreshed() {
    let h = Harness::start().await;
    // Tokens another SDK obtained for this client.
    let issued = reqwest::Client::new()
        .post(h.server.token_endpoint())
        .basic_auth(common::CLIENT_ID, Some(common::CLIENT_SECRET))
        .form(&[
            ("grant_type", "password"),
            ("username", "bob"),
            ("password", "bob-password"),
        ])
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let issued: serde_json::Value = serde_json::from_slice(&issued).unwrap();
    let access = issued["access_token"].as_str().unwrap().to_owned();
    h.server.reset_stats();
    let client = h.client();
    let tokens = ImportedTokens::new(SecretString::from(access.clone()))
        .refresh_token(SecretString::from(issued["refresh_token"].as_str().unwrap().to_owned()))
        .expires_at(h.clock_now() + Duration::from_secs(600))
        .scope("read write admin");
    let session = client.import_tokens("bob", TokenParams::new(), tokens).await.unwrap();
    assert_eq!(value(&session.access_token().await.unwrap()), access);
    assert_eq!(h.token_requests(), 0, "an import makes no request");

    h.advance(601);
    let refreshed = session.access_token().await.unwrap();
    assert_ne!(value(&refreshed), access);
    assert_eq!(h.grants("refresh_token"), 1);
    let me = session
        .send(client.http().get(h.server.resource_url("/me")))
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
}

#[tokio::test]
async fn an_import_with_a_malformed_token_is_a_config_error() {
    let h = Harness::start().await;
    let client = h.client();
    let error = client
        .import_tokens(
            "bob",
            TokenParams::new(),
            ImportedTokens::new(SecretString::from("a b\n")),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, AuthError::InvalidConfig { .. }));
    assert!(client.session("bob").is_none());
}

#[tokio::test]
async fn a_pkce_session_recovers_from_revocation_with_its_refresh_token_only() {
    let h = Harness::start().await;
    let client = AuthClient::new(native_config(&h)).unwrap();
    let pending = start(&client);
    let redirect = browser_login(pending.url(), "alice", "alice-password").await;
    let session = client.complete_authorization(&pending, &redirect).await.unwrap();
    let revoked = session.access_token().await.unwrap();
    h.server.revoke_token(&value(&revoked));

    let me = session
        .send(client.http().get(h.server.resource_url("/me")))
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    assert_eq!(h.grants("refresh_token"), 1, "one refresh");
    assert_eq!(h.grants("password"), 0, "no credentials are held");
    assert_eq!(h.grants("authorization_code"), 1);

    // Logged out everywhere: the refresh token is gone too; only the user can help.
    h.server.revoke_subject("alice");
    let error = session
        .send(client.http().get(h.server.resource_url("/me")))
        .await
        .unwrap_err();
    assert!(matches!(error, AuthError::ReauthenticationRequired { .. }), "{error:?}");
    assert_eq!(h.grants("refresh_token"), 2);
    assert_eq!(h.grants("password"), 0);
}

#[tokio::test]
async fn a_dpop_sign_in_binds_the_code_and_its_tokens_to_the_sessions_key() {
    let h = Harness::requiring_dpop(APP).await;
    let client = AuthClient::new(native_config(&h).dpop(tokenkeeper::DpopMode::Required)).unwrap();
    let pending = start(&client);
    let jkt = common::dpop_jkt(pending.url());
    let redirect = browser_login(pending.url(), "alice", common::ALICE_PASSWORD).await;
    let session = client.complete_authorization(&pending, &redirect).await.unwrap();
    assert_eq!(session.dpop_thumbprint().unwrap().as_deref(), Some(jkt.as_str()));
    let token = session.access_token().await.unwrap();
    assert_eq!(token.token_type(), tokenkeeper::TokenType::Dpop);
    assert_eq!(h.server.dpop_binding(&value(&token)), Some(jkt.clone()));
    let refreshed = session.refresh().await.unwrap();
    assert_eq!(h.server.dpop_binding(&value(&refreshed)), Some(jkt));
    assert_eq!(
        h.server.stats().dpop_proofs_accepted,
        2,
        "the code exchange and the refresh"
    );
}
