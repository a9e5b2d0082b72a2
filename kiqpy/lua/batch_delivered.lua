-- batch_delivered.lua: forget an outbox entry once it has been delivered (its callback jobs
-- pushed, its report to the parent batch made, its workflow step pushed).
-- Used by kiqpy/client/batch.py after each delivery.
--
-- KEYS[1]  the batch's `outbox` hash, KEYS[2] its `claims` hash (tagged {b-<bid>})
-- ARGV[1]  the entry's field
--
-- Touches: HDEL outbox, claims. Returns how many entries are left in the outbox.
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return redis.call('HLEN', KEYS[1])
