-- limiter_bucket.lua: count one call against a bucket limiter: at most `size` calls per
-- calendar interval (second, minute, hour or UTC day), the count starting again at zero when
-- a new interval begins.
--
-- KEYS[1]  the limiter's `bucket` hash: `start` (the interval's index since the epoch), `n`
-- KEYS[2]  the limiter's `meta` hash
-- ARGV[1]  size: the most calls per interval
-- ARGV[2]  the interval, ms
-- ARGV[3]  1 if this is the last try before OverLimit (count it in `over`), else 0
-- ARGV[4]  ms the caller has waited so far (added to `wait_ms` when the call is let in)
-- ARGV[5]  how long `meta` lives after the last use, ms
--
-- Time is Redis's (TIME), so hosts with skewed clocks agree on the interval.
-- Touches: HMGET/HSET/PEXPIREAT KEYS[1]; HSET/HINCRBY/PEXPIRE KEYS[2].
-- Returns {1 if let in else 0, calls in this interval after the call, ms until it ends}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local size, interval = tonumber(ARGV[1]), tonumber(ARGV[2])
local index = math.floor(now / interval)
local state = redis.call('HMGET', KEYS[1], 'start', 'n')
local used = 0
if tonumber(state[1]) == index then
  used = tonumber(state[2]) or 0
end
local ok = 0
if used < size then
  used = used + 1
  ok = 1
  redis.call('HSET', KEYS[1], 'start', string.format('%.0f', index), 'n', used)
  -- Useless once the interval is over: it goes away then (plus a second for clock steps).
  redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', (index + 1) * interval + 1000))
end
redis.call('HSET', KEYS[2], 'kind', 'bucket', 'size', size, 'interval_ms', interval)
if ok == 1 then
  redis.call('HINCRBY', KEYS[2], 'calls', 1)
  redis.call('HINCRBY', KEYS[2], 'wait_ms', tonumber(ARGV[4]))
elseif ARGV[3] == '1' then
  redis.call('HINCRBY', KEYS[2], 'over', 1)
end
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return {ok, used, (index + 1) * interval - now}
