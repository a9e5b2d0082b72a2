-- unlock.lua: release a lock only if we still hold it (it may have expired and been taken).
-- Used for the orphan-recovery lock and for unique-job locks (kiqpy_middleware.unique).
--
-- KEYS[1]  the lock key
-- ARGV[1]  the token we set it to
--
-- Touches: DEL KEYS[1] when its value is ARGV[1]. Returns 1 if released, else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
