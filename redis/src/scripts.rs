//! The Lua scripts: each check-and-change runs atomically on the Redis node that
//! holds the identity's keys, and announces itself on the fleet channel in the same
//! step (so a waiter that subscribed before reading cannot miss it).
//!
//! Records are hashes `{rev, val}`; `rev` only grows while the key exists. A removal
//! leaves a tombstone (`val` empty, `rev` bumped) for a while, so a writer that read
//! before the removal is still fenced by the revision after it.

use redis::Script;
use std::sync::LazyLock;

/// KEYS[1] record; ARGV: expected revision, sealed value, TTL ms, channel.
/// Returns `{1, new revision}` or `{0, current revision}`.
pub(crate) static COMPARE_AND_SET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = tonumber(redis.call('HGET', KEYS[1], 'rev') or '0')
if cur ~= tonumber(ARGV[1]) then return {0, cur} end
local new = cur + 1
redis.call('HSET', KEYS[1], 'rev', new, 'val', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', ARGV[4], 'changed ' .. KEYS[1] .. ' ' .. new)
return {1, new}
",
    )
});

/// KEYS[1] record; ARGV: expected revision (`*`: any), tombstone TTL ms, channel.
/// Returns `{1, tombstone revision}` or `{0, current revision}`.
pub(crate) static COMPARE_AND_DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = tonumber(redis.call('HGET', KEYS[1], 'rev') or '0')
if ARGV[1] ~= '*' and cur ~= tonumber(ARGV[1]) then return {0, cur} end
local new = cur + 1
redis.call('HSET', KEYS[1], 'rev', new, 'val', '')
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PUBLISH', ARGV[3], 'removed ' .. KEYS[1] .. ' ' .. new)
return {1, new}
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
