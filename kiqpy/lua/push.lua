-- push.lua: enqueue jobs on one queue and record the queue's name.
--
-- KEYS[1]  the `queues` set
-- KEYS[2]  the queue list, `queue:<name>`
--          On Redis Cluster the `queues` set is in another slot: KEYS is then only the queue
--          list, `queue:{<name>}`, and the caller SADDs the name itself.
-- ARGV[1]  the queue name
-- ARGV[2..] encoded job payloads, pushed in order (LPUSH: the worker takes from the right)
--
-- Touches: SADD queues (with two keys); LPUSH the queue. Returns the queue's new length.
local queue = KEYS[1]
if #KEYS == 2 then
  redis.call('SADD', KEYS[1], ARGV[1])
  queue = KEYS[2]
end
-- unpack() is bounded by Lua's C stack (about 8,000 values), so a big bulk batch is pushed in
-- slices; order is kept because each slice is LPUSHed after the one before it.
local length = redis.call('LLEN', queue)
for first = 2, #ARGV, 1000 do
  length = redis.call('LPUSH', queue, unpack(ARGV, first, math.min(first + 999, #ARGV)))
end
return length
