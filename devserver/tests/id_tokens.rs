//! ID tokens over HTTP: issued only for `openid`, signed by the key the key set
//! publishes (checked here with `ring`, independently of the SDK), the key set's
//! caching header, rotation to a new `kid`, and the `alg: none` fault.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};
use serde_json::Value;
use tokenkeeper_devserver::{DevServer, DevServerConfig, IdTokenFault};

async fn token(server: &DevServer, scope: &str) -> Value {
    let body = reqwest::Client::new()
        .post(server.token_endpoint())
        .form(&[
            ("grant_type", "password"),
            ("username", "bob"),
            ("password", "bob-password"),
            ("client_id", "oidc-app"),
            ("scope", scope),
        ])
        .send()
        .await
        .expect("token request")
        .text()
        .await
        .expect("body");
    serde_json::from_str(&body).expect("JSON")
}

fn part(jwt: &str, index: usize) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(jwt.split('.').nth(index).expect("part"))
        .expect("base64url")
}

async fn jwks(server: &DevServer) -> (Option<String>, Value) {
    let response = reqwest::get(server.jwks_uri()).await.expect("jwks");
    let cache = response
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_owned());
    (cache, serde_json::from_str(&response.text().await.unwrap()).unwrap())
}

/// Verifies `jwt` (ES256) with the P-256 JWK `key`.
fn verifies(jwt: &str, key: &Value) -> bool {
    let coordinate = |name: &str| URL_SAFE_NO_PAD.decode(key[name].as_str().unwrap()).unwrap();
    let point = [vec![4u8], coordinate("x"), coordinate("y")].concat();
    let input = &jwt[..jwt.rfind('.').unwrap()];
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
        .verify(input.as_bytes(), &part(jwt, 2))
        .is_ok()
}

#[tokio::test]
async fn an_id_token_only_for_openid_signed_by_the_published_key() {
    let server = DevServer::start(DevServerConfig::default()).await.expect("server");
    assert!(token(&server, "read").await.get("id_token").is_none());
    let response = token(&server, "openid email read").await;
    let id_token = response["id_token"].as_str().expect("an ID token for openid");
    let header: Value = serde_json::from_slice(&part(id_token, 0)).unwrap();
    let claims: Value = serde_json::from_slice(&part(id_token, 1)).unwrap();
    assert_eq!(header["alg"], "ES256");
    assert_eq!(
        (claims["sub"].as_str(), claims["aud"].as_str()),
        (Some("bob"), Some("oidc-app"))
    );
    assert_eq!(claims["iss"].as_str(), Some(server.issuer().as_str()));
    let (cache, set) = jwks(&server).await;
    assert_eq!(cache.as_deref(), Some("public, max-age=300"));
    let key = &set["keys"][0];
    assert_eq!(key["kid"], header["kid"]);
    assert!(verifies(id_token, key));
    let metadata: Value = reqwest::get(format!("{}/.well-known/openid-configuration", server.base_url()))
        .await
        .unwrap()
        .json_or_text()
        .await;
    assert_eq!(metadata["jwks_uri"].as_str(), Some(server.jwks_uri().as_str()));
    assert_eq!(server.stats().jwks_requests, 1);
}

#[tokio::test]
async fn rotation_publishes_only_the_new_key_and_alg_none_is_unsigned() {
    let server = DevServer::start(DevServerConfig::default()).await.expect("server");
    let old = jwks(&server).await.1["keys"][0].clone();
    let kid = server.rotate_signing_key();
    let set = jwks(&server).await.1;
    assert_eq!(set["keys"].as_array().unwrap().len(), 1);
    assert_eq!(set["keys"][0]["kid"].as_str(), Some(kid.as_str()));
    let id_token = token(&server, "openid").await["id_token"].as_str().unwrap().to_owned();
    assert!(verifies(&id_token, &set["keys"][0]) && !verifies(&id_token, &old));
    server.inject_id_token_fault(IdTokenFault::AlgNone);
    let unsigned = token(&server, "openid").await["id_token"].as_str().unwrap().to_owned();
    let header: Value = serde_json::from_slice(&part(&unsigned, 0)).unwrap();
    assert_eq!(header["alg"], "none");
    assert!(unsigned.ends_with('.'));
}

trait JsonOrText {
    async fn json_or_text(self) -> Value;
}

impl JsonOrText for reqwest::Response {
    async fn json_or_text(self) -> Value {
        serde_json::from_str(&self.text().await.expect("body")).expect("JSON")
    }
}
