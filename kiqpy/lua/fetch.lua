-- fetch.lua: ack finished jobs, then take up to N new ones from queues, in the given order,
-- into this process's in-flight lists (reliable fetch). A job is always either in its queue or
-- in exactly one in-flight list. Acking and taking share one call because a busy worker does
-- both all the time: one round trip instead of two, and no per-ack command to encode.
-- Paused queues are skipped, and the call returns the paused set, so a worker learns of a
-- pause or an unpause on a call it makes anyway (no extra polling while idle).
--
-- KEYS[1..n]       queue lists, `queue:<name>`, in the order to try them
-- KEYS[n+1..2n]    the matching in-flight lists, `<identity>:inflight:<name>`
-- KEYS[2n+1]       the paused-queues set, `kiqpy:paused-queues`
-- KEYS[2n+2..]     in-flight lists named only by acks (queues no longer fetched from)
-- ARGV[1]          n, the number of queues to fetch from
-- ARGV[2]          N, the most jobs to take (0: only ack)
-- ARGV[3..n+2]     the queues' names, in the order of KEYS[1..n]
-- ARGV[n+3..]      acks as pairs: the index in KEYS of an in-flight list, then a payload
--
-- Touches: LREM each acked payload from its in-flight list (from the tail, where the oldest
-- jobs are); SMEMBERS the paused set; RPOP from each queue not paused (its oldest jobs) and
-- LPUSH onto its in-flight list.
-- Returns {jobs, paused}: jobs a flat list {index, payload, index, payload, ...} (index is the
-- 1-based queue position), paused the names in the paused set (all of them, not only ours).
local n = tonumber(ARGV[1])
local want = tonumber(ARGV[2])
for i = n + 3, #ARGV, 2 do
  redis.call('LREM', KEYS[tonumber(ARGV[i])], -1, ARGV[i + 1])
end
local paused = redis.call('SMEMBERS', KEYS[2 * n + 1])
local skip = {}
for _, name in ipairs(paused) do
  skip[name] = true
end
local result = {}
for i = 1, n do
  if want <= 0 then break end
  if not skip[ARGV[i + 2]] then
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
end
return {result, paused}
