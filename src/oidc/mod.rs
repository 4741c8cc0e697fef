//! OpenID Connect: who signed in. ID tokens are validated whenever `openid` is in
//! scope (signature against the issuer's JWK Set, then the claims), and their claims
//! are kept with the session ([`Session::id_token_claims`](crate::Session::id_token_claims)).
//!
//! The JOSE pieces are public so that code outside the SDK (a server verifying OIDC
//! back-channel logout tokens, say) can verify a provider's JWTs the same way:
//! [`JwksVerifier`] checks signatures and [`IdTokenValidator`] the ID token claims.
//!
//! Back-channel logout (OIDC Back-Channel Logout 1.0): [`BackChannelLogout`] is the
//! receiver an app mounts at its route, [`LogoutTokenValidator`] the token checks.

mod backchannel;
mod claims;
mod config;
mod logout;
mod logout_token;
mod session;
mod step_up;

pub use crate::error::{JwtCheck, JwtError};
pub use crate::internal::id_token::{IdTokenExpectations, IdTokenValidator, ID_TOKEN_LEEWAY};
pub use crate::internal::jose::{JwksVerifier, JwsAlgorithm, VerifiedJwt};
pub use backchannel::{
    BackChannelLogout, EndSessions, LogoutAccepted, LogoutOutcome, LogoutRejection, LogoutReplayCache,
    MemoryReplayCache, MAX_LOGOUT_REQUEST_BYTES,
};
pub use claims::IdTokenClaims;
pub(crate) use config::OidcConfig;
pub use logout::EndSessionRequest;
pub use logout_token::{LogoutToken, LogoutTokenValidator, BACKCHANNEL_LOGOUT_EVENT, LOGOUT_TOKEN_MAX_AGE};
