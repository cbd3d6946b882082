-- Shared prelude, prepended by rediq_redis/scripts.py to every script below.
--
-- KEYS[1..N] are the keys of ONE queue, in the order of QUEUE_KEY_NAMES (rediq_redis/keys.py);
-- they all share the hash tag {<namespace>:<queue>}, so a script touches a single slot.
-- Per-task names (result/done of one task id) follow from KEYS[N + 1] on. The table `Q`
-- below (name -> key) and `N` are generated from QUEUE_KEY_NAMES when the script loads,
-- and so are the layout constants shared with the Python code (POSITION_FORMAT,
-- MEMBER_ID_AT, MINUTE_SLOTS, MINUTE_MS, MINUTE_STAMP, COUNTERS, GROUP_SEPARATOR), from
-- LUA_CONSTANTS in rediq_redis/layout.py: never write their values here.
--
-- Invariants kept by every script (docs/broker.md, "Invariants"):
--   I1. A task id has a field in `state` iff its envelope/payload are stored, and then
--       it is in exactly one of: pending (via its `position` member), scheduled, active,
--       dead -- the one its state names.
--   I2. `owner` has a field only for active tasks; `cancel` holds only active ids.
--   I3. Time is the server's (redis TIME), in epoch milliseconds. Clients send durations
--       (delays, lease lengths); only an explicit ETA is an absolute time.
--   I4. A lease is (task id, delivery number): `owner` names its worker and `deliveries`
--       its number; a settle, renewal or hand-back names both, so a stale lease of the
--       same worker never touches a newer one.
--   I5. A call that carries a reply key answers a re-send of itself (same key) with its
--       first answer, changing nothing (see replay() below).
--   I6. Every step that ends a task or forgets an unfinished one publishes on the task's
--       done channel (announce_end() below), after writing its outcome: a result waiter
--       subscribed to it re-reads the task then (rediq_redis/results.py).
redis.replicate_commands()

--@QUEUE_KEYS@--
--@LAYOUT@--
-- The result hash and done name of the j-th task a script is about. RESULT is that of the
-- first (the only one, for scripts about one task; nil in queue scripts). The done name is
-- a pub/sub channel, not a key: nothing is stored under it (see announce_end()).
local function task_keys(j)
  return KEYS[N + 2 * j - 1], KEYS[N + 2 * j]
end
local RESULT = task_keys(1)
-- The queue's hash tag, "{<namespace>:<queue>}" (every queue key starts with it).
local TAG = string.sub(Q.pending, 1, #Q.pending - #':pending')
local TASK_DATA = { 'envelope', 'payload', 'state', 'retried', 'deliveries', 'owner',
                    'error', 'position', 'lost', 'started' }
local REPLAY_MS = tonumber('--@REPLAY_MS@--')

-- Run `body` once per call: the answer is remembered under `reply_key` (named by a
-- per-call nonce) for REPLAY_MS, and a re-send of the call -- the client retrying after
-- its reply was lost -- gets that answer back without running `body` again. Without a
-- reply key (tools), `body` just runs. `remember(answer)` may tell what to store instead
-- of the answer itself (claim stores ids, not payloads).
local function replay(reply_key, body, on_replay)
  if not reply_key then return body() end
  local raw = redis.call('GET', reply_key)
  if raw then
    local stored = cjson.decode(raw)
    if on_replay then return on_replay(stored) end
    return stored
  end
  local answer, stored = body()
  if stored == nil then stored = answer end
  if stored ~= false then
    redis.call('SET', reply_key, cjson.encode(stored), 'PX', REPLAY_MS)
  end
  return answer
end

-- Whether `worker` holds lease number `delivery` of `id` ('' accepts any number).
local function holds(worker, id, delivery)
  if not redis.call('ZSCORE', Q.active, id) then return false end
  if redis.call('HGET', Q.owner, id) ~= worker then return false end
  return delivery == '' or redis.call('HGET', Q.deliveries, id) == delivery
end
-- The per-minute counters ring (Q.minutes): MINUTE_SLOTS buckets of MINUTE_MS per counter.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Push one wake token unless one is already waiting (the wake list holds at most 1).
local function wake()
  if redis.call('LLEN', Q.wake) == 0 then
    redis.call('RPUSH', Q.wake, '1')
  end
end

-- The earliest deadline a sleeping worker may be waiting for (nil if none).
local function earliest_deadline()
  local best = nil
  for _, key in ipairs({ Q.scheduled, Q.active }) do
    local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    if first[2] then
      local score = tonumber(first[2])
      if best == nil or score < best then best = score end
    end
  end
  return best
end

-- Schedule `id` for `due` ms; wake a worker if it is due before anything they sleep for.
local function schedule(id, due)
  local before = earliest_deadline()
  redis.call('ZADD', Q.scheduled, due, id)
  redis.call('HSET', Q.state, id, 'scheduled')
  if before == nil or due < before then wake() end
end

-- Make `id` ready. A task keeps its FIFO position (member) when it returns from a lease;
-- a fresh position (server order) is taken when `fresh` is true or none is stored.
local function make_pending(id, fresh, priority)
  local member = not fresh and redis.call('HGET', Q.position, id)
  if not member then
    local seq = redis.call('INCR', Q.seq)
    member = string.format(POSITION_FORMAT, seq, id)
    redis.call('HSET', Q.position, id, member)
  end
  if priority == nil then
    priority = 0
    local ok, env = pcall(cjson.decode, redis.call('HGET', Q.envelope, id) or '')
    if ok and type(env) == 'table' and type(env.priority) == 'number' then
      priority = env.priority
    end
  end
  redis.call('ZADD', Q.pending, priority, member)
  redis.call('HSET', Q.state, id, 'pending')
  wake()
end

-- The task id of a pending member (its FIFO position, POSITION_FORMAT).
local function member_id(member)
  return string.sub(member, MEMBER_ID_AT)
end

-- The group tags of an envelope (JSON text), without decoding when there are none.
local function groups_of(envelope)
  if not envelope or string.find(envelope, '"groups":[]', 1, true) then return {} end
  local ok, env = pcall(cjson.decode, envelope)
  if ok and type(env) == 'table' and type(env.groups) == 'table' then return env.groups end
  return {}
end

-- Enter `id` in the group index (Q.groups, members "<group>\n<id>": GROUP_SEPARATOR) under
-- each of its tags.
local function index_groups(id, envelope)
  for _, group in ipairs(groups_of(envelope)) do
    redis.call('ZADD', Q.groups, 0, tostring(group) .. GROUP_SEPARATOR .. id)
  end
end

-- Count one `name` event: the queue's lifetime counter and the current minute's bucket.
-- A slot is reset when it is reused for a new minute, so the ring stays bounded.
local function count(name, now)
  redis.call('HINCRBY', Q.stats, name, 1)
  local minute = math.floor(now / MINUTE_MS)
  local slot = minute % MINUTE_SLOTS
  local stamp = MINUTE_STAMP .. ':' .. slot
  if tonumber(redis.call('HGET', Q.minutes, stamp) or '-1') ~= minute then
    for _, counter in ipairs(COUNTERS) do redis.call('HDEL', Q.minutes, counter .. ':' .. slot) end
    redis.call('HSET', Q.minutes, stamp, minute)
    redis.call('EXPIRE', Q.minutes, math.floor((MINUTE_SLOTS + 1) * MINUTE_MS / 1000))
  end
  redis.call('HINCRBY', Q.minutes, name .. ':' .. slot, 1)
end

-- The decoded envelope of `id` ({} if missing or unreadable), decoded once per call.
local decoded = {}
local function envelope_of(id)
  local env = decoded[id]
  if env == nil then
    local ok
    ok, env = pcall(cjson.decode, redis.call('HGET', Q.envelope, id) or '')
    if not ok or type(env) ~= 'table' then env = {} end
    decoded[id] = env
  end
  return env
end

-- Forget every per-queue field of `id` (not its result keys), and its group index entries.
local function forget(id)
  local groups = decoded[id] and decoded[id].groups
  if type(groups) ~= 'table' then groups = groups_of(redis.call('HGET', Q.envelope, id)) end
  for _, group in ipairs(groups) do
    redis.call('ZREM', Q.groups, tostring(group) .. GROUP_SEPARATOR .. id)
  end
  for _, name in ipairs(TASK_DATA) do redis.call('HDEL', Q[name], id) end
  redis.call('SREM', Q.cancel, id)
  decoded[id] = nil
end

-- The task's result TTL in seconds, read from its envelope (0 if unreadable).
local function result_ttl(id)
  local ttl = envelope_of(id).result_ttl_s
  if type(ttl) == 'number' then return math.max(0, math.floor(ttl)) end
  return 0
end

-- The done channel of `id`, "{NS:Q}:done:<id>" (QueueKeys.done). A channel is not a key:
-- nothing is stored under it and it belongs to no slot (a PUBLISH reaches every node).
local function done_channel(id)
  return TAG .. ':' .. DONE_CHANNEL .. ':' .. id
end

-- Announce that `id` ended (or was forgotten unfinished): its result waiters look it up.
local function announce_end(id, state)
  redis.call('PUBLISH', done_channel(id), state)
end

-- Store the end of a task in its result hash for `ttl` seconds (with ttl 0 nothing is
-- written) and wake its waiters. `field`, `value`: one more field (result or error).
local function record_end(result_key, id, ttl, state, now, field, value)
  redis.call('DEL', result_key)
  announce_end(id, state)
  if ttl <= 0 then return end
  local env = envelope_of(id)
  local serializer = env.serializer
  if type(serializer) ~= 'string' then serializer = '' end
  local data = { 'state', state, 'finished_at', now,
    'serializer', serializer, 'name', tostring(env.name or ''),
    'priority', tonumber(env.priority) or 0, 'enqueued_at', tonumber(env.enqueued_at_ms) or 0,
    'groups', cjson.encode(type(env.groups) == 'table' and env.groups or {}),
    'started_at', redis.call('HGET', Q.started, id) or '',
    'retried', redis.call('HGET', Q.retried, id) or '0',
    'deliveries', redis.call('HGET', Q.deliveries, id) or '0',
    'lost', redis.call('HGET', Q.lost, id) or '0',
    'worker', redis.call('HGET', Q.owner, id) or '' }
  if field then
    table.insert(data, field)
    table.insert(data, value)
  end
  redis.call('HSET', result_key, unpack(data))
  redis.call('EXPIRE', result_key, ttl)
end

-- Drop dead letters older than ttl_ms or beyond max_count (at most 100 per call).
local function prune_dead(now, ttl_ms, max_count)
  local old = redis.call('ZRANGEBYSCORE', Q.dead, '-inf', now - ttl_ms, 'LIMIT', 0, 100)
  for _, id in ipairs(old) do
    redis.call('ZREM', Q.dead, id)
    forget(id)
  end
  local excess = redis.call('ZCARD', Q.dead) - max_count
  if excess > 0 then
    for _, id in ipairs(redis.call('ZRANGE', Q.dead, 0, math.min(excess, 100) - 1)) do
      redis.call('ZREM', Q.dead, id)
      forget(id)
    end
  end
end

-- Move an (already unlinked) task into the dead-letter set with its error JSON.
-- Scores strictly increase (ties within one millisecond get 1 us steps), so pruning by
-- count always drops the oldest dead letters first.
local function dead_letter(id, error_json, now)
  local newest = redis.call('ZRANGE', Q.dead, -1, -1, 'WITHSCORES')[2]
  local score = now
  if newest and tonumber(newest) >= now then score = tonumber(newest) + 0.001 end
  redis.call('ZADD', Q.dead, string.format('%.3f', score), id)
  redis.call('HSET', Q.state, id, 'failed')
  redis.call('HSET', Q.error, id, error_json)
  redis.call('HDEL', Q.owner, id)
  redis.call('HDEL', Q.position, id)
  redis.call('SREM', Q.cancel, id)
  count('failed', now)
end

-- Unlink `id` from whichever structure its state names; return that state (or false).
local function unlink(id)
  local state = redis.call('HGET', Q.state, id)
  if state == 'pending' then
    local member = redis.call('HGET', Q.position, id)
    if member then redis.call('ZREM', Q.pending, member) end
  elseif state == 'scheduled' then
    redis.call('ZREM', Q.scheduled, id)
  elseif state == 'active' then
    redis.call('ZREM', Q.active, id)
  elseif state == 'failed' then
    redis.call('ZREM', Q.dead, id)
  end
  return state
end

