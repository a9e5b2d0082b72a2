-- batch_report.lua: record what happened to one item of a batch, decide whether the batch's
-- callbacks fire, and hand out the outbox entries that are due for delivery.
-- Used by kiqpy/server/batches.py (a job's success, failure, death), kiqpy/client/batch.py
-- (a jobs() block closing; a child batch reporting to its parent) and the scheduler's sweep.
--
-- KEYS     the batch's keys, Keys.batch_parts(bid): meta, jids, failed, dead, outbox, claims,
--          steps, state (all tagged {b-<bid>}: one cluster slot)
-- ARGV[1]  what happened: "success", "failure", "death", "close" (a jobs() block ended) or
--          "sweep" (nothing; only hand out due outbox entries)
-- ARGV[2]  failure info (JSON: class, error_class, error_message) for failure and death
-- ARGV[3]  claim lease (ms): an entry handed out is not handed out again before it ends
-- ARGV[4..] pairs: the item (a jid, or "b:<bid>" for a child batch) and the workflow step it
--          runs ("" for none); none for close and sweep. The worker sends the successes of
--          several jobs of one batch in one call.
--
-- Rules (Sidekiq Pro's): `complete` fires once, when no jobs() block is open and every
-- pending item has failed at least once (pending == failures); `success` once, when nothing is
-- pending; `death` once, on the first item to die. Each firing sets its flag in the meta hash
-- and adds an outbox entry in the same step, so it happens exactly once however many workers
-- report at the same moment; delivering the entry (pushing the callback jobs) is a separate
-- step that is repeated until batch_delivered.lua removes the entry (at least once).
-- A workflow step that succeeds or dies settles its dependents: ready ones go to the outbox
-- (to be pushed), ones that can no longer run become "cancelled" (counted as failed).
--
-- Touches: the batch's keys only. Returns {status (1, or -1: no such batch), total, pending,
-- failures, description, callbacks JSON, parent bid, outbox size, field, value, ...} where the
-- field/value pairs are the entries this caller now holds a claim on and must deliver.
local meta, jids, failed, dead = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local outbox, claims, steps, state = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
if redis.call('EXISTS', meta) == 0 then
  return {-1}
end
local kind, info = ARGV[1], ARGV[2]
local lease = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local parent = redis.call('HGET', meta, 'parent')

local function def_of(name)
  return cjson.decode(redis.call('HGET', steps, name))
end

local function state_of(name)
  return redis.call('HGET', state, name)
end

-- What a waiting step becomes once its dependencies move: "run" when each one succeeded (or,
-- with ignore_failure, ended in any way), "cancel" as soon as one died or was cancelled
-- (without ignore_failure), nil while it must wait.
local function verdict(d)
  local bad, open = false, false
  for _, dep in ipairs(d.deps) do
    local s = state_of(dep)
    if s == 'dead' or s == 'cancelled' then
      bad = true
    elseif s ~= 'succeeded' then
      open = true
    end
  end
  if bad and not d.ignore_failure then
    return 'cancel'
  end
  if open then
    return nil
  end
  return 'run'
end

local function settle(name)
  local todo = {name}
  while #todo > 0 do
    local current = table.remove(todo)
    for _, dname in ipairs(def_of(current).dependents) do
      if state_of(dname) == 'waiting' then
        local d = def_of(dname)
        local v = verdict(d)
        if v == 'run' then
          redis.call('HSET', state, dname, 'enqueued')
          redis.call('HSET', outbox, 'step:' .. dname, redis.call('HGET', steps, dname))
        elseif v == 'cancel' then
          redis.call('HSET', state, dname, 'cancelled')
          redis.call('HSET', failed, d.jid, cjson.encode({class = d.class,
            error_class = 'Cancelled', error_message = 'a dependency died'}))
          table.insert(todo, dname)
        end
      end
    end
  end
end

local changed = false
for i = 4, #ARGV, 2 do
  local item, step = ARGV[i], ARGV[i + 1]
  if kind == 'success' then
    if redis.call('SREM', jids, item) == 1 then
      changed = true
      redis.call('HDEL', failed, item)
      redis.call('SREM', dead, item)
      if step ~= '' then
        redis.call('HSET', state, step, 'succeeded')
        settle(step)
      end
    end
  elseif kind == 'failure' then
    if redis.call('SISMEMBER', jids, item) == 1 then
      changed = true
      redis.call('HSET', failed, item, info)
      if step ~= '' and state_of(step) ~= 'dead' then
        redis.call('HSET', state, step, 'retrying')
      end
    end
  elseif kind == 'death' then
    if redis.call('SISMEMBER', jids, item) == 1 then
      changed = true
      redis.call('HSET', failed, item, info)
      if redis.call('SADD', dead, item) == 1 then
        if redis.call('HEXISTS', meta, 'death') == 0 then
          redis.call('HSET', meta, 'death', now)
          redis.call('HSET', outbox, 'cb:death', 'death')
          if parent then
            redis.call('HSET', outbox, 'up:death', 'death')
          end
        end
        if step ~= '' then
          redis.call('HSET', state, step, 'dead')
          settle(step)
        end
      end
    end
  end
end
if kind == 'close' then
  changed = true
  redis.call('HINCRBY', meta, 'open', -1)
end

local pending = redis.call('SCARD', jids)
local failures = redis.call('HLEN', failed)
if tonumber(redis.call('HGET', meta, 'open') or '0') <= 0 then
  if pending == failures and redis.call('HEXISTS', meta, 'complete') == 0 then
    changed = true
    redis.call('HSET', meta, 'complete', now)
    redis.call('HSET', outbox, 'cb:complete', 'complete')
    if parent and failures > 0 then
      redis.call('HSET', outbox, 'up:complete', 'complete')
    end
  end
  if pending == 0 and redis.call('HEXISTS', meta, 'success') == 0 then
    changed = true
    redis.call('HSET', meta, 'success', now)
    redis.call('HSET', outbox, 'cb:success', 'success')
    if parent then
      redis.call('HSET', outbox, 'up:success', 'success')
    end
  end
end
if changed then
  local ttl = tonumber(redis.call('HGET', meta, 'ttl') or '2592000')
  for i = 1, #KEYS do
    redis.call('EXPIRE', KEYS[i], ttl)
  end
end

local result = {1, tonumber(redis.call('HGET', meta, 'total') or '0'), pending, failures,
                redis.call('HGET', meta, 'description') or '',
                redis.call('HGET', meta, 'callbacks') or '', parent or '', 0}
local entries = redis.call('HGETALL', outbox)
result[8] = #entries / 2
for i = 1, #entries, 2 do
  local claim = tonumber(redis.call('HGET', claims, entries[i]) or '0')
  if claim <= now then
    redis.call('HSET', claims, entries[i], now + lease)
    table.insert(result, entries[i])
    table.insert(result, entries[i + 1])
  end
end
return result
