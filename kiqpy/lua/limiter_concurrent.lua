-- limiter_concurrent.lua: take one slot of a concurrent limiter, if one is free.
-- A slot is a member of a sorted set scored by its lease's expiry, so a holder that died
-- (kill -9) loses its slot once its lease (lock_timeout) has passed.
--
-- KEYS[1]  the limiter's `slots` sorted set (member: a token; score: lease expiry, epoch ms)
-- KEYS[2]  the limiter's `meta` hash
-- ARGV[1]  size: the most slots held at once
-- ARGV[2]  lock_timeout, ms: the lease of a slot taken now
-- ARGV[3]  our token (unique per acquisition)
-- ARGV[4]  1 if this is the last try before OverLimit (count it in `over`), else 0
-- ARGV[5]  ms the caller has waited so far (added to `wait_ms` when the slot is taken)
-- ARGV[6]  how long `meta` lives after the last use, ms
--
-- Time is Redis's (TIME), so hosts with skewed clocks agree.
-- Touches: ZREMRANGEBYSCORE/ZCARD/ZADD/PEXPIRE KEYS[1]; HSET/HINCRBY/PEXPIRE KEYS[2].
-- Returns {1 if taken else 0, slots in use after the call, ms until the next lease expires}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local size, lease = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local used = redis.call('ZCARD', KEYS[1])
local ok, after = 0, 0
if used < size then
  redis.call('ZADD', KEYS[1], now + lease, ARGV[3])
  used = used + 1
  ok = 1
  -- Every lease ends within `lease` ms, so the set is unused (and gone) after that.
  redis.call('PEXPIRE', KEYS[1], lease)
else
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  after = tonumber(first[2]) - now
end
redis.call('HSET', KEYS[2], 'kind', 'concurrent', 'size', size, 'lock_timeout', lease)
if ok == 1 then
  redis.call('HINCRBY', KEYS[2], 'calls', 1)
  redis.call('HINCRBY', KEYS[2], 'wait_ms', tonumber(ARGV[5]))
elseif ARGV[4] == '1' then
  redis.call('HINCRBY', KEYS[2], 'over', 1)
end
redis.call('PEXPIRE', KEYS[2], ARGV[6])
return {ok, used, after}
