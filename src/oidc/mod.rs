//! OpenID Connect: who signed in. ID tokens are validated whenever `openid` is in
//! scope (signature against the issuer's JWK Set, then the claims), and their claims
//! are kept with the session ([`Session::id_token_claims`](crate::Session::id_token_claims)).
//!
//! The JOSE pieces are public so that code outside the SDK (a server verifying OIDC
//! back-channel logout tokens, say) can verify a provider's JWTs the same way:
//! [`JwksVerifier`] checks signatures and [`IdTokenValidator`] the ID token claims.

mod claims;
mod config;
mod logout;
mod session;
mod step_up;

pub use crate::error::{JwtCheck, JwtError};
pub use crate::internal::id_token::{IdTokenExpectations, IdTokenValidator, ID_TOKEN_LEEWAY};
pub use crate::internal::jose::{JwksVerifier, JwsAlgorithm, VerifiedJwt};
pub use claims::IdTokenClaims;
pub(crate) use config::OidcConfig;
pub use logout::EndSessionRequest;
