//! The OAuth 2.0 wire protocol: token requests (RFC 6749 §4.3, §4.4, §6), token
//! responses (§5.1) and error responses (§5.2), revocation requests (RFC 7009) and
//! the JWT `exp` fallback; for sign-in, PKCE (RFC 7636), the authorization request
//! and response (§4.1, RFC 9207), the device grant (RFC 8628) and server metadata
//! (RFC 8414). No I/O lives here: see `transport` for that.

pub(crate) mod authorization;
pub(crate) mod device;
pub(crate) mod discovery;
pub(crate) mod error_response;
pub(crate) mod jwt;
pub(crate) mod pkce;
pub(crate) mod request;
pub(crate) mod token_response;
