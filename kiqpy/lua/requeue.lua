-- requeue.lua: push every job of in-flight lists back to the front of their queues, oldest
-- job frontmost, so the next worker takes them first (used at shutdown).
--
-- KEYS[2i-1]  an in-flight list, `<identity>:inflight:<name>` (newest job on the left)
-- KEYS[2i]    its queue list, `queue:<name>` (taken from the right)
--
-- Touches: LMOVE in-flight LEFT -> queue RIGHT until each in-flight list is empty.
-- Moving the newest first leaves the oldest rightmost, i.e. at the front. Returns the count.
local moved = 0
for i = 1, #KEYS, 2 do
  while redis.call('LMOVE', KEYS[i], KEYS[i + 1], 'LEFT', 'RIGHT') do
    moved = moved + 1
  end
end
return moved
