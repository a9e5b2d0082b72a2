-- limiter_window.lua: count one call against a sliding-window limiter: at most `size` calls
-- in any `window` ms.
--
-- KEYS[1]  the limiter's `window` sorted set (member: a token per call; score: its time, ms)
-- KEYS[2]  the limiter's `meta` hash
-- ARGV[1]  size: the most calls in any window
-- ARGV[2]  the window, ms
-- ARGV[3]  our token (unique per call)
-- ARGV[4]  1 if this is the last try before OverLimit (count it in `over`), else 0
-- ARGV[5]  ms the caller has waited so far (added to `wait_ms` when the call is let in)
-- ARGV[6]  how long `meta` lives after the last use, ms
--
-- Time is Redis's (TIME), so hosts with skewed clocks agree.
-- Touches: ZREMRANGEBYSCORE/ZCARD/ZADD/ZRANGE/PEXPIRE KEYS[1]; HSET/HINCRBY/PEXPIRE KEYS[2].
-- Returns {1 if let in else 0, calls in the window after the call, ms until one leaves it}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local size, window = tonumber(ARGV[1]), tonumber(ARGV[2])
-- The window is (now - window, now]: a call exactly `window` ms old has left it.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local used = redis.call('ZCARD', KEYS[1])
local ok, after = 0, 0
if used < size then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  used = used + 1
  ok = 1
  redis.call('PEXPIRE', KEYS[1], window)
else
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  after = tonumber(first[2]) + window - now
end
redis.call('HSET', KEYS[2], 'kind', 'window', 'size', size, 'interval_ms', window)
if ok == 1 then
  redis.call('HINCRBY', KEYS[2], 'calls', 1)
  redis.call('HINCRBY', KEYS[2], 'wait_ms', tonumber(ARGV[5]))
elseif ARGV[4] == '1' then
  redis.call('HINCRBY', KEYS[2], 'over', 1)
end
redis.call('PEXPIRE', KEYS[2], ARGV[6])
return {ok, used, after}
