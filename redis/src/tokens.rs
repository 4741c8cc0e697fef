//! Shared access tokens in Redis: the core's [`SharedTokens`] on [`RedisFleet`].
//!
//! One hash per identity, `<prefix>:{<digest>}:at` (the record's hash slot):
//! `exp` (Unix ms, in clear so the publish script can keep the later token), `fp` (a
//! SHA-256 fingerprint of Redis key and token, so a withdrawal removes only the token
//! that failed) and `val` (the sealed token and scope). The key expires with the token.

use crate::link::RedisError;
use crate::scripts::{PUBLISH_TOKEN, WITHDRAW_TOKEN};
use crate::store::FleetStoreError;
use crate::RedisFleet;
use secrecy::{ExposeSecret, SecretString};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokenkeeper::{SharedToken, SharedTokens, StoreError, StoreFuture};
use zeroize::Zeroizing;

fn fingerprint(redis_key: &str, token: &str) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(redis_key.as_bytes());
    context.update(&[0]);
    context.update(token.as_bytes());
    context.finish().as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn unix_ms(at: SystemTime) -> u64 {
    u64::try_from(at.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()).unwrap_or(u64::MAX)
}

fn error(error: impl Into<FleetStoreError>) -> StoreError {
    StoreError(format!("Redis: {}", error.into()))
}

impl RedisFleet {
    /// Remembered (`KnownKeys`) so the fleet's "invalidated" message for it can be
    /// mapped back to the session.
    fn token_key(&self, store_key: &str) -> String {
        self.keys_for(store_key).token
    }
}

impl SharedTokens for RedisFleet {
    fn read<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<SharedToken>> {
        Box::pin(async move {
            let redis_key = self.token_key(key);
            let (exp, sealed): (Option<u64>, Option<String>) = self
                .link
                .query(redis::cmd("HMGET").arg(&redis_key).arg("exp").arg("val"))
                .await
                .map_err(error)?;
            let (Some(exp), Some(sealed)) = (exp, sealed) else {
                return Ok(None);
            };
            let expires_at = UNIX_EPOCH
                .checked_add(Duration::from_millis(exp))
                .ok_or_else(|| error(RedisError::Protocol("an expiry out of range")))?;
            // Redis drops the key when the token expires (real time); the session
            // judges freshness by its own clock.
            let plain = self.records.sealer.open(&redis_key, &sealed).map_err(error)?;
            // `scope\ntoken`: a scope has no newline, a token (VSCHAR) neither.
            let text = std::str::from_utf8(&plain).map_err(|_| error(RedisError::Protocol("not text")))?;
            let (scope, token) = text
                .split_once('\n')
                .ok_or_else(|| error(RedisError::Protocol("a shared token without its scope line")))?;
            Ok(Some(SharedToken {
                access_token: SecretString::from(token),
                expires_at,
                scope: (!scope.is_empty()).then(|| scope.to_owned()),
            }))
        })
    }

    fn publish<'a>(&'a self, key: &'a str, token: &'a SharedToken) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let redis_key = self.token_key(key);
            let secret = token.access_token.expose_secret();
            let plain = Zeroizing::new(format!("{}\n{secret}", token.scope.as_deref().unwrap_or("")));
            let sealed = self.records.sealer.seal(&redis_key, plain.as_bytes()).map_err(error)?;
            let mut invocation = PUBLISH_TOKEN.key(&redis_key);
            invocation
                .arg(unix_ms(token.expires_at))
                .arg(fingerprint(&redis_key, secret))
                .arg(sealed)
                .arg(self.link.bus_channel());
            self.link.script::<u8>(invocation).await.map_err(error)?;
            Ok(())
        })
    }

    fn announce_logout<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let record = self.keys_for(key).record;
            // The sender's id where other messages have a revision: it skips its echo.
            let message = format!("ended {record} {}", self.instance);
            self.link
                .query::<i64>(redis::cmd("PUBLISH").arg(self.link.bus_channel()).arg(message))
                .await
                .map_err(error)?;
            Ok(())
        })
    }

    fn withdraw<'a>(&'a self, key: &'a str, token: &'a SecretString) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let redis_key = self.token_key(key);
            let mut invocation = WITHDRAW_TOKEN.key(&redis_key);
            invocation
                .arg(fingerprint(&redis_key, token.expose_secret()))
                .arg(self.link.bus_channel());
            self.link.script::<u8>(invocation).await.map_err(error)?;
            Ok(())
        })
    }
}
