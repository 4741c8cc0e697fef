//! `AuthConfig::allow_http_for_development_hosts`: plain http only for the named hosts.

use tokenkeeper::{AuthClient, AuthConfig, AuthError};

fn build(config: AuthConfig) -> Result<AuthClient, AuthError> {
    AuthClient::new(config)
}

#[test]
fn http_is_allowed_only_for_the_named_development_hosts() {
    let dev = |url: &str| AuthConfig::new(url, "c").allow_http_for_development_hosts(["10.0.2.2", "Dev-Box.local"]);
    // The Android emulator's address of the host machine, and a named LAN host (any case).
    assert!(build(dev("http://10.0.2.2:8080/oauth2/token")).is_ok());
    assert!(build(dev("http://dev-box.local/oauth2/token")).is_ok());
    assert!(build(dev("http://dev-box.local/token").revocation_endpoint("http://10.0.2.2/revoke")).is_ok());
    // https stays mandatory for every other host, even with the option set.
    for other in [
        "http://10.0.2.3/token",
        "http://as.example.com/token",
        "http://10.0.2.2.evil.example/token",
    ] {
        let error = build(dev(other)).unwrap_err();
        assert!(matches!(error, AuthError::InvalidConfig { .. }), "{other}: {error:?}");
        assert!(
            error.to_string().contains("allow_http_for_development_hosts"),
            "{error}"
        );
    }
    let error =
        build(dev("https://as.example.com/token").revocation_endpoint("http://as.example.com/revoke")).unwrap_err();
    assert!(matches!(error, AuthError::InvalidConfig { .. }), "{error:?}");
}

#[test]
fn without_the_option_a_development_host_needs_https() {
    let error = build(AuthConfig::new("http://10.0.2.2:8080/oauth2/token", "c")).unwrap_err();
    assert!(matches!(error, AuthError::InvalidConfig { .. }), "{error:?}");
    assert!(build(AuthConfig::new("https://10.0.2.2/oauth2/token", "c")).is_ok());
}

#[test]
fn the_option_shows_in_debug_output() {
    let config = AuthConfig::new("https://as.example.com/token", "c").allow_http_for_development_hosts(["10.0.2.2"]);
    assert!(format!("{config:?}").contains("10.0.2.2"));
}
