-- limiter_leaky.lua: count one call against a leaky-bucket limiter that drips evenly:
-- `size` calls per interval, one every interval/size ms, no bursts. The state is the
-- earliest time the next call may pass (a GCRA "theoretical arrival time").
--
-- KEYS[1]  the limiter's `leaky` string: the next free time, epoch ms (decimal)
-- KEYS[2]  the limiter's `meta` hash
-- ARGV[1]  size: calls per interval
-- ARGV[2]  the interval, ms
-- ARGV[3]  1 if this is the last try before OverLimit (count it in `over`), else 0
-- ARGV[4]  ms the caller has waited so far (added to `wait_ms` when the call is let in)
-- ARGV[5]  how long `meta` lives after the last use, ms
--
-- Time is Redis's (TIME), so hosts with skewed clocks agree.
-- Touches: GET/SET KEYS[1]; HSET/HINCRBY/PEXPIRE KEYS[2].
-- Returns {1 if let in else 0, 1 (the drip is busy after the call), ms until the next drop}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local size, interval = tonumber(ARGV[1]), tonumber(ARGV[2])
local spacing = interval / size
local free = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local ok, after = 0, 0
if free <= now then
  free = now + spacing
  ok = 1
  -- After `spacing` ms the key says nothing a missing key would not: it expires then.
  redis.call('SET', KEYS[1], string.format('%.3f', free), 'PX', math.ceil(spacing) + 1)
else
  after = math.ceil(free - now)
end
redis.call('HSET', KEYS[2], 'kind', 'leaky', 'size', size, 'interval_ms', interval)
if ok == 1 then
  redis.call('HINCRBY', KEYS[2], 'calls', 1)
  redis.call('HINCRBY', KEYS[2], 'wait_ms', tonumber(ARGV[4]))
elseif ARGV[3] == '1' then
  redis.call('HINCRBY', KEYS[2], 'over', 1)
end
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return {ok, 1, after}
