-- batch_open.lua: create a batch if it does not exist yet, and count one open jobs() block.
-- Used by kiqpy/client/batch.py when a `with batch.jobs():` block starts (and by workflows).
--
-- KEYS     the batch's keys, Keys.batch_parts(bid): meta, jids, failed, dead, outbox, claims,
--          steps, state (all tagged {b-<bid>}: one cluster slot)
-- ARGV[1]  1 to create the batch when missing, 0 to require that it exists
-- ARGV[2]  created_at (epoch ms)
-- ARGV[3]  description
-- ARGV[4]  callbacks (JSON: event -> list of [class, options]); "" keeps the stored ones
-- ARGV[5]  parent bid ("" for none)
-- ARGV[6]  ttl (seconds): every key of the batch expires this long after its last change
-- ARGV[7]  1 to count an open block (the batch cannot complete until it closes), else 0
-- ARGV[8]  workflow name ("" for a plain batch)
--
-- Touches: HSET/HINCRBY meta; EXPIRE on every key. Returns 1 if created, 0 if it existed,
-- -1 if it does not exist and ARGV[1] is 0.
local meta = KEYS[1]
local created = 0
if redis.call('EXISTS', meta) == 0 then
  if ARGV[1] ~= '1' then
    return -1
  end
  redis.call('HSET', meta, 'created_at', ARGV[2], 'description', ARGV[3], 'total', 0,
             'open', 0, 'ttl', ARGV[6])
  if ARGV[5] ~= '' then
    redis.call('HSET', meta, 'parent', ARGV[5])
  end
  if ARGV[8] ~= '' then
    redis.call('HSET', meta, 'workflow', ARGV[8])
  end
  created = 1
end
if ARGV[4] ~= '' then
  redis.call('HSET', meta, 'callbacks', ARGV[4])
end
if ARGV[7] == '1' then
  redis.call('HINCRBY', meta, 'open', 1)
end
local ttl = tonumber(redis.call('HGET', meta, 'ttl') or ARGV[6])
for i = 1, #KEYS do
  redis.call('EXPIRE', KEYS[i], ttl)
end
return created
