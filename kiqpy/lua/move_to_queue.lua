-- move_to_queue.lua: take one member out of a sorted set (`schedule`, `retry` or `dead`) and
-- push a job onto its queue now (the data API's "Add to queue" and "Retry now"). Conditional on
-- the ZREM, so when two dashboards or scripts move the same member, only one of them pushes it.
--
-- KEYS[1]  the sorted set
-- KEYS[2]  the queue list, `queue:<name>`
-- KEYS[3]  the `queues` set
-- ARGV[1]  the member, exactly as stored
-- ARGV[2]  the queue name
-- ARGV[3]  the payload to push (the member rewritten by the caller: enqueued_at, retry_count)
--
-- Touches: ZREM KEYS[1]; then SADD queues and LPUSH the queue. Returns 1 if this call moved the
-- member, 0 if it was no longer in the set.
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('LPUSH', KEYS[2], ARGV[3])
return 1
