-- reroute.lua: move one member that schedule.lua could not route out of its sorted set, to the
-- place the caller chose after decoding it in Python: its queue (the decoders disagree on a few
-- rare types, such as msgpack bin) or the dead set (it is not a job). Conditional on the ZREM,
-- so when many pollers see the same member only one of them writes it elsewhere.
--
-- KEYS[1]  the sorted set (`schedule` or `retry`)
-- KEYS[2]  the destination: a queue list `queue:<name>`, or the `dead` sorted set
-- KEYS[3]  the `queues` set
-- ARGV[1]  the member
-- ARGV[2]  "queue" or "dead"
-- ARGV[3]  for "queue": the queue name; for "dead": the dead-set entry to add
-- ARGV[4]  for "queue": the payload to push (the member with a fresh enqueued_at, written by
--          the caller); for "dead": its score (epoch seconds)
--
-- Touches: ZREM KEYS[1]; then SADD queues + LPUSH queue, or ZADD dead. Returns 1 if this call
-- moved the member, 0 if it was already gone. The caller trims the dead set afterwards.
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then
  return 0
end
if ARGV[2] == 'queue' then
  redis.call('SADD', KEYS[3], ARGV[3])
  redis.call('LPUSH', KEYS[2], ARGV[4])
else
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
end
return 1
