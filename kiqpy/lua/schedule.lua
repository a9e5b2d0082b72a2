-- schedule.lua: move due jobs from a sorted set (`schedule` or `retry`) to their queues, each
-- with a fresh `enqueued_at`, as Sidekiq's poller does. Atomic, so each member is moved exactly
-- once however many processes poll at the same time.
--
-- KEYS[1]  the sorted set; score = epoch seconds when the job is due
-- KEYS[2]  the `queues` set
-- ARGV[1]  now (epoch seconds)
-- ARGV[2]  the queue key prefix (`<namespace>:queue:` or `queue:`)
-- ARGV[3]  the most members to look at in one call
-- ARGV[4]  now in epoch milliseconds, as decimal digits: the `enqueued_at` of a msgpack job
-- ARGV[5]  now as a JSON job's `enqueued_at` is written (Config.sidekiq_version): the same ms,
--          or float epoch seconds for Sidekiq 6/7 (`1733300000.123456`); written verbatim
--
-- Touches: ZREM from the set; SADD queues; LPUSH `<prefix><job.queue>`.
-- Returns {moved, looked, bad}: `bad` lists members that do not decode to a job with a queue
-- here, or that already hold an `enqueued_at`; they stay in the set for the caller, who
-- decodes them in Python and moves each with reroute.lua (to its queue with a fresh
-- `enqueued_at`, or to the dead set with the reason).
--
-- The payload is never re-encoded here: Redis's cjson and cmsgpack turn integers beyond 2^53
-- into doubles and cjson rewrites floats, which would corrupt job args. `enqueued_at` is added
-- at the byte level instead (see stamp()), and only when the member has none. Every move must
-- stamp a fresh one (latency is measured from it), and Sidekiq keeps the old `enqueued_at` in
-- its retry members, as did earlier kiqpy versions: replacing a field in place is not safe at
-- the byte level, so such members go back to Python, which re-encodes exactly.
local function decode(payload)
  local first = string.byte(payload, 1)
  -- '{' or JSON whitespace starts a JSON job; anything else is msgpack.
  if first == 123 or first == 32 or first == 9 or first == 10 or first == 13 then
    return cjson.decode(payload)
  end
  -- cmsgpack returns every value in the bytes; more than one is not a job (Python's decoder
  -- says so with the reason, when the caller reroutes it).
  local values = {cmsgpack.unpack(payload)}
  if #values ~= 1 then
    error('trailing bytes after the job map')
  end
  return values[1]
end

local function is_space(byte)
  return byte == 32 or byte == 9 or byte == 10 or byte == 13
end

-- A msgpack map header for n entries, in the smallest form (fixmap, map16, map32).
local function map_header(n)
  if n < 16 then
    return string.char(0x80 + n)
  elseif n < 65536 then
    return string.char(0xde, math.floor(n / 256), n % 256)
  end
  return string.char(0xdf, math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
                     math.floor(n / 256) % 256, n % 256)
end

-- The payload with `"enqueued_at": ms` (JSON: `json_stamp`) appended as the map's last entry, every other byte
-- kept. `payload` decoded to a map (a JSON object, or a msgpack map: nothing else has a queue).
local function stamp(payload, ms, json_stamp)
  local first = string.byte(payload, 1)
  if first >= 0x80 then
    -- msgpack: count one more entry in the header, and append the key and the value.
    local n, body
    if first <= 0x8f then
      n, body = first - 0x80, 2
    elseif first == 0xde then
      local b1, b2 = string.byte(payload, 2, 3)
      n, body = b1 * 256 + b2, 4
    elseif first == 0xdf then
      local b1, b2, b3, b4 = string.byte(payload, 2, 5)
      n, body = ((b1 * 256 + b2) * 256 + b3) * 256 + b4, 6
    else
      return payload
    end
    return map_header(n + 1) .. string.sub(payload, body) .. cmsgpack.pack('enqueued_at')
      .. cmsgpack.pack(tonumber(ms))
  end
  -- JSON: insert the member before the closing brace (trailing whitespace is kept); no comma
  -- when the object is empty (nothing but whitespace between its braces).
  local close = #payload
  while close > 1 and is_space(string.byte(payload, close)) do
    close = close - 1
  end
  local before = close - 1
  while before > 1 and is_space(string.byte(payload, before)) do
    before = before - 1
  end
  local comma = ','
  if string.byte(payload, before) == 123 then
    comma = ''
  end
  return string.sub(payload, 1, close - 1) .. comma .. '"enqueued_at":' .. json_stamp
    .. string.sub(payload, close)
end

local due = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, ARGV[3])
local moved, bad = 0, {}
for _, payload in ipairs(due) do
  local ok, job = pcall(decode, payload)
  local queue = ok and type(job) == 'table' and job['queue']
  if type(queue) == 'string' and queue ~= '' and job['enqueued_at'] == nil then
    local queued = stamp(payload, ARGV[4], ARGV[5])
    redis.call('ZREM', KEYS[1], payload)
    redis.call('SADD', KEYS[2], queue)
    redis.call('LPUSH', ARGV[2] .. queue, queued)
    moved = moved + 1
  else
    bad[#bad + 1] = payload
  end
end
return {moved, #due, bad}
