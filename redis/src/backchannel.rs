//! Fleet-wide endings: `logout()` and `invalidate()` on one instance act on every
//! instance that [`serve`](RedisFleet::serve)s its client (`ended <record> <instance>` ends the
//! session without revoking again, `invalidated <token>` drops the cached token), and
//! OIDC Back-Channel Logout for the fleet: the core's receiver
//! (`tokenkeeper::oidc::BackChannelLogout`) with the fleet's memory of seen `jti`s
//! (`SET NX EX` in Redis, so a token replayed to another instance is refused too) and
//! a fan-out on the fleet channel: whichever instance receives a valid logout token,
//! every instance ends the matching sessions it holds (`AuthClient::end_sessions`),
//! and each removes their records (the first removal wins; the others find them gone).
//!
//! The message is `logout <b64(iss)>.<b64(sub)>.<b64(sid)>` (an absent claim is
//! empty; validation guarantees the present ones are not), one word after the kind so
//! the bus reads it like every other message. Redis down: the `jti` cannot be
//! remembered, so the request fails closed (400, nothing ended) and the provider's
//! retry, if any, is judged again.
//!
//! Not here: the token checks (the core's `LogoutTokenValidator`).

use crate::bus::{BusMessage, Kind};
use crate::seam::KnownKeys;
use crate::RedisFleet;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokenkeeper::oidc::{BackChannelLogout, EndSessions, LogoutReplayCache, LogoutToken};
use tokenkeeper::{AuthClient, AuthError, StoreError, StoreFuture};
use tokio::sync::broadcast;

/// The clients whose sessions this instance ends when the fleet hears a logout.
#[derive(Default)]
pub(crate) struct LogoutClients(Mutex<Vec<AuthClient>>);

impl LogoutClients {
    fn add(&self, client: &AuthClient) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(client.clone());
    }

    fn all(&self) -> Vec<AuthClient> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn encode(token: &LogoutToken) -> String {
    let part = |value: Option<&str>| URL_SAFE_NO_PAD.encode(value.unwrap_or_default());
    format!(
        "{}.{}.{}",
        part(Some(&token.issuer)),
        part(token.subject.as_deref()),
        part(token.session_id.as_deref())
    )
}

fn decode(word: &str) -> Option<LogoutToken> {
    let mut parts = word.split('.').map(|part| {
        let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        Some((!text.is_empty()).then_some(text))
    });
    let issuer = parts.next()???;
    let subject = parts.next()??;
    let session_id = parts.next()??;
    if parts.next().is_some() || (subject.is_none() && session_id.is_none()) {
        return None;
    }
    // The jti and iat were the receiving instance's to check; ending needs neither.
    Some(LogoutToken::new(issuer, subject, session_id, String::new(), 0))
}

/// Acts on the fleet's endings for each registered client, until the fleet is dropped.
pub(crate) async fn serve(
    mut messages: broadcast::Receiver<BusMessage>,
    clients: Weak<LogoutClients>,
    known: Arc<KnownKeys>,
    instance: u64,
) {
    loop {
        match messages.recv().await {
            Ok(BusMessage::Key {
                kind: kind @ (Kind::Ended | Kind::Invalidated),
                key,
                revision,
            }) => {
                let Some(clients) = clients.upgrade() else { return };
                if kind == Kind::Ended && revision == Some(instance) {
                    // Our own logout: that session has ended; a sign-in since is new.
                    continue;
                }
                // The token key shares the record's hash tag: `…:at` ↔ `…:rec`.
                let record = match key.strip_suffix(":at") {
                    Some(tag) => format!("{tag}:rec"),
                    None => key,
                };
                let Some(store_key) = known.store_key(&record) else {
                    continue;
                };
                for client in clients.all() {
                    if kind == Kind::Ended {
                        client.end_session_stored_at(&store_key).await;
                    } else if let Some(session) = client.session_stored_at(&store_key) {
                        // Its withdrawal finds nothing to withdraw: no second message.
                        session.invalidate();
                    }
                }
            }
            Ok(BusMessage::Key {
                kind: Kind::Logout,
                key,
                ..
            }) => {
                let Some(clients) = clients.upgrade() else { return };
                let Some(token) = decode(&key) else {
                    tracing::warn!("tokenkeeper-redis: a malformed fleet logout message was ignored");
                    continue;
                };
                for client in clients.all() {
                    client.end_sessions(&token).await;
                }
            }
            Ok(_) => {}
            // A lost logout message cannot be re-read: say so loudly.
            Err(broadcast::error::RecvError::Lagged(lost)) => {
                tracing::error!(
                    lost,
                    "tokenkeeper-redis: fleet messages were lost; a back-channel logout may be missed"
                )
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

impl RedisFleet {
    /// A back-channel logout receiver for `client` whose `jti` memory is Redis and
    /// whose valid tokens end the matching sessions on every instance that called
    /// this (or [`serve`](Self::serve)). Mount it on every instance
    /// behind the load balancer; see `tokenkeeper::oidc::BackChannelLogout` for the
    /// route. [`AuthError::InvalidConfig`] without the issuer's `jwks_uri`.
    pub fn backchannel_logout(self: &Arc<Self>, client: &AuthClient) -> Result<BackChannelLogout, AuthError> {
        let receiver = client
            .backchannel_logout()?
            .replay_cache(Arc::clone(self) as Arc<dyn LogoutReplayCache>)
            .end_sessions_with(Arc::clone(self) as Arc<dyn EndSessions>);
        self.serve(client);
        Ok(receiver)
    }

    /// Makes the fleet's endings reach `client`'s sessions on this instance: a
    /// `logout()` on another instance ends the session here too (without a second
    /// revocation), an `invalidate()` or a revocation seen elsewhere drops the cached
    /// token here, and a back-channel logout received anywhere ends the sessions it
    /// names. Call it once per client, on every instance.
    pub fn serve(&self, client: &AuthClient) {
        self.logouts.add(client);
    }

    fn jti_key(&self, issuer: &str, jti: &str) -> String {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        context.update(issuer.as_bytes());
        context.update(&[0]);
        context.update(jti.as_bytes());
        let tag: String = context.finish().as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{}:jti:{tag}", self.link.config().prefix)
    }
}

impl LogoutReplayCache for RedisFleet {
    fn first_sighting<'a>(&'a self, issuer: &'a str, jti: &'a str, keep_for: Duration) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let seconds = keep_for.as_secs().max(1);
            let set: Option<String> = self
                .link
                .query(
                    redis::cmd("SET")
                        .arg(self.jti_key(issuer, jti))
                        .arg(1)
                        .arg("NX")
                        .arg("EX")
                        .arg(seconds),
                )
                .await
                .map_err(|error| StoreError(format!("Redis: {error}")))?;
            Ok(set.is_some())
        })
    }
}

impl EndSessions for RedisFleet {
    fn end_sessions<'a>(&'a self, token: &'a LogoutToken) -> StoreFuture<'a, usize> {
        Box::pin(async move {
            let told: usize = self
                .link
                .query(
                    redis::cmd("PUBLISH")
                        .arg(self.link.bus_channel())
                        .arg(format!("logout {}", encode(token))),
                )
                .await
                .map_err(|error| StoreError(format!("Redis: {error}")))?;
            Ok(told)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_logout_message_round_trips_and_junk_is_refused() {
        let token = LogoutToken::new("https://as", Some("alice".into()), None, "j".into(), 5);
        let back = decode(&encode(&token)).unwrap();
        assert_eq!(
            (back.issuer.as_str(), back.subject.as_deref(), back.session_id),
            ("https://as", Some("alice"), None)
        );
        for junk in ["", "a", "aHR0cHM.", "aHR0cHM..", "aHR0cHM.YQ.YQ.YQ", "!!.YQ.YQ"] {
            assert!(decode(junk).is_none(), "{junk:?}");
        }
    }
}
