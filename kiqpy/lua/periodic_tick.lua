-- periodic_tick.lua: enqueue one tick of a periodic entry, at most once however many processes
-- (or leaders, during a partition) try: the entry's `last` tick only ever grows, and a tick at
-- or before it is a no-op. Also how a tick is skipped (catch-up rules) or consumed while paused.
--
-- KEYS[1]  the entry's state hash, `kiqpy:periodic:<name>`
-- KEYS[2]  the `queues` set
-- KEYS[3]  the queue list, `queue:<name>`; on Redis Cluster (ARGV[6] given) the outbox
--          sorted set instead, in this slot, from which kiqpy/outbox.py pushes the job to its
--          queue in another slot
-- ARGV[1]  the tick, whole epoch seconds
-- ARGV[2]  "enqueue", or "skip" (only move `last` past the tick)
-- ARGV[3]  the queue name
-- ARGV[4]  the job payload to push
-- ARGV[5]  the job's jid
-- ARGV[6]  Cluster only: now, epoch seconds, the payload's score in the outbox
--
-- Touches: HGET/HSET the state hash; for an enqueue, SADD queues and LPUSH the queue (ZADD
-- the outbox on Cluster).
-- Returns 1 enqueued, 0 already done (a tick at or before `last`), 2 skipped, 3 paused.
local last = tonumber(redis.call('HGET', KEYS[1], 'last') or '-1')
local tick = tonumber(ARGV[1])
if last >= tick then
  return 0
end
redis.call('HSET', KEYS[1], 'last', ARGV[1])
if ARGV[2] == 'skip' then
  return 2
end
if redis.call('HEXISTS', KEYS[1], 'paused') == 1 then
  return 3
end
redis.call('HSET', KEYS[1], 'jid', ARGV[5])
redis.call('SADD', KEYS[2], ARGV[3])
if ARGV[6] then
  redis.call('ZADD', KEYS[3], ARGV[6], ARGV[4])
else
  redis.call('LPUSH', KEYS[3], ARGV[4])
end
return 1
