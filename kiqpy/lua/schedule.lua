-- schedule.lua: move due jobs from a sorted set (`schedule` or `retry`) to their queues.
-- Atomic, so each member is moved exactly once however many processes poll at the same time.
--
-- KEYS[1]  the sorted set; score = epoch seconds when the job is due
-- KEYS[2]  the `queues` set
-- ARGV[1]  now (epoch seconds)
-- ARGV[2]  the queue key prefix (`<namespace>:queue:` or `queue:`)
-- ARGV[3]  the most members to look at in one call
--
-- Touches: ZREM from the set; SADD queues; LPUSH `<prefix><job.queue>`.
-- Returns {moved, looked, bad}: `bad` lists members that do not decode to a job with a queue
-- here; they stay in the set for the caller, who decodes them in Python and moves each with
-- reroute.lua (to its queue after all, or to the dead set with the reason).
local function decode(payload)
  local first = string.byte(payload, 1)
  -- '{' or JSON whitespace starts a JSON job; anything else is msgpack.
  if first == 123 or first == 32 or first == 9 or first == 10 or first == 13 then
    return cjson.decode(payload)
  end
  return cmsgpack.unpack(payload)
end

local due = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, ARGV[3])
local moved, bad = 0, {}
for _, payload in ipairs(due) do
  local ok, job = pcall(decode, payload)
  local queue = ok and type(job) == 'table' and job['queue']
  if type(queue) == 'string' and queue ~= '' then
    redis.call('ZREM', KEYS[1], payload)
    redis.call('SADD', KEYS[2], queue)
    redis.call('LPUSH', ARGV[2] .. queue, payload)
    moved = moved + 1
  else
    bad[#bad + 1] = payload
  end
end
return {moved, #due, bad}
