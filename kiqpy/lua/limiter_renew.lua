-- limiter_renew.lua: extend the lease of a concurrent limiter's slot we still hold (a
-- long-running job of a class with concurrency_limit; the heartbeat renews it every beat).
--
-- KEYS[1]  the limiter's `slots` sorted set (member: a token; score: lease expiry, epoch ms)
-- ARGV[1]  our token
-- ARGV[2]  the new lease from now, ms
--
-- Time is Redis's (TIME), as in limiter_concurrent.lua.
-- Touches: ZSCORE/ZADD XX/PTTL/PEXPIRE KEYS[1]. Returns 1 if renewed, 0 if the slot was lost
-- (its lease had run out and it may have been taken by another job).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[2])
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], 'XX', now + lease, ARGV[1])
-- The set lives as long as its longest lease.
if redis.call('PTTL', KEYS[1]) < lease then
  redis.call('PEXPIRE', KEYS[1], lease)
end
return 1
