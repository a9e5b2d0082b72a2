-- renew.lua: extend a lease only if we still hold it (it may have expired and been taken).
-- Used for the periodic ticker's leadership.
--
-- KEYS[1]  the lease key
-- ARGV[1]  our token (the holder's identity)
-- ARGV[2]  the new time to live, milliseconds
--
-- Touches: PEXPIRE KEYS[1] when its value is ARGV[1]. Returns 1 if renewed, else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
