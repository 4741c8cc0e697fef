//! The JOSE core against the development server's real ID tokens: signatures in
//! ES256, RS256 and PS256 verified against its key set; the key set cached per
//! `Cache-Control` and refetched once, rate limited, after a key rotation; every
//! spoiled token refused with the check it fails; and no key set, no token.

use std::sync::Arc;
use std::time::Duration;
use tokenkeeper::oidc::{IdTokenExpectations, IdTokenValidator, JwksVerifier, JwsAlgorithm, JwtCheck};
use tokenkeeper::{AuthError, ManualClock};
use tokenkeeper_devserver::jose::SigningAlg;
use tokenkeeper_devserver::{DevServer, DevServerConfig, Endpoint, Fault, IdTokenFault};

struct Oidc {
    server: DevServer,
    clock: Arc<ManualClock>,
    validator: IdTokenValidator,
}

async fn start(config: DevServerConfig) -> Oidc {
    let server = DevServer::start(config).await.expect("the development server starts");
    let clock = Arc::new(ManualClock::starting_now());
    let verifier = JwksVerifier::new(&server.jwks_uri())
        .expect("loopback http is allowed")
        .clock(clock.clone());
    let validator = IdTokenValidator::new(verifier, server.issuer(), "oidc-app");
    Oidc {
        server,
        clock,
        validator,
    }
}

/// A password grant for alice with `openid`: (access token, ID token).
async fn sign_in(server: &DevServer) -> (String, String) {
    let body = reqwest::Client::new()
        .post(server.token_endpoint())
        .form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "alice-password"),
            ("client_id", "oidc-app"),
            ("scope", "openid profile email"),
        ])
        .send()
        .await
        .expect("token request")
        .text()
        .await
        .expect("token response");
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let text = |k: &str| {
        json[k]
            .as_str()
            .unwrap_or_else(|| panic!("no {k} in {body}"))
            .to_owned()
    };
    (text("access_token"), text("id_token"))
}

impl Oidc {
    async fn validate(&self, access: &str, id_token: &str) -> Result<tokenkeeper::oidc::IdTokenClaims, AuthError> {
        let expect = IdTokenExpectations {
            access_token: Some(access),
            now: Some(tokenkeeper::Clock::now(&*self.clock)),
            ..Default::default()
        };
        self.validator.validate(id_token, &expect).await
    }

    fn jwks_requests(&self) -> u64 {
        self.server.stats().jwks_requests
    }
}

fn check_of(result: Result<tokenkeeper::oidc::IdTokenClaims, AuthError>) -> JwtCheck {
    match result {
        Err(AuthError::InvalidJwt(e)) => e.check,
        other => panic!("expected a refused JWT, got {other:?}"),
    }
}

#[tokio::test]
async fn es256_rs256_and_ps256_id_tokens_verify_and_yield_the_profile_claims() {
    for alg in [SigningAlg::ES256, SigningAlg::RS256, SigningAlg::PS256] {
        let oidc = start(DevServerConfig {
            id_token_alg: alg,
            ..DevServerConfig::default()
        })
        .await;
        let (access, id_token) = sign_in(&oidc.server).await;
        let claims = oidc
            .validate(&access, &id_token)
            .await
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(claims.subject, "alice");
        assert_eq!(claims.issuer, oidc.server.issuer());
        assert_eq!(claims.email.as_deref(), Some("alice@example.test"));
        assert_eq!(claims.email_verified, Some(true));
        assert_eq!(claims.name.as_deref(), Some("Alice Example"));
        assert_eq!(claims.preferred_username.as_deref(), Some("alice"));
        assert!(claims.picture.is_some() && claims.auth_time.is_some());
        assert_eq!(claims.all["aud"], "oidc-app");
    }
}

#[tokio::test]
async fn a_verifier_limited_to_es256_refuses_an_rs256_token() {
    let oidc = start(DevServerConfig {
        id_token_alg: SigningAlg::RS256,
        ..DevServerConfig::default()
    })
    .await;
    let verifier = JwksVerifier::new(&oidc.server.jwks_uri())
        .unwrap()
        .algorithms([JwsAlgorithm::ES256]);
    let (_, id_token) = sign_in(&oidc.server).await;
    match verifier.verify(&id_token).await {
        Err(AuthError::InvalidJwt(e)) => assert_eq!(e.check, JwtCheck::Algorithm),
        other => panic!("{other:?}"),
    }
    assert_eq!(oidc.jwks_requests(), 0, "refused before any key set is fetched");
}

#[tokio::test]
async fn every_spoiled_id_token_is_refused_with_the_check_it_fails() {
    let oidc = start(DevServerConfig::default()).await;
    let cases = [
        (IdTokenFault::BadSignature, JwtCheck::Signature),
        (IdTokenFault::WrongAudience, JwtCheck::Audience),
        (IdTokenFault::WrongIssuer, JwtCheck::Issuer),
        (IdTokenFault::Expired, JwtCheck::Expired),
        (IdTokenFault::IssuedInFuture, JwtCheck::IssuedAt),
        (IdTokenFault::AlgNone, JwtCheck::Algorithm),
        (IdTokenFault::UnknownKid, JwtCheck::UnknownKey),
        (IdTokenFault::WrongAtHash, JwtCheck::AccessTokenHash),
        (IdTokenFault::ExtraAudienceWithoutAzp, JwtCheck::AuthorizedParty),
    ];
    for (fault, check) in cases {
        oidc.server.inject_id_token_fault(fault);
        let (access, id_token) = sign_in(&oidc.server).await;
        assert_eq!(check_of(oidc.validate(&access, &id_token).await), check, "{fault:?}");
        let message = oidc.validate(&access, &id_token).await.unwrap_err().to_string();
        assert!(!message.contains(&id_token) && !message.contains(&access), "{message}");
    }
    // The unspoiled token after all of them still verifies.
    let (access, id_token) = sign_in(&oidc.server).await;
    oidc.validate(&access, &id_token).await.expect("a good token");
}

#[tokio::test]
async fn a_wrong_nonce_and_a_missing_auth_time_under_max_age_are_refused() {
    let oidc = start(DevServerConfig::default()).await;
    let (access, id_token) = sign_in(&oidc.server).await;
    let now = tokenkeeper::Clock::now(&*oidc.clock);
    let nonce = IdTokenExpectations {
        nonce: Some("the-nonce-we-sent"),
        now: Some(now),
        ..Default::default()
    };
    assert_eq!(
        check_of(oidc.validator.validate(&id_token, &nonce).await),
        JwtCheck::Nonce
    );
    // auth_time is the login, just now: max_age 1 s is met until the clock moves on.
    let max_age = IdTokenExpectations {
        max_age: Some(Duration::from_secs(1)),
        now: Some(now),
        ..Default::default()
    };
    oidc.validator
        .validate(&id_token, &max_age)
        .await
        .expect("a fresh login");
    let later = IdTokenExpectations {
        now: Some(now + Duration::from_secs(600)),
        ..max_age
    };
    assert_eq!(
        check_of(oidc.validator.validate(&id_token, &later).await),
        JwtCheck::AuthTime
    );
    let _ = access;
}

#[tokio::test]
async fn the_key_set_is_cached_for_its_max_age_and_then_fetched_again() {
    let oidc = start(DevServerConfig {
        jwks_max_age: Some(Duration::from_secs(120)),
        ..DevServerConfig::default()
    })
    .await;
    for _ in 0..3 {
        let (access, id_token) = sign_in(&oidc.server).await;
        oidc.validate(&access, &id_token).await.unwrap();
    }
    assert_eq!(oidc.jwks_requests(), 1, "one fetch for three tokens");
    oidc.clock.advance(Duration::from_secs(121));
    let (access, id_token) = sign_in(&oidc.server).await;
    oidc.validate(&access, &id_token).await.unwrap();
    assert_eq!(oidc.jwks_requests(), 2, "stale after max-age");
}

#[tokio::test]
async fn after_a_key_rotation_the_new_kid_is_fetched_once_and_made_up_kids_are_rate_limited() {
    let oidc = start(DevServerConfig::default()).await;
    let (access, id_token) = sign_in(&oidc.server).await;
    oidc.validate(&access, &id_token).await.unwrap();
    let new_kid = oidc.server.rotate_signing_key();
    let (access, id_token) = sign_in(&oidc.server).await;
    let verified = oidc
        .validator
        .verifier()
        .verify(&id_token)
        .await
        .expect("the rotated key is fetched");
    assert_eq!(verified.key_id.as_deref(), Some(new_kid.as_str()));
    oidc.validate(&access, &id_token).await.unwrap();
    assert_eq!(oidc.jwks_requests(), 2, "one refetch for the new kid, then cached");
    // A token with a kid the issuer never published: one refetch, then none within the
    // cooldown (which the rotation's refetch started).
    oidc.clock.advance(Duration::from_secs(31));
    for _ in 0..3 {
        oidc.server.inject_id_token_fault(IdTokenFault::UnknownKid);
        let (access, id_token) = sign_in(&oidc.server).await;
        assert_eq!(check_of(oidc.validate(&access, &id_token).await), JwtCheck::UnknownKey);
    }
    assert_eq!(oidc.jwks_requests(), 3, "made-up kids cost one fetch per cooldown");
    oidc.clock.advance(Duration::from_secs(31));
    oidc.server.inject_id_token_fault(IdTokenFault::UnknownKid);
    let (access, id_token) = sign_in(&oidc.server).await;
    assert_eq!(check_of(oidc.validate(&access, &id_token).await), JwtCheck::UnknownKey);
    assert_eq!(oidc.jwks_requests(), 4);
}

#[tokio::test]
async fn without_a_key_set_nothing_verifies() {
    let oidc = start(DevServerConfig::default()).await;
    let (access, id_token) = sign_in(&oidc.server).await;
    oidc.server.inject(Endpoint::Jwks, Fault::status(503));
    match oidc.validate(&access, &id_token).await {
        Err(AuthError::TemporarilyUnavailable { status: Some(503), .. }) => {}
        other => panic!("fails closed: {other:?}"),
    }
    oidc.server
        .inject(Endpoint::Jwks, Fault::html(200, "<html>not a key set</html>"));
    assert_eq!(check_of(oidc.validate(&access, &id_token).await), JwtCheck::KeySet);
    oidc.validate(&access, &id_token).await.expect("the key set is back");
}
