-- Shared prelude, prepended by rediq_redis/scripts.py to every queue script.
--
-- KEYS[1..N] are the keys of ONE queue, in the order of QUEUE_KEY_NAMES (rediq_redis/keys.py);
-- they all share the hash tag {<namespace>:<queue>}, so a script touches a single slot.
-- Per-task keys (the result hash of the j-th task a script is about) follow as KEYS[N + j].
-- The table `Q` below (name -> key) and `N` are generated from QUEUE_KEY_NAMES when the
-- script loads, and so are the layout constants shared with the Python code
-- (POSITION_FORMAT, MEMBER_ID_AT, MINUTE_*, COUNTERS, GROUP_SEPARATOR, DONE_CHANNEL,
-- UNBLOCK, UNBLOCK_TTL_MS: LUA_CONSTANTS in rediq_redis/layout.py) and the record's
-- parse/pack (from RECORD_FIELDS and RECORD_PATTERNS there): never write their values here.
--
-- Protocol 2 (docs/broker.md). A task is ONE record: a field of the `tasks` hash, id ->
-- "<state>|<priority>|...|<envelope length>|<envelope><payload>" (RECORD_FIELDS), read
-- and written whole. A lease is held by a *holder*: one incarnation of one worker in this
-- queue, numbered from `seq`; `active` scores each leased task with its holder's number
-- and `holders` scores each holder with its deadline, so renewing every lease of a worker
-- is one ZADD, and a holder past its deadline loses all its leases at once.
--
-- Invariants kept by every script (docs/broker.md, "Invariants"):
--   I1. A task id has a record iff it is stored, and it is then in exactly the structure
--       its record's state names: pending (member "<position>:<id>"), scheduled, active
--       (scored with its holder), dead.
--   I2. An active record names a holder that is in `holders` (until a claim reclaims it);
--       `cancel` holds only active ids; the wake list holds at most one token.
--   I3. Time is the server's (redis TIME), in epoch milliseconds. Clients send durations
--       (delays, lease lengths); only an explicit ETA is an absolute time.
--   I4. A lease is (task id, holder, delivery number): a settle or hand-back names the
--       worker (hence its live holder) and the number, so a stale lease of the same
--       worker (an expired holder of it) never touches a newer one.
--   I5. Re-sending a call (after a lost reply) changes nothing: every step is decided by
--       the record it finds; a task that ended leaves a tombstone (id -> its enqueue
--       nonce) for the replay window, so a re-sent enqueue does not create it again.
--   I6. Every step that ends a task or forgets an unfinished one publishes on the task's
--       done channel (announce_end() below), after writing its outcome: a result waiter
--       subscribed to it re-reads the task then (rediq_redis/results.py).
redis.replicate_commands()

--@QUEUE_KEYS@--
--@LAYOUT@--
-- The queue's hash tag, "{<namespace>:<queue>}" (every queue key starts with it).
local TAG = string.sub(Q.pending, 1, #Q.pending - #':pending')
local REPLAY_MS = tonumber('--@REPLAY_MS@--')

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Records -------------------------------------------------------------------------------

-- parse(raw): a record as a table (fields of RECORD_FIELDS as strings; `raw` the stored
-- value and `at` where its body, envelope..payload, starts), or nil if `raw` is missing
-- or not a record (a field that does not match RECORD_PATTERNS). A new record has `body`
-- instead. pack(r): the stored value. Both are generated from RECORD_FIELDS (one table
-- constructor each: no loop over the field names per record).
--@RECORD@--

-- The records this call read or wrote, by id (false: known to be absent). Writes are
-- staged and sent by flush(): a batch writes every record it touched in one HSET.
local records, staged, dropped = {}, {}, {}

local function load(id)
  local r = records[id]
  if r == nil then
    r = parse(redis.call('HGET', Q.tasks, id)) or false
    records[id] = r
  end
  return r or nil
end

-- Read the records of many ids in one HMGET.
local function load_many(ids)
  local missing = {}
  for _, id in ipairs(ids) do
    if records[id] == nil then table.insert(missing, id) end
  end
  for i = 1, #missing, 500 do
    local chunk = { unpack(missing, i, math.min(i + 499, #missing)) }
    local raws = redis.call('HMGET', Q.tasks, unpack(chunk))
    for j, id in ipairs(chunk) do records[id] = parse(raws[j]) or false end
  end
end

local function save(id, r)
  records[id] = r
  staged[id] = true
  dropped[id] = nil
end

local function drop(id)
  records[id] = false
  staged[id] = nil
  dropped[id] = true
end

local function envelope_text(r)
  if r.body then return string.sub(r.body, 1, tonumber(r.envelope)) end
  return string.sub(r.raw, r.at, r.at + tonumber(r.envelope) - 1)
end

-- Whether the record's envelope lists no group (without decoding it).
local function no_groups(r)
  local at = r.at or 1
  local last = at + tonumber(r.envelope) - 1
  local found = string.find(r.body or r.raw, '"groups":[]', at, true)
  return found ~= nil and found <= last
end

-- Tombstones staged by tombstone() (below), sent by flush().
local key_ended, tombs = nil, {}

-- Batched commands: ZADD/ZREM of one key with many members, sent by flush().
local adds, rems = {}, {}
local function zadd(key, score, member)
  adds[key] = adds[key] or {}
  table.insert(adds[key], score)
  table.insert(adds[key], member)
end
local function zrem(key, member)
  rems[key] = rems[key] or {}
  table.insert(rems[key], member)
end

local function send_chunks(command, key, args, step)
  for i = 1, #args, step do
    redis.call(command, key, unpack(args, i, math.min(i + step - 1, #args)))
  end
end

local function delete_keys(key_names)
  for i = 1, #key_names, 500 do
    redis.call('DEL', unpack(key_names, i, math.min(i + 499, #key_names)))
  end
end

-- Send every staged write: removals first (a member removed and added again in one call
-- is added again), then additions, then the records.
local function flush()
  for key, members in pairs(rems) do send_chunks('ZREM', key, members, 500) end
  for key, pairs_ in pairs(adds) do send_chunks('ZADD', key, pairs_, 1000) end
  rems, adds = {}, {}
  local writes, deletes = {}, {}
  for id in pairs(staged) do
    table.insert(writes, id)
    table.insert(writes, pack(records[id]))
  end
  for id in pairs(dropped) do table.insert(deletes, id) end
  if #writes > 0 then send_chunks('HSET', Q.tasks, writes, 1000) end
  if #deletes > 0 then send_chunks('HDEL', Q.tasks, deletes, 500) end
  if #tombs > 0 then send_chunks('HSET', key_ended, tombs, 1000) end
  staged, dropped, tombs = {}, {}, {}
end

-- Remove each of `ids` from the sorted set `key` and call `act(id, record)` for those
-- with a record (read in one HMGET).
local function take_each(key, ids, act)
  if #ids == 0 then return end
  load_many(ids)
  for _, id in ipairs(ids) do
    zrem(key, id)
    local r = load(id)
    if r then act(id, r) end
  end
end

-- Waking, scheduling, pending ----------------------------------------------------------

-- Push one wake token unless one is already waiting (the wake list holds at most 1).
local function wake()
  if redis.call('LLEN', Q.wake) == 0 then
    redis.call('RPUSH', Q.wake, '1')
  end
end

-- The earliest deadline a sleeping worker may be waiting for (nil if none): the first
-- scheduled task or the first holder deadline.
local function earliest_deadline()
  local best = nil
  for _, key in ipairs({ Q.scheduled, Q.holders }) do
    local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    if first[2] then
      local score = tonumber(first[2])
      if best == nil or score < best then best = score end
    end
  end
  return best
end

local before_schedule = nil  -- earliest_deadline() before this call scheduled anything

-- Schedule `id` for `due` ms; wake a worker if it is due before anything they sleep for.
local function schedule(id, r, due)
  if before_schedule == nil then before_schedule = earliest_deadline() or false end
  zadd(Q.scheduled, due, id)
  r.state = 'scheduled'
  save(id, r)
  if before_schedule == false or due < before_schedule then
    before_schedule = due
    wake()
  end
end

-- FIFO positions: sequence numbers reserved in one INCRBY per call.
local seq_next, seq_last = 0, -1
local function reserve_positions(n)
  if n <= 0 then return end
  seq_last = redis.call('INCRBY', Q.seq, n)
  seq_next = seq_last - n + 1
end
local function next_position()
  if seq_next > seq_last then reserve_positions(1) end
  local p = seq_next
  seq_next = seq_next + 1
  return p
end

local function pending_member(r, id)
  return string.format(POSITION_FORMAT, tonumber(r.position), id)
end

-- The task id of a pending member (its FIFO position, POSITION_FORMAT).
local function member_id(member)
  return string.sub(member, MEMBER_ID_AT)
end

local made_ready = false

-- Make `id` ready. A task keeps its FIFO position when it returns from a lease; a fresh
-- position (server order) is taken when `fresh` is true.
local function make_pending(id, r, fresh)
  if fresh or r.position == '' then r.position = tostring(next_position()) end
  zadd(Q.pending, tonumber(r.priority), pending_member(r, id))
  r.state = 'pending'
  r.holder = ''
  save(id, r)
  made_ready = true
end

-- Call once at the end of a script that may have made tasks ready.
local function wake_if_ready()
  if made_ready then wake() end
end

-- Group index ---------------------------------------------------------------------------

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
    zadd(Q.groups, 0, tostring(group) .. GROUP_SEPARATOR .. id)
  end
end

-- Counters ------------------------------------------------------------------------------

-- Count `n` `name` events: the queue's lifetime counter and the current minute's bucket.
-- A slot is reset when it is reused for a new minute, so the ring stays bounded.
local function count(name, now, n)
  n = n or 1
  if n <= 0 then return end
  redis.call('HINCRBY', Q.stats, name, n)
  local minute = math.floor(now / MINUTE_MS)
  local slot = minute % MINUTE_SLOTS
  local stamp = MINUTE_STAMP .. ':' .. slot
  if tonumber(redis.call('HGET', Q.minutes, stamp) or '-1') ~= minute then
    for _, counter in ipairs(COUNTERS) do redis.call('HDEL', Q.minutes, counter .. ':' .. slot) end
    redis.call('HSET', Q.minutes, stamp, minute)
    redis.call('EXPIRE', Q.minutes, math.floor((MINUTE_SLOTS + 1) * MINUTE_MS / 1000))
  end
  redis.call('HINCRBY', Q.minutes, name .. ':' .. slot, n)
end

-- Tombstones (replay memory) ------------------------------------------------------------
-- Two hashes take turns: the one of generation g = floor(now / REPLAY_MS) is g's; field
-- '#' holds its generation, and it expires two windows after it was started. A tombstone
-- (id's digest -> enqueue nonce) so lives between one and two windows.

local function generation_key(g)
  if g % 2 == 0 then return Q.ended_a end
  return Q.ended_b
end

-- A tombstone's field: 64 bits of the id's SHA-1 (16 hex digits: a smaller allocation
-- than a 32-character id; a collision would need 2^32 ids in one window).
local function tomb_field(id)
  return string.sub(redis.sha1hex(id), 1, 16)
end

-- A tombstone's value: the first 4 characters of the settlement that ended the task
-- ('----' if none did), then its enqueue nonce.
local function tomb_value(settlement, nonce)
  return string.sub((settlement or '') .. '----', 1, 4) .. nonce
end

local function tombstone(id, value, now)
  if not key_ended then
    local g = math.floor(now / REPLAY_MS)
    key_ended = generation_key(g)
    if redis.call('HGET', key_ended, '#') ~= tostring(g) then
      redis.call('DEL', key_ended)
      redis.call('HSET', key_ended, '#', g)
      redis.call('PEXPIRE', key_ended, 2 * REPLAY_MS)
    end
  end
  table.insert(tombs, tomb_field(id))
  table.insert(tombs, value)
end

-- The tombstones of ids that ended within the replay window (id -> tomb_value()), in two
-- HMGETs for any number of ids.
local function tombstones(ids, now)
  local found = {}
  if #ids == 0 then return found end
  local g = math.floor(now / REPLAY_MS)
  local fields = {}
  for i, id in ipairs(ids) do fields[i] = tomb_field(id) end
  for _, key in ipairs({ generation_key(g), generation_key(g - 1) }) do
    local values = redis.call('HMGET', key, '#', unpack(fields))
    local stamp = tonumber(values[1])
    if stamp == g or stamp == g - 1 then
      for i, id in ipairs(ids) do
        if values[i + 1] and not found[id] then found[id] = values[i + 1] end
      end
    end
  end
  return found
end

-- Whether `id` ended within the replay window by the call named `marker` (the key of the
-- settlement, or the nonce of the cancel or delete call, that ended it): a re-send of
-- that call finds it so.
local function ended_by(id, marker, now)
  local found = tombstones({ id }, now)[id]
  return found ~= nil and string.sub(found, 1, 4) == string.sub(tomb_value(marker, ''), 1, 4)
end

-- Holders (leases) ----------------------------------------------------------------------
-- `workers` maps a worker id to its holder number and '#<number>' back to the worker id;
-- `holders` scores each number with its deadline. A holder past its deadline never comes
-- back: its worker gets a new number at its next claim, and a claim reclaims its tasks.

local function holder_alive(n, now)
  local deadline = redis.call('ZSCORE', Q.holders, n)
  return deadline ~= false and deadline ~= nil and tonumber(deadline) >= now
end

-- The holder number a worker is mapped to (live or expired, nil if none), and whether it
-- is live; looked up once per call and worker.
local holder_cache = {}
local function holder_of(worker, now)
  local cached = holder_cache[worker]
  if cached == nil then
    local n = redis.call('HGET', Q.workers, worker)
    cached = { n or nil, n and holder_alive(n, now) or false }
    holder_cache[worker] = cached
  end
  return cached[1], cached[2]
end

-- The worker's live holder, renewed until now + lease_ms; a new one if it had none.
local function renew_holder(worker, now, lease_ms)
  local n, alive = holder_of(worker, now)
  if not alive then
    n = tostring(redis.call('INCR', Q.seq))
    redis.call('HSET', Q.workers, worker, n, '#' .. n, worker)
  end
  redis.call('ZADD', Q.holders, now + lease_ms, n)
  holder_cache[worker] = { n, true }
  return n
end

-- Forget holder `n` (its tasks are all gone).
local function drop_holder(n)
  redis.call('ZREM', Q.holders, n)
  local worker = redis.call('HGET', Q.workers, '#' .. n)
  redis.call('HDEL', Q.workers, '#' .. n)
  if worker and redis.call('HGET', Q.workers, worker) == n then
    redis.call('HDEL', Q.workers, worker, '>' .. worker, '<' .. worker)
    redis.call('LREM', Q.idle, 0, worker)
    holder_cache[worker] = nil
  end
end

-- Whether `worker` holds lease number `delivery` ('' accepts any) of record `r`. An
-- expired holder still holds its leases until a claim reclaims them.
local function holds(r, worker, delivery, now)
  if not r or r.state ~= 'active' then return false end
  if holder_of(worker, now) ~= r.holder then return false end
  return delivery == '' or r.deliveries == delivery
end

-- Whether the cancellation of `id` was requested (one SCARD per call when none was).
local cancels = nil
local function cancel_requested(id)
  if cancels == nil then cancels = redis.call('SCARD', Q.cancel) end
  return cancels > 0 and redis.call('SISMEMBER', Q.cancel, id) == 1
end

-- Ends ----------------------------------------------------------------------------------

-- The done channel of `id`, "{NS:Q}:done:<id>" (QueueKeys.done). A channel is not a key:
-- nothing is stored under it and it belongs to no slot (a PUBLISH reaches every node).
local function done_channel(id)
  return TAG .. ':' .. DONE_CHANNEL .. ':' .. id
end

-- Announce that `id` ended (or was forgotten unfinished): its result waiters look it up.
local function announce_end(id, state)
  redis.call('PUBLISH', done_channel(id), state)
end

-- Forget the record of `id` (not its result), its error and its group index entries, and
-- leave its tombstone (`settlement`: the key of the settlement that ended it, if one did).
local function forget(id, r, now, settlement)
  if not no_groups(r) then
    for _, group in ipairs(groups_of(envelope_text(r))) do
      zrem(Q.groups, tostring(group) .. GROUP_SEPARATOR .. id)
    end
  end
  if r.retried ~= '0' or r.state == 'failed' then redis.call('HDEL', Q.errors, id) end
  if cancel_requested(id) then redis.call('SREM', Q.cancel, id) end
  drop(id)
  tombstone(id, tomb_value(settlement, r.nonce), now)
end

-- Store the end of a task in its result hash for its result TTL (with TTL 0 nothing is
-- written) and wake its waiters. `field`, `value`: one more field (result or error).
-- The result hash holds the task's envelope as it is (the reader takes name, serializer,
-- priority, groups and enqueue time from it): no JSON is decoded here. The hash is new:
-- every step that stores a task deletes an earlier run's result (enqueue, requeue).
local function record_end(result_key, id, r, state, now, field, value)
  local ttl = tonumber(r.ttl) or 0
  if ttl > 0 then
    local data = { 'state', state, 'finished_at', now, 'envelope', envelope_text(r),
      'started_at', r.started, 'retried', r.retried, 'deliveries', r.deliveries,
      'lost', r.lost, 'worker', r.worker }
    if field then
      table.insert(data, field)
      table.insert(data, value)
    end
    redis.call('HSET', result_key, unpack(data))
    redis.call('EXPIRE', result_key, ttl)
  end
  announce_end(id, state)
end

-- Drop dead letters older than ttl_ms or beyond max_count (at most 100 per call).
local function prune_dead(now, ttl_ms, max_count)
  local old = redis.call('ZRANGEBYSCORE', Q.dead, '-inf', now - ttl_ms, 'LIMIT', 0, 100)
  local excess = redis.call('ZCARD', Q.dead) - #old - max_count
  if excess > 0 then
    local first = #old
    for _, id in ipairs(redis.call('ZRANGE', Q.dead, first, first + math.min(excess, 100) - 1)) do
      table.insert(old, id)
    end
  end
  take_each(Q.dead, old, function(id, r) forget(id, r, now) end)
end

-- Move an (already unlinked) task into the dead-letter set with its error JSON.
-- Scores strictly increase (ties within one millisecond get 1 us steps), so pruning by
-- count always drops the oldest dead letters first.
local last_dead = nil
local function dead_letter(id, r, error_json, now)
  if last_dead == nil then
    last_dead = tonumber(redis.call('ZRANGE', Q.dead, -1, -1, 'WITHSCORES')[2] or '0')
  end
  local score = now
  if last_dead >= now then score = last_dead + 0.001 end
  last_dead = score
  zadd(Q.dead, string.format('%.3f', score), id)
  r.state = 'failed'
  r.holder = ''
  r.position = ''
  save(id, r)
  redis.call('HSET', Q.errors, id, error_json)
  if cancel_requested(id) then redis.call('SREM', Q.cancel, id) end
end

-- Unlink `id` from whichever structure its record's state names.
local function unlink(id, r)
  if r.state == 'pending' then
    zrem(Q.pending, pending_member(r, id))
  elseif r.state == 'scheduled' then
    zrem(Q.scheduled, id)
  elseif r.state == 'active' then
    zrem(Q.active, id)
  elseif r.state == 'failed' then
    zrem(Q.dead, id)
  end
end

-- Leasing -------------------------------------------------------------------------------

-- Lease the records of `ids` to `worker`'s holder `holder`: `deliveries` +1 (the lease's
-- number), active under the holder, `started` now. Returns the ids leased and those
-- without a readable record (left to the caller).
local function lease(ids, worker, holder, now)
  load_many(ids)
  local named = string.gsub(worker, '|', '/')
  local taken, missing = {}, {}
  for _, id in ipairs(ids) do
    local r = load(id)
    if r then
      r.deliveries = tostring(tonumber(r.deliveries) + 1)
      r.state, r.holder, r.worker, r.started = 'active', holder, named, tostring(now)
      save(id, r)
      zadd(Q.active, holder, id)
      table.insert(taken, id)
    else
      table.insert(missing, id)
    end
  end
  return taken, missing
end

-- A worker's registration as waiting (field '<<worker id>' of `workers`): "<lease ms>:<valid
-- until ms>" while it waits, 'h' once a task was handed to it.
local function waiting_mark(worker)
  return '<' .. worker
end

-- The list a waiting worker blocks on (QueueKeys.unblock): named here from the queue's
-- tag, so it is in the queue's slot; the one key a script does not receive in KEYS.
local function inbox_of(worker)
  return TAG .. ':' .. UNBLOCK .. ':' .. worker
end

-- A handed task as pushed by hand_off(): its holder and id (nil if `item` is not one).
local function handed_item(item)
  local holder, length, rest = string.match(item, '^(%d+)|%d+|%-?%d+|(%d+)|()')
  if not holder then return nil end
  return holder, string.sub(item, rest, rest + tonumber(length) - 1)
end

-- The ids of tasks handed to the worker of expired holder `n` that are still in its list
-- (it never took them: it died or stalled while waiting); the list goes.
local function untaken_handoffs(n)
  local untaken = {}
  local worker = redis.call('HGET', Q.workers, '#' .. n)
  if not worker then return untaken end
  local inbox = inbox_of(worker)
  local items = redis.call('LRANGE', inbox, 0, -1)
  if #items == 0 then return untaken end
  for _, item in ipairs(items) do
    local holder, id = handed_item(item)
    if holder == n then untaken[id] = true end
  end
  redis.call('DEL', inbox)
  return untaken
end

-- Hand ready tasks straight to workers waiting for them (registered in `idle` by a claim
-- that found less than it asked for), highest priority first, one per worker: leased to
-- the worker's holder and pushed onto its own list, so its blocked BLPOP returns the task
-- itself. A registration past its validity (its worker is gone) is dropped.
local function hand_off(now)
  if redis.call('LLEN', Q.idle) == 0 or redis.call('EXISTS', Q.paused) == 1 then return end
  while true do
    local worker = redis.call('LPOP', Q.idle)
    if not worker then break end
    local mark = redis.call('HGET', Q.workers, waiting_mark(worker))
    local lease_ms, valid = string.match(mark or '', '^(%d+):(%d+)$')
    if lease_ms and tonumber(valid) >= now then
      local popped = redis.call('ZPOPMIN', Q.pending, 1)
      if #popped == 0 then
        redis.call('LPUSH', Q.idle, worker)
        break
      end
      local id = member_id(popped[1])
      local holder = renew_holder(worker, now, tonumber(lease_ms))
      local taken = lease({ id }, worker, holder, now)
      if #taken == 1 then
        local inbox = inbox_of(worker)
        local deadline = now + tonumber(lease_ms)
        local earliest = earliest_deadline()
        local next_delay = earliest and math.max(0, earliest - now) or -1
        redis.call('RPUSH', inbox, holder .. '|' .. deadline .. '|' .. next_delay .. '|' .. #id
          .. '|' .. id .. pack(records[id]))
        redis.call('PEXPIRE', inbox, UNBLOCK_TTL_MS)
        redis.call('HSET', Q.workers, waiting_mark(worker), 'h')
      end
    elseif mark then
      redis.call('HDEL', Q.workers, waiting_mark(worker))
    end
  end
  flush()
end

-- Enqueue -------------------------------------------------------------------------------

local ENQUEUE_ARGS = 8  -- id, envelope, payload, priority, eta, delay, result ttl, nonce

-- Store tasks: ARGV-style list `args` from index `from` on, ENQUEUE_ARGS per task; the
-- j-th task's result key is KEYS[N + key_at + j - 1]. Returns one reply per task:
-- {1, state} for a new task (or a re-send of the call that stored it), {0, state, result
-- TTL} for a duplicate of an unfinished task.
local function enqueue_tasks(args, from, key_at)
  local ids, replies = {}, {}
  for i = from, #args, ENQUEUE_ARGS do table.insert(ids, args[i]) end
  load_many(ids)
  -- The first write must be one Redis refuses when out of memory (maxmemory with
  -- noeviction): the call then fails whole, having written nothing.
  local now = now_ms()
  local fresh = {}
  for _, id in ipairs(ids) do
    if not records[id] then table.insert(fresh, id) end
  end
  local ended = tombstones(fresh, now)
  reserve_positions(#ids)
  local stored, results = 0, {}
  local j = 0
  for i = from, #args, ENQUEUE_ARGS do
    j = j + 1
    local id, nonce = args[i], args[i + 7]
    local current = load(id)
    if current and current.state ~= 'failed' then
      if current.nonce == nonce then
        replies[j] = { 1, current.state }
      else
        replies[j] = { 0, current.state, tonumber(current.ttl) or 0 }
      end
    elseif not current and ended[id] and string.sub(ended[id], 5) == nonce then
      replies[j] = { 1, 'pending' }  -- a re-send of a call whose task has already ended
    else
      if current then
        unlink(id, current)
        forget(id, current, now)
      end
      stored = stored + 1
      table.insert(results, KEYS[N + key_at + j - 1])
      local envelope = args[i + 1]
      local r = { state = '', priority = tostring(tonumber(args[i + 3]) or 0), position = '',
        retried = '0', deliveries = '0', lost = '0', holder = '', worker = '',
        started = '', ttl = tostring(tonumber(args[i + 6]) or 0), nonce = nonce,
        envelope = tostring(#envelope), body = envelope .. args[i + 2] }
      index_groups(id, envelope)
      local due = tonumber(args[i + 4])
      local delay = tonumber(args[i + 5])
      if delay and delay > 0 then due = now + delay end
      if due and due > now then
        schedule(id, r, due)
        replies[j] = { 1, 'scheduled' }
      else
        make_pending(id, r, true)
        replies[j] = { 1, 'pending' }
      end
    end
  end
  if stored > 0 then
    count('enqueued', now, stored)
    delete_keys(results)
  end
  flush()
  if made_ready then
    hand_off(now)
    if redis.call('EXISTS', Q.pending) == 1 then wake() end
  end
  return replies
end
