-- workflow_define.lua: store a workflow's steps in its batch and queue the steps that have
-- no dependencies for delivery. Runs once, after batch_open.lua created the batch and
-- batch_add.lua registered every step's jid (so no step can complete the batch early).
-- Used by kiqpy/client/workflow.py (Workflow.run).
--
-- KEYS     the batch's keys, Keys.batch_parts(bid) (tagged {b-<bid>}: one cluster slot)
-- ARGV     pairs: step name, step definition (JSON with jid, deps, dependents, class, args,
--          options, ignore_failure, dep_jids)
--
-- Touches: HSET steps, state ("waiting", or "enqueued" for roots), outbox ("step:<name>" for
-- the roots). Returns the number of roots.
local steps, state, outbox = KEYS[7], KEYS[8], KEYS[5]
local roots = 0
for i = 1, #ARGV, 2 do
  redis.call('HSET', steps, ARGV[i], ARGV[i + 1])
  if #cjson.decode(ARGV[i + 1]).deps == 0 then
    redis.call('HSET', state, ARGV[i], 'enqueued')
    redis.call('HSET', outbox, 'step:' .. ARGV[i], ARGV[i + 1])
    roots = roots + 1
  else
    redis.call('HSET', state, ARGV[i], 'waiting')
  end
end
local ttl = tonumber(redis.call('HGET', KEYS[1], 'ttl') or '2592000')
for i = 1, #KEYS do
  redis.call('EXPIRE', KEYS[i], ttl)
end
return roots
