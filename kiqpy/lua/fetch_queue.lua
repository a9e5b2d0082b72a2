-- fetch_queue.lua: fetch.lua for Redis Cluster, one queue per call: ack finished jobs of this
-- queue, then take up to N new ones into this process's in-flight list of it. A job is always
-- either in its queue or in exactly one in-flight list. The two keys share the queue's hash
-- tag (`{<name>}`), so the call runs on the shard holding that queue; the fetcher calls it
-- queue by queue in its order (kiqpy/server/fetch.py) and reads the paused set itself.
--
-- KEYS[1]  the queue list, `queue:{<name>}`
-- KEYS[2]  the in-flight list, `<identity>:inflight:{<name>}`
-- ARGV[1]  N, the most jobs to take (0: only ack)
-- ARGV[2..] payloads to ack (LREM from KEYS[2])
--
-- Touches: LREM each acked payload from the in-flight list (from the tail, where the oldest
-- jobs are); RPOP up to N from the queue (its oldest jobs) and LPUSH them onto the in-flight
-- list. Returns the jobs taken, oldest first.
for i = 2, #ARGV do
  redis.call('LREM', KEYS[2], -1, ARGV[i])
end
local want = tonumber(ARGV[1])
if want <= 0 then
  return {}
end
local jobs = redis.call('RPOP', KEYS[1], want)
if not jobs then
  return {}
end
redis.call('LPUSH', KEYS[2], unpack(jobs))
return jobs
