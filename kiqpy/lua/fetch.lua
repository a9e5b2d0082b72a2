-- fetch.lua: take up to N jobs from queues, in the given order, into this process's in-flight
-- lists (reliable fetch). A job is always either in its queue or in exactly one in-flight list.
--
-- KEYS[1..n]     queue lists, `queue:<name>`, in the order to try them
-- KEYS[n+1..2n]  the matching in-flight lists, `<identity>:inflight:<name>`
-- ARGV[1]        N, the most jobs to take
--
-- Touches: RPOP from each queue (its oldest jobs), LPUSH onto the matching in-flight list.
-- Returns a flat list {index, payload, index, payload, ...}; index is the 1-based queue position.
local n = #KEYS / 2
local want = tonumber(ARGV[1])
local result = {}
for i = 1, n do
  if want <= 0 then break end
  local jobs = redis.call('RPOP', KEYS[i], want)
  if jobs then
    redis.call('LPUSH', KEYS[n + i], unpack(jobs))
    for _, job in ipairs(jobs) do
      result[#result + 1] = i
      result[#result + 1] = job
    end
    want = want - #jobs
  end
end
return result
