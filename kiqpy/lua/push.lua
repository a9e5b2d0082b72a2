-- push.lua: enqueue jobs on one queue and record the queue's name.
--
-- KEYS[1]  the `queues` set
-- KEYS[2]  the queue list, `queue:<name>`
-- ARGV[1]  the queue name
-- ARGV[2..] encoded job payloads, pushed in order (LPUSH: the worker takes from the right)
--
-- Touches: SADD queues; LPUSH queue:<name>. Returns the queue's new length.
redis.call('SADD', KEYS[1], ARGV[1])
return redis.call('LPUSH', KEYS[2], unpack(ARGV, 2))
