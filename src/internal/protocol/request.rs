//! Builds token and revocation requests: grant parameters and client authentication.

use crate::config::ClientAuthMethod;
use crate::identity::Identity;
use crate::internal::context::ClientContext;
use crate::internal::secrets::{BufKind, SecretBuf};
use crate::transport::{HttpMethod, HttpRequest};
use base64::Engine;
use bytes::Bytes;
use secrecy::{ExposeSecret, SecretString};
use std::borrow::Cow;
use url::Url;
use zeroize::Zeroizing;

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

/// A token or revocation request, with the secrets it carries so that server text
/// echoing one of them can be scrubbed (see `error_response`).
pub(crate) struct Outgoing<'a> {
    pub request: HttpRequest,
    pub sent_secrets: Vec<&'a str>,
}

/// The parameters of a form body. They are borrowed, so the only copy of a secret the
/// request makes is the encoded body itself, in a [`SecretBuf`].
struct Form<'a> {
    pairs: Vec<(&'static str, Cow<'a, str>)>,
    secrets: Vec<&'a str>,
}

impl<'a> Form<'a> {
    fn new() -> Self {
        Self {
            pairs: Vec::with_capacity(8),
            secrets: Vec::new(),
        }
    }

    fn add(&mut self, name: &'static str, value: impl Into<Cow<'a, str>>) {
        self.pairs.push((name, value.into()));
    }

    fn add_secret(&mut self, name: &'static str, value: &'a str) {
        self.pairs.push((name, Cow::Borrowed(value)));
        self.secrets.push(value);
    }

    /// `application/x-www-form-urlencoded` into a buffer of exactly the encoded size,
    /// so it never grows (and never leaves a freed copy behind).
    fn encode(&self) -> SecretBuf {
        let encoded_len = |s: &str| {
            form_urlencoded::byte_serialize(s.as_bytes())
                .map(str::len)
                .sum::<usize>()
        };
        let size = self
            .pairs
            .iter()
            .map(|(name, value)| encoded_len(name) + 1 + encoded_len(value))
            .sum::<usize>()
            + self.pairs.len().saturating_sub(1);
        let mut body = SecretBuf::with_capacity(BufKind::RequestBody, size);
        for (i, (name, value)) in self.pairs.iter().enumerate() {
            if i > 0 {
                body.extend(b"&");
            }
            for piece in form_urlencoded::byte_serialize(name.as_bytes()) {
                body.extend(piece.as_bytes());
            }
            body.extend(b"=");
            for piece in form_urlencoded::byte_serialize(value.as_bytes()) {
                body.extend(piece.as_bytes());
            }
        }
        body
    }
}

/// A POST to the token endpoint for `grant`, with the identity's parameters.
pub(crate) fn token_request<'a>(ctx: &'a ClientContext, identity: &'a Identity, grant: &'a Grant<'a>) -> Outgoing<'a> {
    let mut form = Form::new();
    form.add("grant_type", grant.name());
    match grant {
        Grant::ClientCredentials => {}
        Grant::Password { username, password } => {
            form.add("username", *username);
            form.add_secret("password", password.expose_secret());
        }
        Grant::RefreshToken(token) => form.add_secret("refresh_token", token.expose_secret()),
        Grant::AuthorizationCode {
            code,
            redirect_uri,
            verifier,
        } => {
            form.add_secret("code", code.expose_secret());
            form.add("redirect_uri", *redirect_uri);
            form.add_secret("code_verifier", verifier.expose_secret());
        }
        Grant::DeviceCode(code) => form.add_secret("device_code", code.expose_secret()),
    }
    // The code and device grants carry the scope of their authorization request.
    let scoped = !matches!(grant, Grant::AuthorizationCode { .. } | Grant::DeviceCode(_));
    if let Some(scope) = identity.scope_param().filter(|_| scoped) {
        form.add("scope", scope);
    }
    if let Some(audience) = identity.audience.as_ref().filter(|_| scoped) {
        form.add("audience", audience.as_str());
    }
    if let Some(resource) = &identity.resource {
        form.add("resource", resource.as_str());
    }
    authenticated_post(ctx, &ctx.token_url, form)
}

/// An RFC 8628 §3.1 device authorization request.
pub(crate) fn device_authorization_request<'a>(
    ctx: &'a ClientContext,
    url: &Url,
    identity: &'a Identity,
) -> Outgoing<'a> {
    let mut form = Form::new();
    if let Some(scope) = identity.scope_param() {
        form.add("scope", scope);
    }
    if let Some(audience) = &identity.audience {
        form.add("audience", audience.as_str());
    }
    authenticated_post(ctx, url, form)
}

/// An RFC 7009 §2.1 revocation request.
pub(crate) fn revocation_request<'a>(
    ctx: &'a ClientContext,
    url: &Url,
    token: &'a SecretString,
    hint: &'a str,
) -> Outgoing<'a> {
    let mut form = Form::new();
    form.add_secret("token", token.expose_secret());
    form.add("token_type_hint", hint);
    authenticated_post(ctx, url, form)
}

fn authenticated_post<'a>(ctx: &'a ClientContext, url: &Url, mut form: Form<'a>) -> Outgoing<'a> {
    let config = &ctx.config;
    let mut request = HttpRequest::new(HttpMethod::Post, url.clone())
        .with_timeout(config.request_timeout)
        .header("accept", "application/json")
        .header("content-type", "application/x-www-form-urlencoded");
    match (&config.client_secret, config.client_auth_method) {
        (Some(secret), ClientAuthMethod::Basic) => {
            form.secrets.push(secret.expose_secret());
            if let Some(value) = &ctx.basic_authorization {
                // A clone shares the client's one buffer (reference-counted), no copy.
                request = request.sensitive_header("authorization", value.clone());
            }
        }
        (Some(secret), ClientAuthMethod::Post) => {
            form.add("client_id", config.client_id.as_str());
            form.add_secret("client_secret", secret.expose_secret());
        }
        // A public client identifies itself but cannot authenticate (RFC 6749 §2.1).
        (None, _) => form.add("client_id", config.client_id.as_str()),
    }
    let body = form.encode().into_bytes();
    Outgoing {
        request: request.with_body(body),
        sent_secrets: form.secrets,
    }
}

/// RFC 6749 §2.3.1: the id and secret are form-urlencoded *before* being joined and
/// base64-encoded, so a secret containing `:` or `%` survives the round trip. Built
/// once per client; every intermediate buffer is pre-sized and wiped, and the value
/// itself is wiped when the client and its last request are gone.
pub(crate) fn basic_authorization(client_id: &str, secret: &SecretString) -> Option<Bytes> {
    let encoded_len = |s: &str| {
        form_urlencoded::byte_serialize(s.as_bytes())
            .map(str::len)
            .sum::<usize>()
    };
    let secret = secret.expose_secret();
    let mut credentials =
        SecretBuf::with_capacity(BufKind::Authorization, encoded_len(client_id) + 1 + encoded_len(secret));
    for piece in form_urlencoded::byte_serialize(client_id.as_bytes()) {
        credentials.extend(piece.as_bytes());
    }
    credentials.extend(b":");
    for piece in form_urlencoded::byte_serialize(secret.as_bytes()) {
        credentials.extend(piece.as_bytes());
    }
    let engine = base64::engine::general_purpose::STANDARD;
    let b64_len = base64::encoded_len(credentials.len(), true)?;
    let mut b64 = Zeroizing::new(vec![0u8; b64_len]);
    let written = engine.encode_slice(credentials.as_slice(), &mut b64).ok()?;
    let mut value = SecretBuf::with_capacity(BufKind::Authorization, "Basic ".len() + written);
    value.extend(b"Basic ");
    value.extend(b64.get(..written)?);
    Some(value.into_bytes())
}

/// A `GET` that carries no secret (discovery; JWKS later).
pub(crate) fn get(url: Url, timeout: std::time::Duration) -> Outgoing<'static> {
    Outgoing {
        request: HttpRequest::new(HttpMethod::Get, url)
            .with_timeout(timeout)
            .header("accept", "application/json"),
        sent_secrets: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_urlencoded_before_base64() {
        let value = basic_authorization("my client", &SecretString::from("p:a%ss")).unwrap();
        let encoded = std::str::from_utf8(&value).unwrap().trim_start_matches("Basic ");
        let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap();
        assert_eq!(String::from_utf8(decoded).unwrap(), "my+client:p%3Aa%25ss");
    }
}
