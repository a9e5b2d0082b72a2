-- unlock.lua: release a lock only if we still hold it (it may have expired and been taken).
--
-- KEYS[1]  the lock key
-- ARGV[1]  the token we set it to
--
-- Touches: DEL KEYS[1] when its value is ARGV[1]. Returns 1 if released, else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
