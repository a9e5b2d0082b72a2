-- move_to_dead.lua: take one member out of a sorted set (`schedule` or `retry`) and add an entry
-- for it to the dead set, trimmed as every addition to the dead set is (the data API's "Kill").
-- Conditional on the ZREM, so a member that another process just moved is not duplicated.
--
-- KEYS[1]  the sorted set the member is in
-- KEYS[2]  the `dead` sorted set
-- ARGV[1]  the member, exactly as stored
-- ARGV[2]  the dead-set entry (the member itself, or a malformed-payload record standing for it)
-- ARGV[3]  now, epoch seconds: the entry's score
-- ARGV[4]  entries scored at or before this go (now - dead_timeout)
-- ARGV[5]  the most entries kept (dead_max_jobs)
--
-- Touches: ZREM KEYS[1]; ZADD, ZREMRANGEBYSCORE and ZREMRANGEBYRANK on `dead`. Returns 1 if this
-- call moved the member, 0 if it was no longer in the set.
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[4])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[5]) + 1))
return 1
