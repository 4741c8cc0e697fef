//! Caching, proactive refresh and single-flight, against the development server.

mod common;

use common::{value, Harness};
use std::time::Duration;
use tokenkeeper::{CachePolicy, RetryPolicy};
use tokenkeeper_devserver::{DevServerConfig, Endpoint, Fault};

/// A client-credentials session whose token requests are never retried within a call,
/// so each failure is one request and the backoff (`initial_s` doubling up to `max_s`
/// seconds) alone decides when the next one goes out.
fn one_attempt_session(h: &Harness, initial_s: u64, max_s: u64) -> std::sync::Arc<tokenkeeper::Session> {
    let config = h.config().retry_policy(RetryPolicy {
        max_attempts: 1,
        initial_backoff: Duration::from_secs(initial_s),
        max_backoff: Duration::from_secs(max_s),
        deadline: Duration::from_secs(30),
    });
    tokenkeeper::AuthClient::new(config)
        .unwrap()
        .client_credentials_session()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_callers_on_an_empty_cache_share_one_token_request() {
    let h = Harness::start().await;
    // Slow the token endpoint so every caller arrives while the request is in flight.
    h.server
        .inject(Endpoint::Token, Fault::Delay(Duration::from_millis(300)));
    let machine = h.client().client_credentials_session();

    let callers: Vec<_> = (0..1000)
        .map(|_| {
            let machine = machine.clone();
            tokio::spawn(async move { machine.access_token().await })
        })
        .collect();
    let mut tokens = Vec::new();
    for caller in callers {
        tokens.push(value(&caller.await.unwrap().unwrap()));
    }

    assert_eq!(h.token_requests(), 1);
    assert!(
        tokens.iter().all(|t| *t == tokens[0]),
        "every caller got the same token"
    );
}

#[tokio::test]
async fn a_token_is_served_from_cache_until_the_margin_then_refreshed_once() {
    let h = Harness::start().await; // 3600 s tokens, default 300 s margin
    let machine = h.client().client_credentials_session();
    let first = value(&machine.access_token().await.unwrap());

    // Just before the margin (and its up-to-10 % jitter): cached.
    h.advance(3600 - 331);
    for _ in 0..50 {
        assert_eq!(value(&machine.access_token().await.unwrap()), first);
    }
    assert_eq!(h.token_requests(), 1);

    // Inside the margin: the still-valid token is served while one refresh runs.
    h.advance(60);
    assert_eq!(value(&machine.access_token().await.unwrap()), first);
    machine.wait_for_refresh().await;
    let second = value(&machine.access_token().await.unwrap());
    assert_ne!(second, first);
    assert_eq!(h.token_requests(), 2);
}

#[tokio::test]
async fn a_sixty_second_token_is_refreshed_at_half_its_lifetime_not_on_every_call() {
    let h = Harness::with(DevServerConfig {
        access_token_lifetime: Duration::from_secs(60),
        ..Default::default()
    })
    .await;
    let machine = h.client().client_credentials_session();
    machine.access_token().await.unwrap();

    // A 300 s margin on a 60 s token would refresh on every call; the margin is
    // capped at 30 s (plus at most 3 s jitter), so it stays cached until then.
    h.advance(26);
    for _ in 0..100 {
        machine.access_token().await.unwrap();
    }
    assert_eq!(h.token_requests(), 1);

    h.advance(5); // 31 s: inside the capped margin
    machine.access_token().await.unwrap();
    machine.wait_for_refresh().await;
    for _ in 0..100 {
        machine.access_token().await.unwrap();
    }
    assert_eq!(h.token_requests(), 2);
}

#[tokio::test]
async fn the_current_token_is_served_while_a_proactive_refresh_fails_and_is_retried_with_backoff() {
    let h = Harness::start().await;
    let machine = one_attempt_session(&h, 2, 8);
    let first = value(&machine.access_token().await.unwrap());

    h.advance(3600 - 200); // inside the margin
    h.server.inject(Endpoint::Token, Fault::status(503));
    assert_eq!(value(&machine.access_token().await.unwrap()), first);
    machine.wait_for_refresh().await;
    assert_eq!(h.token_requests(), 2, "one failed refresh");

    // During the backoff, callers get the current token and no request is made.
    for _ in 0..20 {
        assert_eq!(value(&machine.access_token().await.unwrap()), first);
    }
    assert_eq!(h.token_requests(), 2);

    h.advance(3); // past the backoff (2 s, jittered down to 1–2 s)
    assert_eq!(value(&machine.access_token().await.unwrap()), first);
    machine.wait_for_refresh().await;
    assert_eq!(h.token_requests(), 3);
    assert_ne!(value(&machine.access_token().await.unwrap()), first);
}

/// The wait between failing refreshes doubles with each failure (jittered to half or
/// more): a long outage costs one token request per backoff window, not one per call.
#[tokio::test]
async fn the_backoff_between_failing_refreshes_doubles_with_each_failure() {
    let h = Harness::start().await;
    let machine = one_attempt_session(&h, 10, 600);
    let first = value(&machine.access_token().await.unwrap());
    h.advance(3600 - 300); // inside the refresh margin, the token still valid
    for _ in 0..3 {
        h.server.inject(Endpoint::Token, Fault::status(503));
    }

    // Failure 1 waits 5–10 s, failure 2 waits 10–20 s, failure 3 waits 20–40 s.
    let mut requests = h.token_requests();
    for (failure, inside, past) in [(1, 4, 11), (2, 9, 21), (3, 19, 41)] {
        assert_eq!(value(&machine.access_token().await.unwrap()), first);
        machine.wait_for_refresh().await;
        requests += 1;
        assert_eq!(h.token_requests(), requests, "failure {failure} was one request");
        h.advance(inside);
        for _ in 0..5 {
            assert_eq!(value(&machine.access_token().await.unwrap()), first);
        }
        machine.wait_for_refresh().await;
        assert_eq!(
            h.token_requests(),
            requests,
            "inside the backoff after failure {failure}"
        );
        h.advance(past - inside);
    }
    // Past the third window the server answers again.
    machine.access_token().await.unwrap();
    machine.wait_for_refresh().await;
    assert_eq!(h.token_requests(), requests + 1);
    assert_ne!(value(&machine.access_token().await.unwrap()), first);
}

/// A `Retry-After` longer than the client's own backoff holds the session back for
/// that long: no token request until the server said it may be asked again.
#[tokio::test]
async fn a_retry_after_longer_than_the_backoff_holds_back_the_next_refresh() {
    let h = Harness::start().await;
    let machine = one_attempt_session(&h, 2, 8);
    let first = value(&machine.access_token().await.unwrap());
    h.advance(3600 - 300);
    h.server
        .inject(Endpoint::Token, Fault::status(503).with_header("Retry-After", "120"));
    assert_eq!(value(&machine.access_token().await.unwrap()), first);
    machine.wait_for_refresh().await;
    assert_eq!(h.token_requests(), 2, "one failed refresh");

    h.advance(60); // far past the client's 2 s, inside the server's 120 s
    assert_eq!(value(&machine.access_token().await.unwrap()), first);
    machine.wait_for_refresh().await;
    assert_eq!(h.token_requests(), 2, "Retry-After is honoured across calls");

    h.advance(61);
    machine.access_token().await.unwrap();
    machine.wait_for_refresh().await;
    assert_eq!(h.token_requests(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_caller_that_started_a_token_request_can_be_dropped_without_stranding_the_others() {
    let h = Harness::start().await;
    h.server
        .inject(Endpoint::Token, Fault::Delay(Duration::from_millis(400)));
    let machine = h.client().client_credentials_session();

    // The first caller gives up (is dropped) while its token request is in flight.
    let gave_up = tokio::time::timeout(Duration::from_millis(50), machine.access_token()).await;
    assert!(gave_up.is_err());

    // Others still get the token from that same request.
    let (a, b) = tokio::join!(machine.access_token(), machine.access_token());
    assert_eq!(value(&a.unwrap()), value(&b.unwrap()));
    assert_eq!(h.token_requests(), 1);
}

#[tokio::test]
async fn expired_token_with_no_refresh_possible_waits_for_a_new_one() {
    let h = Harness::start().await;
    let machine = h.client().client_credentials_session();
    let first = value(&machine.access_token().await.unwrap());
    h.advance(3601);
    let second = value(&machine.access_token().await.unwrap());
    assert_ne!(first, second);
    assert_eq!(h.token_requests(), 2);
}

#[tokio::test]
async fn per_request_policy_gets_a_new_token_for_every_call() {
    let h = Harness::start().await;
    let client = tokenkeeper::AuthClient::new(h.config().cache_policy(CachePolicy::PerRequest)).unwrap();
    let machine = client.client_credentials_session();
    let a = value(&machine.access_token().await.unwrap());
    let b = value(&machine.access_token().await.unwrap());
    let c = value(&machine.access_token().await.unwrap());
    assert!(a != b && b != c && a != c);
    assert_eq!(h.token_requests(), 3);
    assert!(machine.cached_access_token().is_none(), "nothing is cached");
}

#[tokio::test]
async fn asking_twice_for_an_identity_returns_the_same_session_and_each_login_verifies_its_password() {
    let h = Harness::start().await;
    let client = h.client();
    let alice = client
        .login("alice", common::password(common::ALICE_PASSWORD))
        .await
        .unwrap();
    let again = client
        .login("alice", common::password(common::ALICE_PASSWORD))
        .await
        .unwrap();
    assert!(std::sync::Arc::ptr_eq(&alice, &again));
    assert!(std::sync::Arc::ptr_eq(&alice, &client.session("alice").unwrap()));
    assert!(std::sync::Arc::ptr_eq(
        &client.client_credentials_session(),
        &client.client_credentials_session()
    ));
    assert_eq!(
        h.grants("password"),
        2,
        "a login always checks the password it was given, even with a valid token held"
    );
}

#[tokio::test]
async fn sessions_for_different_scopes_or_resources_never_share_a_token() {
    let h = Harness::start().await;
    let client = h.client();
    let read = client.client_credentials_session_with(tokenkeeper::TokenParams::new().scopes(["read"]));
    let write = client.client_credentials_session_with(tokenkeeper::TokenParams::new().scopes(["write"]));
    let orders = client.client_credentials_session_with(
        tokenkeeper::TokenParams::new()
            .scopes(["read"])
            .resource("https://orders"),
    );
    let tokens = [
        read.access_token().await.unwrap(),
        write.access_token().await.unwrap(),
        orders.access_token().await.unwrap(),
    ];
    assert_eq!(tokens[0].scopes().collect::<Vec<_>>(), ["read"]);
    assert_eq!(tokens[1].scopes().collect::<Vec<_>>(), ["write"]);
    assert!(!tokens[0].is_same_token(&tokens[2]));
    assert_eq!(h.token_requests(), 3);
}
