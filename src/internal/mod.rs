//! The internal core: protocol, transport, token cache, single-flight, recovery.
//! Nothing here is public API; `src/*.rs` is the thin public surface over it.

pub(crate) mod context;
pub(crate) mod dpop;
pub(crate) mod flight;
pub(crate) mod grants;
pub(crate) mod id_token;
pub(crate) mod jose;
pub(crate) mod offline_logout;
pub(crate) mod outbox;
pub(crate) mod persistence;
pub(crate) mod protocol;
pub(crate) mod random;
pub(crate) mod recovery;
pub(crate) mod rotation;
pub(crate) mod secrets;
pub(crate) mod session_core;
pub(crate) mod shared;
pub(crate) mod token_set;
pub(crate) mod transport;
pub(crate) mod www_authenticate;
