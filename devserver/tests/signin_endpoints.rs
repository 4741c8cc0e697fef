//! The sign-in endpoints over HTTP: the authorization endpoint's refusals, the
//! metadata document and the device authorization response.

use reqwest::{redirect, Client, StatusCode};
use serde_json::Value;
use tokenkeeper_devserver::{DevServer, DevServerConfig};

fn browser() -> Client {
    Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .expect("client")
}

const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

async fn authorize(server: &DevServer, params: &[(&str, &str)]) -> reqwest::Response {
    browser()
        .get(server.authorization_endpoint())
        .query(params)
        .send()
        .await
        .expect("authorize")
}

#[tokio::test]
async fn unregistered_redirect_uris_get_a_page_not_a_redirect() {
    let server = DevServer::start(DevServerConfig::default()).await.expect("server");
    let r = authorize(
        &server,
        &[
            ("client_id", "native-app"),
            ("redirect_uri", "https://evil.example/cb"),
            ("response_type", "code"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.headers().get("location").is_none(), "never an open redirector");
}

#[tokio::test]
async fn pkce_is_required_and_errors_go_back_with_state_and_iss() {
    let server = DevServer::start(DevServerConfig::default()).await.expect("server");
    let base = [
        ("client_id", "native-app"),
        ("redirect_uri", "http://127.0.0.1:4711/callback"),
        ("response_type", "code"),
        ("state", "xyz"),
    ];
    let r = authorize(&server, &base).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let location = r.headers()["location"].to_str().expect("ascii").to_owned();
    assert!(
        location.starts_with("http://127.0.0.1:4711/callback?error=invalid_request"),
        "{location}"
    );
    assert!(
        location.contains("state=xyz") && location.contains("iss=http"),
        "{location}"
    );

    let mut with_pkce = base.to_vec();
    with_pkce.extend([("code_challenge", CHALLENGE), ("code_challenge_method", "S256")]);
    let page = authorize(&server, &with_pkce).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.expect("page").contains(r#"name="code_challenge""#));
}

#[tokio::test]
async fn metadata_names_the_issuer_and_endpoints() {
    let server = DevServer::start(DevServerConfig::default()).await.expect("server");
    for path in ["oauth-authorization-server", "openid-configuration"] {
        let url = format!("{}/.well-known/{path}", server.base_url());
        let body: Value = browser()
            .get(url)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        assert_eq!(body["issuer"], server.base_url().as_str());
        assert_eq!(body["authorization_endpoint"], server.authorization_endpoint().as_str());
        assert_eq!(
            body["device_authorization_endpoint"],
            server.device_authorization_endpoint().as_str()
        );
        assert_eq!(body["code_challenge_methods_supported"][0], "S256");
        assert_eq!(body["authorization_response_iss_parameter_supported"], true);
    }
}

#[tokio::test]
async fn device_authorization_returns_codes_and_polling_is_pending() {
    let server = DevServer::start(DevServerConfig::default()).await.expect("server");
    let body: Value = browser()
        .post(server.device_authorization_endpoint())
        .form(&[("client_id", "native-app"), ("scope", "read")])
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    assert_eq!(body["interval"], 5);
    assert_eq!(body["expires_in"], 600);
    let user_code = body["user_code"].as_str().expect("user_code");
    assert_eq!(user_code.len(), 9);
    let poll = || async {
        browser()
            .post(server.token_endpoint())
            .form(&[
                ("client_id", "native-app"),
                ("grant_type", tokenkeeper_devserver::DEVICE_CODE_GRANT),
                ("device_code", body["device_code"].as_str().expect("device_code")),
            ])
            .send()
            .await
            .expect("poll")
            .json::<Value>()
            .await
            .expect("json")
    };
    assert_eq!(poll().await["error"], "authorization_pending");
    assert!(
        server.approve_device(&user_code.to_lowercase(), "alice"),
        "user codes are case-insensitive"
    );
    assert_eq!(poll().await["token_type"], "Bearer");
    assert_eq!(poll().await["error"], "invalid_grant", "a device code is redeemed once");
}
