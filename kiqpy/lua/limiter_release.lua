-- limiter_release.lua: give back the slot of a concurrent limiter taken with our token.
--
-- KEYS[1]  the limiter's `slots` sorted set
-- ARGV[1]  our token
--
-- Touches: ZREM KEYS[1]. Returns 1 if we still held the slot, 0 if its lease had expired.
return redis.call('ZREM', KEYS[1], ARGV[1])
