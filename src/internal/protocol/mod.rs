//! The OAuth 2.0 wire protocol: token requests (RFC 6749 §4.3, §4.4, §6), token
//! responses (§5.1) and error responses (§5.2), revocation requests (RFC 7009) and
//! the JWT `exp` fallback. No I/O lives here: see `transport` for that.

pub(crate) mod error_response;
pub(crate) mod jwt;
pub(crate) mod request;
pub(crate) mod token_response;
