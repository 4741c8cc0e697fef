//! The Lua scripts: each check-and-change runs atomically on the Redis node that
//! holds the identity's keys, and announces itself on the fleet channel in the same
//! step (so a waiter that subscribed before reading cannot miss it).
//!
//! Records are hashes `{rev, val}`. `rev` only grows while the key exists; a create
//! (expected revision empty) succeeds only on an absent key and starts at 1, as the
//! core's `RecordStore` contract says. A conflict returns what the key holds, so the
//! caller decides without a second round trip.

use redis::Script;
use std::sync::LazyLock;

/// KEYS[1] record; ARGV: expected revision (empty: absent), sealed value, expiry as
/// Unix ms (empty: none), channel. Returns `{1, new revision}`, or `{0}` (absent) /
/// `{0, revision, sealed value}` when the key holds something else.
pub(crate) static COMPARE_AND_SET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = redis.call('HGET', KEYS[1], 'rev')
if ARGV[1] == '' then
  if cur then return {0, tonumber(cur), redis.call('HGET', KEYS[1], 'val')} end
elseif (not cur) then return {0}
elseif tonumber(cur) ~= tonumber(ARGV[1]) then
  return {0, tonumber(cur), redis.call('HGET', KEYS[1], 'val')}
end
local new = (tonumber(cur) or 0) + 1
redis.call('HSET', KEYS[1], 'rev', new, 'val', ARGV[2])
if ARGV[3] ~= '' then redis.call('PEXPIREAT', KEYS[1], ARGV[3]) else redis.call('PERSIST', KEYS[1]) end
redis.call('PUBLISH', ARGV[4], 'changed ' .. KEYS[1] .. ' ' .. new)
return {1, new}
",
    )
});

/// KEYS[1] record; ARGV: expected revision, channel. Returns `{1}` (deleted), `{0}`
/// (absent) or `{0, revision, sealed value}` (another revision).
pub(crate) static COMPARE_AND_DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = redis.call('HGET', KEYS[1], 'rev')
if not cur then return {0} end
if tonumber(cur) ~= tonumber(ARGV[1]) then
  return {0, tonumber(cur), redis.call('HGET', KEYS[1], 'val')}
end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], 'removed ' .. KEYS[1] .. ' ' .. cur)
return {1}
",
    )
});

/// KEYS[1] lease; ARGV: owner, TTL ms. 1 if still ours (and extended), else 0.
pub(crate) static RENEW_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
",
    )
});

/// KEYS[1] lease; ARGV: owner, channel. 1 if it was ours (deleted, announced), else 0.
pub(crate) static RELEASE_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], 'released ' .. KEYS[1])
  return 1
end
return 0
",
    )
});

/// KEYS[1] shared access token; ARGV: expiry (Unix ms), fingerprint, sealed value,
/// channel. Keeps the later of two tokens: 1 if stored (and announced), 0 if the one
/// there expires no earlier.
pub(crate) static PUBLISH_TOKEN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = tonumber(redis.call('HGET', KEYS[1], 'exp') or '0')
if cur >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'exp', ARGV[1], 'fp', ARGV[2], 'val', ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[4], 'changed ' .. KEYS[1])
return 1
",
    )
});

/// KEYS[1] shared access token; ARGV: fingerprint, channel. Deletes it (and announces
/// it) only if it is still the token with that fingerprint.
pub(crate) static WITHDRAW_TOKEN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HGET', KEYS[1], 'fp') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], 'invalidated ' .. KEYS[1])
  return 1
end
return 0
",
    )
});
