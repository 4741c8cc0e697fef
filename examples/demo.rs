//! The tokenkeeper demo: starts the embedded development authorization server on
//! loopback and walks through a token being issued, served from cache, refreshed
//! before expiry, shared by 100 concurrent callers, and recovered after revocation.
//!
//! Run: `cargo run --example demo`

use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;
use tokenkeeper::{AuthClient, AuthConfig, AuthEvent, AuthEventListener, ManualClock};
use tokenkeeper_devserver::{DevServer, DevServerConfig, Endpoint, Fault};

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
            AuthEvent::Reauthenticated { identity } => format!("{identity} re-authenticated silently"),
            AuthEvent::LoginFailed { identity, reason } => format!("ALERT login failed for {identity}: {reason}"),
            AuthEvent::LoggedOut { identity } => format!("{identity} logged out"),
            other => format!("{other:?}"),
        };
        println!("    [event] {line}");
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = DevServer::start(DevServerConfig::default()).await?;
    println!("Development authorization server on {}", server.base_url());
    // A manual clock lets the demo jump an hour ahead instead of waiting for one.
    let clock = Arc::new(ManualClock::starting_now());
    let config = AuthConfig::new(server.token_endpoint(), "demo-client")
        .client_secret(SecretString::from("demo-secret"))
        .revocation_endpoint(server.revocation_endpoint())
        .scopes(["read"])
        .clock(clock.clone());
    let client = AuthClient::builder(config)
        .event_listener(Arc::new(PrintEvents))
        .build()?;
    let requests = || server.stats().token_requests;

    println!("\n1. A token is issued (client-credentials grant)");
    let machine = client.client_credentials_session();
    let token = machine.access_token().await?;
    println!("   got {token:?}");
    println!("   token requests so far: {}", requests());

    println!("\n2. Served from cache");
    for _ in 0..1000 {
        machine.access_token().await?;
    }
    println!("   1,000 more calls, token requests so far: {}", requests());

    println!("\n3. Refreshed before expiry (5 minute margin)");
    clock.advance(Duration::from_secs(3600 - 240));
    println!("   the clock jumps 56 minutes: the token expires in 4 minutes");
    let still = machine.access_token().await?;
    println!(
        "   the caller still gets the valid token at once: same token = {}",
        still.is_same_token(&token)
    );
    machine.wait_for_refresh().await;
    let fresh = machine.access_token().await?;
    println!(
        "   the background refresh finished: new token = {}, expires {}",
        !fresh.is_same_token(&token),
        fresh.expires_at()
    );
    println!("   token requests so far: {}", requests());

    println!("\n4. 100 concurrent callers share one token request");
    machine.invalidate();
    server.inject(Endpoint::Token, Fault::Delay(Duration::from_millis(200)));
    let before = requests();
    let callers: Vec<_> = (0..100)
        .map(|_| {
            let machine = machine.clone();
            tokio::spawn(async move { machine.access_token().await })
        })
        .collect();
    for caller in callers {
        caller.await??;
    }
    println!("   100 callers served by {} token request(s)", requests() - before);

    println!("\n5. Alice logs in; her token is revoked elsewhere; the next request recovers silently");
    let alice = client.login("alice", SecretString::from("alice-password")).await?;
    server.revoke_subject("alice");
    let response = alice.send(client.http().get(server.resource_url("/me"))).await?;
    println!("   GET /api/me -> HTTP {} (no prompt, no error)", response.status());

    println!("\n6. Logout revokes (RFC 7009) and forgets");
    alice.logout().await?;
    let hints: Vec<_> = server
        .stats()
        .revocations
        .iter()
        .filter_map(|r| r.token_type_hint.clone())
        .collect();
    println!(
        "   revocation requests: {hints:?}; session still registered: {}",
        client.session("alice").is_some()
    );

    println!("\nDone: {} token requests in all.", requests());
    Ok(())
}
