//! The tokenkeeper demo: the main job of the SDK, start to finish, against the
//! embedded development authorization server on loopback.
//!
//! 1. a browser sign-in (authorization code + PKCE through the loopback listener),
//!    with the browser played headless: it opens the login page, submits the form
//!    and follows the redirect back to the app;
//! 2. API calls served from the cached token, refreshed before it expires;
//! 3. the access token is revoked elsewhere (her tablet's logout, an admin), and
//!    the next request recovers silently with the refresh token;
//! 4. the app restarts and resumes from its token store without the browser;
//! 5. logout revokes (RFC 7009) and forgets.
//!
//! Run: `cargo run --example demo`

use std::sync::Arc;
use std::time::Duration;
use tokenkeeper::signin::{AuthorizationRequest, LoopbackRedirect};
use tokenkeeper::{
    AuthClient, AuthConfig, AuthEvent, AuthEventListener, ExposeSecret, FileStore, ManualClock, TokenStore,
};
use tokenkeeper_devserver::{DevServer, DevServerConfig};

/// Prints what the SDK reports; events never carry a secret.
#[derive(Debug)]
struct PrintEvents;

impl AuthEventListener for PrintEvents {
    fn on_event(&self, event: &AuthEvent) {
        let line = match event {
            AuthEvent::TokenIssued { identity, expires_at } => {
                format!("token issued for {identity}, expires {expires_at}")
            }
            AuthEvent::TokenRefreshed { identity, expires_at } => {
                format!("token refreshed for {identity}, expires {expires_at}")
            }
            AuthEvent::RevocationDetected { identity } => format!("revocation detected for {identity}"),
            AuthEvent::Reauthenticated { identity } => format!("{identity} recovered silently"),
            AuthEvent::LoggedOut { identity } => format!("{identity} logged out"),
            other => format!("{other:?}"),
        };
        println!("    [event] {line}");
    }
}

/// The user's browser, played headless: opens the login page, signs in as
/// alice, and follows the server's redirect to the app's loopback listener.
async fn browser(authorization_url: String) -> Result<String, reqwest::Error> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let page = http.get(&authorization_url).send().await?.text().await?;
    println!(
        "    [browser] the login page: {}",
        page.lines().nth(1).unwrap_or_default()
    );
    // The form re-posts the authorization request's parameters with the credentials.
    let mut form: Vec<(String, String)> = reqwest::Url::parse(&authorization_url)
        .map(|url| url.query_pairs().into_owned().collect())
        .unwrap_or_default();
    form.push(("username".into(), "alice".into()));
    form.push(("password".into(), "alice-password".into()));
    let action = authorization_url.split('?').next().unwrap_or_default();
    let answer = http.post(action).form(&form).send().await?;
    let location = answer
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    println!("    [browser] signed in, redirected to the app's 127.0.0.1 listener");
    let shown = http.get(&location).send().await?.text().await?;
    println!(
        "    [browser] shows: {}",
        shown.split("<p>").nth(1).unwrap_or_default().trim_end_matches("</p>")
    );
    Ok(location)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = DevServer::start(DevServerConfig::default()).await?;
    println!("Development authorization server on {}", server.base_url());
    // A manual clock lets the demo jump an hour ahead instead of waiting for one.
    let clock = Arc::new(ManualClock::starting_now());
    // A file store stands in for the OS keychain, so a "restart" really starts from disk.
    let dir = std::env::temp_dir().join(format!("tokenkeeper-demo-{}", std::process::id()));
    let token_requests = || server.stats().token_requests;
    let new_client = |store: Arc<dyn TokenStore>| {
        let base = server.base_url();
        let clock = clock.clone();
        async move {
            // Endpoints and issuer from the server's metadata (RFC 8414).
            let config = AuthConfig::discover(&base, "native-app").await?.clock(clock);
            AuthClient::builder(config)
                .store(store)
                .event_listener(Arc::new(PrintEvents))
                .build()
        }
    };

    println!("\n1. Alice signs in in the browser (authorization code + PKCE, RFC 8252 loopback)");
    let client = new_client(Arc::new(FileStore::new(&dir)?)).await?;
    let listener = LoopbackRedirect::bind().await?;
    let pending = client.authorization_request(AuthorizationRequest::new("alice", listener.redirect_uri()))?;
    let browsing = tokio::spawn(browser(pending.url().to_owned()));
    let alice = listener.complete(&client, &pending).await?;
    browsing.await??;
    println!("   signed in as {}; the app never saw her password", alice.identity());

    println!("\n2. API calls use the cached token, refreshed before it expires");
    let me = server.resource_url("/me");
    for _ in 0..100 {
        alice.send(client.http().get(&me)).await?;
    }
    println!("   100 GET /api/me, token requests so far: {}", token_requests());
    clock.advance(Duration::from_secs(3600 - 240));
    println!("   the clock jumps 56 minutes: the token expires in 4 minutes");
    alice.access_token().await?; // served at once; the refresh runs in the background
    alice.wait_for_refresh().await;
    println!(
        "   refreshed in the background, token requests so far: {}",
        token_requests()
    );

    println!("\n3. The access token is revoked elsewhere (her tablet's logout, an admin)");
    let current = alice.access_token().await?;
    server.revoke_token(current.expose_secret());
    let response = alice.send(client.http().get(&me)).await?;
    println!(
        "   GET /api/me -> HTTP {} (no prompt: recovered with the refresh token)",
        response.status()
    );

    println!("\n4. The app restarts and resumes from its store, without the browser");
    drop((alice, client));
    let client = new_client(Arc::new(FileStore::new(&dir)?)).await?;
    let alice = client.restore("alice").await?;
    let response = alice.send(client.http().get(&me)).await?;
    println!("   restored; GET /api/me -> HTTP {}", response.status());

    println!("\n5. Logout revokes (RFC 7009) and forgets");
    alice.logout().await?;
    println!(
        "   revocation requests: {}; still registered: {}; restore now: {}",
        server.stats().revocations.len(),
        client.session("alice").is_some(),
        match client.restore("alice").await {
            Ok(_) => "signed in".to_owned(),
            Err(e) => e.to_string(),
        }
    );

    let _ = std::fs::remove_dir_all(&dir);
    println!("\nDone: {} token requests in all.", token_requests());
    Ok(())
}
