-- claim.lua: Redis Cluster only. Move members of a sorted set (`schedule`, `retry`, `dead`, or
-- the outbox itself) into the outbox, from where the caller pushes each to its queue (in
-- another slot) and then removes it from the outbox (kiqpy/outbox.py). Every key here is in
-- the `{kiqpy}` slot, so the move is atomic: when many schedulers or dashboards claim the same
-- member, only one of them gets it.
--
-- KEYS[1]  the sorted set to take from
-- KEYS[2]  the outbox sorted set (score: when the member was claimed, epoch seconds)
-- ARGV[1]  "due": members scored at or before ARGV[2], at most ARGV[3] of them;
--          "member": exactly the member ARGV[2], if it is there
-- ARGV[2]  the highest score to take ("due") or the member ("member")
-- ARGV[3]  the most members to take ("due")
-- ARGV[4]  now, epoch seconds: the members' score in the outbox
-- ARGV[5]  "member" only, optional: what goes into the outbox in its place (the member
--          rewritten by the caller, e.g. a retry's refunded retry_count)
--
-- Touches: ZRANGE/ZREM KEYS[1], ZADD KEYS[2]. KEYS[1] may be KEYS[2] (taking over what a dead
-- mover left: the claim time is renewed). Returns the outbox entries made.
local members
if ARGV[1] == 'member' then
  if redis.call('ZSCORE', KEYS[1], ARGV[2]) then
    members = {ARGV[2]}
  else
    members = {}
  end
else
  members = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[2], 'BYSCORE', 'LIMIT', 0, ARGV[3])
end
local claimed = {}
for _, member in ipairs(members) do
  redis.call('ZREM', KEYS[1], member)
  local entry = member
  if ARGV[1] == 'member' and ARGV[5] then
    entry = ARGV[5]
  end
  redis.call('ZADD', KEYS[2], ARGV[4], entry)
  claimed[#claimed + 1] = entry
end
return claimed
