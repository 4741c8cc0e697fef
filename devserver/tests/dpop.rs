//! The development server's DPoP verification (RFC 9449), over loopback HTTP, with
//! proofs built by hand here (ring ECDSA P-256) so each rule can be broken on purpose.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::{Client, Response, StatusCode};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use tokenkeeper_devserver::{DevServer, DevServerConfig, DpopSpec};

struct Key(EcdsaKeyPair);

impl Key {
    fn new() -> Key {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        Key(EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref(), &rng).unwrap())
    }

    fn jwk(&self) -> Value {
        let point = self.0.public_key().as_ref();
        json!({"kty": "EC", "crv": "P-256",
               "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..])})
    }

    fn jkt(&self) -> String {
        let jwk = self.jwk();
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk["x"].as_str().unwrap(),
            jwk["y"].as_str().unwrap()
        );
        URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()))
    }

    /// A proof with `header` and `claims` merged over correct defaults.
    fn proof_with(&self, header: Value, claims: Value) -> String {
        let mut h = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk()});
        merge(&mut h, header);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let jti = URL_SAFE_NO_PAD.encode(ring::rand::generate::<[u8; 16]>(&SystemRandom::new()).unwrap().expose());
        let mut c = json!({"jti": jti, "iat": now});
        merge(&mut c, claims);
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(h.to_string()),
            URL_SAFE_NO_PAD.encode(c.to_string())
        );
        let sig = self.0.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    fn proof(&self, htm: &str, htu: &str, extra: Value) -> String {
        let mut claims = json!({"htm": htm, "htu": htu});
        merge(&mut claims, extra);
        self.proof_with(json!({}), claims)
    }
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(into), Value::Object(from)) = (into.as_object_mut(), from) {
        for (k, v) in from {
            if v.is_null() {
                into.remove(&k);
            } else {
                into.insert(k, v);
            }
        }
    }
}

fn ath(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()))
}

fn http() -> Client {
    Client::builder().timeout(Duration::from_secs(5)).build().unwrap()
}

async fn start(dpop: DpopSpec) -> DevServer {
    DevServer::start(DevServerConfig {
        dpop,
        ..Default::default()
    })
    .await
    .unwrap()
}

const PASSWORD: [(&str, &str); 4] = [
    ("grant_type", "password"),
    ("client_id", "public-app"),
    ("username", "alice"),
    ("password", "alice-password"),
];

async fn token_request(server: &DevServer, proof: Option<String>, form: &[(&str, &str)]) -> Response {
    let mut request = http().post(server.token_endpoint()).form(form);
    if let Some(proof) = proof {
        request = request.header("DPoP", proof);
    }
    request.send().await.unwrap()
}

async fn bound_tokens(server: &DevServer, key: &Key) -> Value {
    let proof = key.proof("POST", &server.token_endpoint(), json!({}));
    let response = token_request(server, Some(proof), &PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn bound_access_token(server: &DevServer, key: &Key) -> String {
    bound_tokens(server, key).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn get(server: &DevServer, scheme: &str, token: &str, proof: Option<String>) -> Response {
    let mut request = http()
        .get(server.resource_url("/me?q=1"))
        .header("Authorization", format!("{scheme} {token}"));
    if let Some(proof) = proof {
        request = request.header("DPoP", proof);
    }
    request.send().await.unwrap()
}

fn challenge(response: &Response) -> String {
    response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_proof_binds_access_and_refresh_tokens_to_the_key() {
    let server = start(DpopSpec::default()).await;
    let key = Key::new();
    let body = bound_tokens(&server, &key).await;
    assert_eq!(body["token_type"], "DPoP");
    let (access, refresh) = (
        body["access_token"].as_str().unwrap(),
        body["refresh_token"].as_str().unwrap(),
    );
    assert_eq!(server.dpop_binding(access), Some(key.jkt()));
    assert_eq!(server.dpop_binding(refresh), Some(key.jkt()));

    // The resource accepts it with the DPoP scheme and a proof by that key (htu
    // without the query).
    let url = server.resource_url("/me");
    let ok = get(
        &server,
        "DPoP",
        access,
        Some(key.proof("GET", &url, json!({"ath": ath(access)}))),
    )
    .await;
    assert_eq!(ok.status(), StatusCode::OK);

    // A refresh needs a proof by the same key.
    let refresh_form = [
        ("grant_type", "refresh_token"),
        ("client_id", "public-app"),
        ("refresh_token", refresh),
    ];
    let other = Key::new();
    let refused = token_request(
        &server,
        Some(other.proof("POST", &server.token_endpoint(), json!({}))),
        &refresh_form,
    )
    .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let refused = token_request(&server, None, &refresh_form).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let renewed = token_request(
        &server,
        Some(key.proof("POST", &server.token_endpoint(), json!({}))),
        &refresh_form,
    )
    .await;
    assert_eq!(renewed.status(), StatusCode::OK);
    assert_eq!(server.stats().dpop_rejections.get("wrong_key"), Some(&2));
}

#[tokio::test]
async fn a_bound_token_sent_as_bearer_or_with_another_key_is_refused() {
    let server = start(DpopSpec::default()).await;
    let key = Key::new();
    let access = bound_access_token(&server, &key).await;
    let url = server.resource_url("/me");

    let as_bearer = get(&server, "Bearer", &access, None).await;
    assert_eq!(as_bearer.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&as_bearer).starts_with("DPoP "), "{}", challenge(&as_bearer));
    assert!(challenge(&as_bearer).contains(r#"error="invalid_token""#));

    let other = Key::new();
    let stolen = get(
        &server,
        "DPoP",
        &access,
        Some(other.proof("GET", &url, json!({"ath": ath(&access)}))),
    )
    .await;
    assert_eq!(stolen.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&stolen).contains("invalid_dpop_proof"));

    let stats = server.stats();
    assert_eq!(stats.dpop_rejections.get("bound_token_as_bearer"), Some(&1));
    assert_eq!(stats.dpop_rejections.get("wrong_key"), Some(&1));
}

#[tokio::test]
async fn each_broken_rule_of_a_proof_is_refused_with_its_reason() {
    let server = start(DpopSpec::default()).await;
    let key = Key::new();
    let access = bound_access_token(&server, &key).await;
    let url = server.resource_url("/me");
    let good = json!({"htm": "GET", "htu": url, "ath": ath(&access)});
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let cases: Vec<(&str, String)> = vec![
        ("malformed", key.proof_with(json!({"typ": "JWT"}), good.clone())),
        ("malformed", key.proof_with(json!({"alg": "RS256"}), good.clone())),
        (
            "malformed",
            key.proof_with(
                json!({"jwk": {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}}),
                good.clone(),
            ),
        ),
        ("bad_signature", {
            let p = key.proof("GET", &url, json!({"ath": ath(&access)}));
            let (input, _) = p.rsplit_once('.').unwrap();
            format!("{input}.{}", URL_SAFE_NO_PAD.encode([7u8; 64]))
        }),
        ("wrong_htm", key.proof("POST", &url, json!({"ath": ath(&access)}))),
        (
            "wrong_htu",
            key.proof("GET", &server.resource_url("/other"), json!({"ath": ath(&access)})),
        ),
        (
            "wrong_htu",
            key.proof("GET", &format!("{url}?q=1"), json!({"ath": ath(&access)})),
        ),
        (
            "iat_outside_window",
            key.proof("GET", &url, json!({"ath": ath(&access), "iat": now - 120})),
        ),
        (
            "iat_outside_window",
            key.proof("GET", &url, json!({"ath": ath(&access), "iat": now + 120})),
        ),
        (
            "wrong_ath",
            key.proof("GET", &url, json!({"ath": ath("another token")})),
        ),
        ("wrong_ath", key.proof("GET", &url, json!({}))),
    ];
    for (reason, proof) in &cases {
        let response = get(&server, "DPoP", &access, Some(proof.clone())).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{reason}");
        assert!(
            challenge(&response).contains("invalid_dpop_proof"),
            "{reason}: {}",
            challenge(&response)
        );
    }
    let refused: u64 = server.stats().dpop_rejections.values().sum();
    assert_eq!(refused, cases.len() as u64, "{:?}", server.stats().dpop_rejections);
    for (reason, _) in &cases {
        assert!(server.stats().dpop_rejections.contains_key(*reason), "{reason}");
    }
    // A proof without a token where one is required by the client's registration:
    let strict = start(DpopSpec {
        required_for_clients: vec!["public-app".into()],
        ..Default::default()
    })
    .await;
    let response = token_request(&strict, None, &PASSWORD).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(response.json::<Value>().await.unwrap()["error"], "invalid_dpop_proof");
}

#[tokio::test]
async fn a_replayed_proof_is_refused() {
    let server = start(DpopSpec::default()).await;
    let key = Key::new();
    let access = bound_access_token(&server, &key).await;
    let proof = key.proof("GET", &server.resource_url("/me"), json!({"ath": ath(&access)}));
    assert_eq!(
        get(&server, "DPoP", &access, Some(proof.clone())).await.status(),
        StatusCode::OK
    );
    let again = get(&server, "DPoP", &access, Some(proof)).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(server.stats().dpop_rejections.get("jti_replayed"), Some(&1));
}

#[tokio::test]
async fn nonces_are_issued_demanded_and_rotated() {
    let server = start(DpopSpec {
        nonces: true,
        ..Default::default()
    })
    .await;
    let key = Key::new();
    // No nonce: use_dpop_nonce with the nonce in DPoP-Nonce (RFC 9449 §8).
    let first = token_request(
        &server,
        Some(key.proof("POST", &server.token_endpoint(), json!({}))),
        &PASSWORD,
    )
    .await;
    assert_eq!(first.status(), StatusCode::BAD_REQUEST);
    let nonce = first.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    assert_eq!(first.json::<Value>().await.unwrap()["error"], "use_dpop_nonce");
    let ok = token_request(
        &server,
        Some(key.proof("POST", &server.token_endpoint(), json!({"nonce": nonce}))),
        &PASSWORD,
    )
    .await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(
        ok.headers()["dpop-nonce"].to_str().unwrap(),
        nonce,
        "every answer carries the nonce"
    );
    let access = ok.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // Rotation: the old nonce is refused at the resource with a DPoP challenge (§9).
    let rotated = server.rotate_dpop_nonce();
    assert_ne!(rotated, nonce);
    let url = server.resource_url("/me");
    let stale = get(
        &server,
        "DPoP",
        &access,
        Some(key.proof("GET", &url, json!({"ath": ath(&access), "nonce": nonce}))),
    )
    .await;
    assert_eq!(stale.status(), StatusCode::UNAUTHORIZED);
    assert!(
        challenge(&stale).contains(r#"error="use_dpop_nonce""#),
        "{}",
        challenge(&stale)
    );
    assert_eq!(stale.headers()["dpop-nonce"].to_str().unwrap(), rotated);
    let fresh = get(
        &server,
        "DPoP",
        &access,
        Some(key.proof("GET", &url, json!({"ath": ath(&access), "nonce": rotated}))),
    )
    .await;
    assert_eq!(fresh.status(), StatusCode::OK);
    assert_eq!(server.stats().dpop_rejections.get("nonce"), Some(&2));
}

#[tokio::test]
async fn the_iat_window_is_on_the_server_clock() {
    // A server whose clock is an hour ahead: a proof stamped with the real time is
    // outside its window, one stamped with the server's time (its Date) is inside.
    let server = DevServer::start(DevServerConfig {
        clock_offset_secs: 3600,
        ..Default::default()
    })
    .await
    .unwrap();
    let key = Key::new();
    let real = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let skewed = token_request(
        &server,
        Some(key.proof("POST", &server.token_endpoint(), json!({}))),
        &PASSWORD,
    )
    .await;
    assert_eq!(skewed.status(), StatusCode::BAD_REQUEST);
    let date = httpdate::parse_http_date(skewed.headers()["date"].to_str().unwrap()).unwrap();
    let server_now = date.duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert!(server_now >= real + 3590);
    let corrected = key.proof("POST", &server.token_endpoint(), json!({"iat": server_now}));
    assert_eq!(
        token_request(&server, Some(corrected), &PASSWORD).await.status(),
        StatusCode::OK
    );
    assert_eq!(server.stats().dpop_rejections.get("iat_outside_window"), Some(&1));
}

#[tokio::test]
async fn metadata_advertises_es256_unless_told_not_to() {
    for advertise in [true, false] {
        let server = start(DpopSpec {
            advertise,
            ..Default::default()
        })
        .await;
        let url = format!("{}/.well-known/oauth-authorization-server", server.base_url());
        let metadata: Value = http().get(url).send().await.unwrap().json().await.unwrap();
        assert_eq!(metadata.get("dpop_signing_alg_values_supported").is_some(), advertise);
    }
}
