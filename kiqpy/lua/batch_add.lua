-- batch_add.lua: register items (job ids, or "b:<child bid>" for a nested batch) as pending
-- in a batch, before they are pushed: a job is counted before it can run, so the batch can
-- never complete while a pushed job has not reported.
-- Used by kiqpy/client/batch.py (once per pushed slice of up to 1,000 jobs) and when a child
-- batch is created inside a job of its parent.
--
-- KEYS[1]  the batch's meta hash, KEYS[2] its `jids` set (both tagged {b-<bid>})
-- ARGV     the items; an ARGV[1] of "-" removes ARGV[2..] instead (a push that failed)
--
-- Touches: SADD/SREM jids; HINCRBY meta total. Returns the new total, or -1 if the batch does
-- not exist (expired or never created).
if redis.call('EXISTS', KEYS[1]) == 0 then
  return -1
end
if ARGV[1] == '-' then
  local removed = 0
  for i = 2, #ARGV do
    removed = removed + redis.call('SREM', KEYS[2], ARGV[i])
  end
  return redis.call('HINCRBY', KEYS[1], 'total', -removed)
end
local added = 0
for i = 1, #ARGV, 1000 do
  added = added + redis.call('SADD', KEYS[2], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
local ttl = tonumber(redis.call('HGET', KEYS[1], 'ttl') or '2592000')
redis.call('EXPIRE', KEYS[2], ttl)
return redis.call('HINCRBY', KEYS[1], 'total', added)
