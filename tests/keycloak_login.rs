//! Keycloak's real login page, driven over HTTP as a browser would (issue 21): the
//! authorization URL shows Keycloak's login form, the test posts the user's name and
//! password to the form's `action`, follows Keycloak's redirect to tokenkeeper's
//! loopback listener, and the listener completes the sign-in. PKCE with and without
//! PAR, the ID token validated against the realm's key set, its claims, UserInfo, and
//! `prompt=login` / `max_age=0` showing the login page again although Keycloak's SSO
//! cookie would sign the user in silently.
//!
//! The client is `tk-native` of `tests/keycloak/realm.json` (public, S256 PKCE,
//! loopback redirects on any port, RFC 8252 §7.3). `scripts/keycloak.sh run-tests`
//! starts Keycloak and sets the environment; without `TOKENKEEPER_KEYCLOAK_URL` every
//! test says why it is skipped and returns.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokenkeeper::signin::{AuthorizationRequest, LoopbackRedirect, PendingAuthorization};
use tokenkeeper::{AuthClient, AuthConfig, Session, TokenParams};

const NATIVE_CLIENT: &str = "tk-native";

/// The realm's issuer, from the environment `scripts/keycloak.sh` writes.
fn issuer(test: &str) -> Option<String> {
    let Ok(base) = std::env::var("TOKENKEEPER_KEYCLOAK_URL") else {
        eprintln!("skipping {test}: TOKENKEEPER_KEYCLOAK_URL is not set (run scripts/keycloak.sh run-tests)");
        return None;
    };
    let realm = std::env::var("TOKENKEEPER_KEYCLOAK_REALM").unwrap_or_else(|_| "tokenkeeper".into());
    Some(format!("{}/realms/{realm}", base.trim_end_matches('/')))
}

async fn native_client(issuer: &str) -> AuthClient {
    let config = AuthConfig::discover(issuer, NATIVE_CLIENT)
        .await
        .expect("Keycloak's OpenID Connect discovery");
    AuthClient::new(config).unwrap()
}

fn openid() -> TokenParams {
    TokenParams::new().scopes(["openid", "profile", "email"])
}

/// alice's sign-in with the loopback `redirect`, each under a new account label: a
/// sign-in that replaced a session would revoke its refresh token, which at Keycloak
/// ends the SSO session the test wants to keep.
fn plain(redirect: &str) -> AuthorizationRequest {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let label = format!("alice-{}", NEXT.fetch_add(1, Ordering::Relaxed));
    AuthorizationRequest::new(label, redirect).params(openid())
}

/// A browser: no automatic redirects (the test follows them, to see each hop) and a
/// cookie jar, so Keycloak's login session and SSO cookies go back to it. Every
/// request goes to one Keycloak realm (one cookie path), so the jar keeps name=value.
struct Browser {
    http: reqwest::Client,
    cookies: Mutex<BTreeMap<String, String>>,
}

/// One answer as the browser saw it.
struct Page {
    status: u16,
    location: Option<String>,
    body: String,
}

impl Browser {
    fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            cookies: Mutex::default(),
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Page {
        let cookie = {
            let jar = self.cookies.lock().unwrap();
            jar.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let request = if cookie.is_empty() {
            request
        } else {
            request.header("cookie", cookie)
        };
        let response = request.send().await.unwrap();
        for set in response.headers().get_all("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                let mut jar = self.cookies.lock().unwrap();
                if value.is_empty() {
                    jar.remove(name.trim());
                } else {
                    jar.insert(name.trim().to_owned(), value.to_owned());
                }
            }
        }
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        Page {
            status,
            location,
            body: response.text().await.unwrap(),
        }
    }

    async fn get(&self, url: &str) -> Page {
        self.send(self.http.get(url)).await
    }

    /// Opens `url` and follows Keycloak's redirects; when it shows its login form,
    /// submits `username` and `password`. Returns the redirect to the loopback
    /// listener (with the code) and whether the login page was shown.
    async fn authorize(&self, url: &str, username: &str, password: &str) -> (String, bool) {
        let mut page = self.get(url).await;
        let mut shown = false;
        // Bounded: a sign-in is a few hops (PAR adds one inside Keycloak).
        for _ in 0..8 {
            match page.status {
                302 | 303 => {
                    let location = page.location.expect("a redirect");
                    if location.starts_with("http://127.0.0.1:") && location.contains("/callback?") {
                        return (location, shown);
                    }
                    page = self.get(&location).await;
                }
                200 => {
                    let action = form_action(&page.body).expect("Keycloak's login form and its action");
                    assert!(!shown, "the login page came back after the password: {}", page.body);
                    shown = true;
                    let form = [("username", username), ("password", password), ("credentialId", "")];
                    page = self.send(self.http.post(action).form(&form)).await;
                }
                status => panic!("Keycloak answered {status}: {}", page.body),
            }
        }
        panic!("no redirect to the loopback listener after 8 hops");
    }
}

/// The `action` of the login form (`<form id="kc-form-login" … action="…">`), with
/// the HTML entities Keycloak writes in attribute values decoded.
fn form_action(html: &str) -> Option<String> {
    let form = &html[html.find("kc-form-login")?..];
    let start = form.find("action=\"")? + "action=\"".len();
    let end = start + form[start..].find('"')?;
    Some(
        form[start..end]
            .replace("&amp;", "&")
            .replace("&#x3D;", "=")
            .replace("&#61;", "="),
    )
}

/// The whole browser sign-in: the loopback listener waits while the browser logs in
/// and follows Keycloak's redirect to it; the listener completes the sign-in.
async fn sign_in(
    client: &AuthClient,
    browser: &Browser,
    listener: LoopbackRedirect,
    pending: &PendingAuthorization,
) -> (Arc<Session>, bool) {
    let user = async {
        let (redirect, page_shown) = browser.authorize(pending.url(), "alice", "alice-password").await;
        assert!(redirect.starts_with("http://127.0.0.1:"), "{redirect}");
        let done = browser.get(&redirect).await;
        assert_eq!(done.status, 200, "the loopback page: {}", done.body);
        page_shown
    };
    let both = async { tokio::join!(listener.complete(client, pending), user) };
    let (session, page_shown) = tokio::time::timeout(Duration::from_secs(60), both)
        .await
        .expect("the sign-in finishes within 60 s");
    (session.expect("the sign-in completes"), page_shown)
}

#[tokio::test]
async fn pkce_through_keycloaks_login_page_with_and_without_par_validates_the_id_token() {
    let Some(issuer) = issuer("pkce_through_keycloaks_login_page_with_and_without_par_validates_the_id_token") else {
        return;
    };
    let client = native_client(&issuer).await;
    for pushed in [false, true] {
        let listener = LoopbackRedirect::bind().await.unwrap();
        let request = AuthorizationRequest::new(format!("alice-{pushed}"), listener.redirect_uri()).params(openid());
        let pending = if pushed {
            client
                .start_authorization(request)
                .await
                .expect("Keycloak accepts the push")
        } else {
            client.authorization_request(request).unwrap()
        };
        let url = reqwest::Url::parse(pending.url()).unwrap();
        let names: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
        if pushed {
            assert_eq!(
                names,
                ["client_id", "request_uri"],
                "nothing of the request in the browser"
            );
        } else {
            assert!(names.iter().any(|n| n == "code_challenge"), "{names:?}");
        }
        let browser = Browser::new();
        let (session, page_shown) = sign_in(&client, &browser, listener, &pending).await;
        assert!(page_shown, "a new browser sees the login page");
        let claims = session.id_token_claims().expect("Keycloak's ID token, validated");
        assert_eq!(claims.issuer, issuer);
        assert_eq!(claims.preferred_username.as_deref(), Some("alice"), "pushed: {pushed}");
        assert_eq!(claims.all["nonce"].as_str(), pending.nonce());
        assert_eq!(claims.all["azp"].as_str(), Some(NATIVE_CLIENT));
        let info = session.userinfo().await.expect("Keycloak's UserInfo");
        assert_eq!(info.subject, claims.subject);
        assert_eq!(info.preferred_username.as_deref(), Some("alice"));
        session.logout().await.unwrap();
    }
}

#[tokio::test]
async fn prompt_login_and_max_age_show_the_login_page_again_despite_keycloaks_sso_cookie() {
    let Some(issuer) = issuer("prompt_login_and_max_age_show_the_login_page_again_despite_keycloaks_sso_cookie") else {
        return;
    };
    let client = native_client(&issuer).await;
    let browser = Browser::new();
    let attempt = |request: fn(&str) -> AuthorizationRequest| {
        let (client, browser) = (&client, &browser);
        async move {
            let listener = LoopbackRedirect::bind().await.unwrap();
            let pending = client.authorization_request(request(listener.redirect_uri())).unwrap();
            sign_in(client, browser, listener, &pending).await
        }
    };
    let (first, shown) = attempt(plain).await;
    assert!(shown, "a new browser sees the login page");
    let first_login = first
        .id_token_claims()
        .unwrap()
        .auth_time
        .expect("Keycloak sends auth_time");
    // The browser now holds Keycloak's SSO cookie: a plain request skips the page.
    let (sso, shown) = attempt(plain).await;
    assert!(!shown, "single sign-on: no login page");
    assert_eq!(
        sso.id_token_claims().unwrap().auth_time,
        Some(first_login),
        "the same login"
    );
    // prompt=login and max_age=0 make Keycloak ask again; auth_time is checked.
    let (again, shown) = attempt(|redirect| plain(redirect).prompt("login")).await;
    assert!(shown, "prompt=login shows the login page");
    assert!(again.id_token_claims().unwrap().auth_time.unwrap() >= first_login);
    // Keycloak compares auth_time + max_age with its clock in whole seconds: max_age=0
    // asks again once the login's second has passed. A real, bounded wait: it is
    // Keycloak's clock, not ours, that must move.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (fresh, shown) = attempt(|redirect| plain(redirect).max_age(Duration::ZERO)).await;
    assert!(shown, "max_age=0 shows the login page");
    assert!(fresh.id_token_claims().unwrap().auth_time.unwrap() > first_login);
    for session in [first, sso, again, fresh] {
        session.logout().await.unwrap();
    }
}
