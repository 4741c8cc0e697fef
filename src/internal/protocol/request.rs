//! Builds token and revocation requests: grant parameters and client authentication.

use crate::config::{AuthConfig, ClientAuthMethod};
use crate::identity::Identity;
use base64::Engine;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Client, RequestBuilder, Url};
use secrecy::{ExposeSecret, SecretString};

/// The grant of one token request.
pub(crate) enum Grant<'a> {
    /// RFC 6749 §4.4.
    ClientCredentials,
    /// RFC 6749 §4.3.
    Password {
        username: &'a str,
        password: &'a SecretString,
    },
    /// RFC 6749 §6.
    RefreshToken(&'a SecretString),
    /// RFC 6749 §4.1.3 with the RFC 7636 §4.5 `code_verifier`.
    AuthorizationCode {
        code: &'a SecretString,
        redirect_uri: &'a str,
        verifier: &'a SecretString,
    },
    /// RFC 8628 §3.4.
    DeviceCode(&'a SecretString),
}

impl Grant<'_> {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Grant::ClientCredentials => "client_credentials",
            Grant::Password { .. } => "password",
            Grant::RefreshToken(_) => "refresh_token",
            Grant::AuthorizationCode { .. } => "authorization_code",
            Grant::DeviceCode(_) => "urn:ietf:params:oauth:grant-type:device_code",
        }
    }
}

/// A form body under construction. It holds secrets, so it is consumed into the
/// request body rather than logged or kept.
struct Form(form_urlencoded::Serializer<'static, String>);

impl Form {
    fn new() -> Self {
        Self(form_urlencoded::Serializer::new(String::new()))
    }

    fn add(&mut self, name: &str, value: &str) {
        self.0.append_pair(name, value);
    }
}

/// A POST to the token endpoint for `grant`, with the identity's parameters.
pub(crate) fn token_request(
    http: &Client,
    url: &Url,
    config: &AuthConfig,
    identity: &Identity,
    grant: &Grant<'_>,
) -> RequestBuilder {
    let mut form = Form::new();
    form.add("grant_type", grant.name());
    match grant {
        Grant::ClientCredentials => {}
        Grant::Password { username, password } => {
            form.add("username", username);
            form.add("password", password.expose_secret());
        }
        Grant::RefreshToken(token) => form.add("refresh_token", token.expose_secret()),
        Grant::AuthorizationCode {
            code,
            redirect_uri,
            verifier,
        } => {
            form.add("code", code.expose_secret());
            form.add("redirect_uri", redirect_uri);
            form.add("code_verifier", verifier.expose_secret());
        }
        Grant::DeviceCode(code) => form.add("device_code", code.expose_secret()),
    }
    // The code and device grants carry the scope of their authorization request.
    let scoped = !matches!(grant, Grant::AuthorizationCode { .. } | Grant::DeviceCode(_));
    if let Some(scope) = identity.scope_param().filter(|_| scoped) {
        form.add("scope", &scope);
    }
    if let Some(audience) = identity.audience.as_ref().filter(|_| scoped) {
        form.add("audience", audience);
    }
    if let Some(resource) = &identity.resource {
        form.add("resource", resource);
    }
    authenticated_post(http, url, config, form)
}

/// An RFC 8628 §3.1 device authorization request.
pub(crate) fn device_authorization_request(
    http: &Client,
    url: &Url,
    config: &AuthConfig,
    identity: &Identity,
) -> RequestBuilder {
    let mut form = Form::new();
    if let Some(scope) = identity.scope_param() {
        form.add("scope", &scope);
    }
    if let Some(audience) = &identity.audience {
        form.add("audience", audience);
    }
    authenticated_post(http, url, config, form)
}

/// An RFC 7009 §2.1 revocation request.
pub(crate) fn revocation_request(
    http: &Client,
    url: &Url,
    config: &AuthConfig,
    token: &SecretString,
    hint: &str,
) -> RequestBuilder {
    let mut form = Form::new();
    form.add("token", token.expose_secret());
    form.add("token_type_hint", hint);
    authenticated_post(http, url, config, form)
}

fn authenticated_post(http: &Client, url: &Url, config: &AuthConfig, mut form: Form) -> RequestBuilder {
    let mut request = http
        .post(url.clone())
        .header(ACCEPT, HeaderValue::from_static("application/json"))
        .header(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
    match (&config.client_secret, config.client_auth_method) {
        (Some(secret), ClientAuthMethod::Basic) => {
            request = request.header(AUTHORIZATION, basic_authorization(&config.client_id, secret));
        }
        (Some(secret), ClientAuthMethod::Post) => {
            form.add("client_id", &config.client_id);
            form.add("client_secret", secret.expose_secret());
        }
        // A public client identifies itself but cannot authenticate (RFC 6749 §2.1).
        (None, _) => form.add("client_id", &config.client_id),
    }
    request.body(form.0.finish())
}

/// RFC 6749 §2.3.1: the id and secret are form-urlencoded *before* being joined and
/// base64-encoded, so a secret containing `:` or `%` survives the round trip.
fn basic_authorization(client_id: &str, secret: &SecretString) -> HeaderValue {
    let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let credentials = format!("{}:{}", encode(client_id), encode(secret.expose_secret()));
    let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
    // Base64 output is always a valid header value.
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).unwrap_or(HeaderValue::from_static("Basic"));
    value.set_sensitive(true);
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_urlencoded_before_base64() {
        let value = basic_authorization("my client", &SecretString::from("p:a%ss"));
        let encoded = value.to_str().unwrap().trim_start_matches("Basic ");
        let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap();
        assert_eq!(String::from_utf8(decoded).unwrap(), "my+client:p%3Aa%25ss");
        assert!(value.is_sensitive());
    }
}
