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

-- Event stream ---------------------------------------------------------------------------
-- Q.events (STREAM) gets one entry per task transition, written by emit() in the very step
-- that makes it: k kind (rediq_core/task_events.py), t task id, n task name, a attempt
-- (retried + 1), d detail. Trimmed to about EVENTS_MAX entries (MAXLEN ~, whole stream
-- nodes); EVENTS_MAX 0: no stream, emit() writes nothing. The lengths are the writing
-- broker's configuration (EventLengths in rediq_redis/event_stream.py).
local EVENT_LENGTHS = --@EVENT_LENGTHS@--
local EVENTS_MAX = EVENT_LENGTHS[TAG] or EVENT_LENGTHS['*']

-- "<type>: <message>" of an error JSON (the detail of the events of failures).
local function error_detail(error_json)
  if EVENTS_MAX == 0 or not error_json then return '' end
  local ok, e = pcall(cjson.decode, error_json)
  if not ok or type(e) ~= 'table' then return '' end
  return string.sub(tostring(e.type or '') .. ': ' .. tostring(e.message or ''), 1, 200)
end

-- "<percent>% <message>" of a progress report's JSON ([fraction, message, time]): the
-- detail of a progress event (rediq_core.task_events.progress_detail says the same).
local function progress_detail(progress_json)
  if EVENTS_MAX == 0 then return '' end
  local ok, p = pcall(cjson.decode, progress_json)
  if not ok or type(p) ~= 'table' or type(p[1]) ~= 'number' then return '' end
  local text = string.format('%d%%', math.floor(p[1] * 100 + 0.5))
  if type(p[2]) == 'string' and p[2] ~= '' then text = text .. ' ' .. p[2] end
  return text
end

-- The task's name as its envelope spells it (JSON-escaped: the reader unescapes it), found
-- within the envelope only (never in the payload after it).
local function emit(kind, id, r, detail)
  if EVENTS_MAX == 0 then return end
  local at = r.at or 1
  local from, _, name = string.find(r.body or r.raw, '"name":"(.-)"[,}]', at)
  if not from or from > at + tonumber(r.envelope) then name = '' end
  redis.call('XADD', Q.events, 'MAXLEN', '~', EVENTS_MAX, '*', 'k', kind, 't', id,
    'n', name, 'a', (tonumber(r.retried) or 0) + 1, 'd', detail or '')
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
-- scheduled task, the first holder deadline, or the next token of a rate a task waits for.
local function earliest_deadline()
  local best = nil
  for _, key in ipairs({ Q.scheduled, Q.holders, Q.limits_due }) do
    local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    if first[2] then
      local score = tonumber(first[2])
      if best == nil or score < best then best = score end
    end
  end
  return best
end

-- The field of `workers` naming the queue's timekeeper, "<worker id>|<deadline ms>": the
-- one waiting worker that wakes for the queue's next deadline (a due scheduled task, an
-- expiring lease, a rate token). The others wait for a hand-off or a wake token, up to a
-- lease, so a due time wakes one worker, not every waiting one. A keeper that does not
-- claim within KEEPER_GRACE_MS of its deadline (it died, or it is busy) loses the role to
-- the next worker that claims; so does one sleeping past an earlier deadline.
local KEEPER = '!'
local KEEPER_GRACE_MS = 1000

-- How long `worker`, about to wait, sleeps before it claims again: until the next
-- deadline if it keeps time (it takes the role when no live keeper wakes early enough),
-- else until its own lease's deadline (a stalled worker reclaims its own lease), else -1
-- (wait for a hand-off or a wake token); 0 when something is due now.
local function wake_delay(worker, now)
  local mine, earliest, own = redis.call('HGET', Q.workers, worker), nil, nil
  for _, key in ipairs({ Q.scheduled, Q.holders, Q.limits_due }) do
    local first = redis.call('ZRANGE', key, 0, 1, 'WITHSCORES')
    local at = first[2]
    if key == Q.holders and mine and first[1] == mine then
      own, at = tonumber(first[2]), first[4]  -- the others' deadlines are what it keeps
    end
    at = at and tonumber(at)
    if at and (earliest == nil or at < earliest) then earliest = at end
  end
  if (earliest and earliest <= now) or (own and own <= now) then return 0 end
  if earliest then
    local kept = redis.call('HGET', Q.workers, KEEPER)
    local other = false
    if kept then
      local bar = string.find(kept, '|', 1, true)
      local at = tonumber(string.sub(kept, bar + 1))
      other = string.sub(kept, 1, bar - 1) ~= worker and at <= earliest
        and at + KEEPER_GRACE_MS >= now
    end
    if not other then
      redis.call('HSET', Q.workers, KEEPER, worker .. '|' .. earliest)
      return math.min(earliest, own or earliest) - now
    end
  end
  if not earliest then redis.call('HDEL', Q.workers, KEEPER) end  -- no deadline to keep
  return own and own - now or -1
end

local before_schedule = nil  -- earliest_deadline() before this call scheduled anything

-- Wake a worker if `due` comes before anything the workers sleep for (call it before the
-- write that makes `due` a deadline).
local function wake_before(due)
  if before_schedule == nil then before_schedule = earliest_deadline() or false end
  if before_schedule == false or due < before_schedule then
    before_schedule = due
    wake()
  end
end

-- Schedule `id` for `due` ms; wake a worker if it is due before anything they sleep for.
local function schedule(id, r, due)
  wake_before(due)
  zadd(Q.scheduled, due, id)
  r.state = 'scheduled'
  save(id, r)
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

-- Flow (rediq_core/flow.py): a task's limits come first in its envelope, {"flow":{c =
-- {{name, most running}, ...}, r = {{name, count, period ms, burst}, ...}, f = fair key}}.
-- flow_of(r): that table, or nil for a task without limits (seen from its first bytes).
local flows = {}  -- record table -> flow table or false
local function flow_of(r)
  local f = flows[r]
  if f == nil then
    f = false
    local at = r.at or 1
    if string.sub(r.body or r.raw, at, at + #FLOW_MARK - 1) == FLOW_MARK then
      local ok, env = pcall(cjson.decode, envelope_text(r))
      if ok and type(env) == 'table' and type(env.flow) == 'table' then
        f = env.flow
        f.name = type(env.name) == 'string' and env.name or ''
      end
    end
    flows[r] = f
  end
  return f or nil
end

-- Free a key of the hash `key` (unique, debounce) if task `id` holds it.
local function release_key(key, name, id)
  if redis.call('HGET', key, name) == id then redis.call('HDEL', key, name) end
end

-- Fair order. Once a task with a fair key reached the queue (Q.fair exists), its tasks
-- take turns by tenant (start-time fair queueing): a task's position is the later of the
-- service clock (Q.fair "v": the position of the latest task started) and one past its
-- tenant's last position ("t<tenant>"); a task without a fair key is of tenant ''.
local fair_queue, fair_clock, fair_last = nil, nil, {}
local function fair_tenant(r)
  local f = flow_of(r)
  if f and type(f.f) == 'string' then
    fair_queue = true
    return f.f
  end
  if fair_queue == nil then fair_queue = redis.call('EXISTS', Q.fair) == 1 end
  if fair_queue then return '' end
  return nil
end

local function fair_position(tenant)
  if fair_clock == nil then fair_clock = tonumber(redis.call('ZSCORE', Q.fair, 'v') or '0') end
  local last = fair_last[tenant]
  if last == nil then last = tonumber(redis.call('ZSCORE', Q.fair, 't' .. tenant) or '-1') end
  local position = math.max(fair_clock, last + 1)
  fair_last[tenant] = position
  redis.call('ZADD', Q.fair, position, 't' .. tenant)
  return position
end

-- A task started at `position`: the service clock moves on (once per call: fair_started),
-- and tenants behind it are forgotten (their next task starts from the clock anyway).
local started_at = nil
local function note_start(r)
  local position = tonumber(r.position)
  if position and (started_at == nil or position > started_at) then started_at = position end
end
local function fair_started()
  if started_at == nil then return end
  if fair_queue == nil then fair_queue = redis.call('EXISTS', Q.fair) == 1 end
  if fair_queue then
    redis.call('ZADD', Q.fair, 'GT', started_at, 'v')
    redis.call('ZREMRANGEBYSCORE', Q.fair, '-inf', '(' .. started_at)
  end
  started_at = nil
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
  if fresh or r.position == '' then
    local tenant = fair_tenant(r)
    if tenant then
      r.position = tostring(fair_position(tenant))
    else
      r.position = tostring(next_position())
    end
  end
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

-- Limits --------------------------------------------------------------------------------
-- A task may start when each of its concurrency limits has a free slot (Q.slots holds
-- "<limit>\n<id>" per running task) and each of its rates has a token (generic cell rate:
-- Q.rates scores a rate with its theoretical arrival time). The queue's own limits
-- (Q.limits) apply to every task as QUEUE_CONCURRENCY and QUEUE_RATE. A task that may not
-- start is `limited`: parked in Q.parked in the lane of the limit that stopped it, in
-- (priority, position) order. A freed slot moves that lane's first task back to pending
-- (it keeps its position); a rate's lane is woken by Q.limits_due at its next token, on
-- the server clock (sleeping workers wake for it: earliest_deadline()).

local queue_limits = nil  -- { c = {{name, most}}, r = {{name, count, period, burst}} }
local function limits_of_queue()
  if queue_limits == nil then
    queue_limits = false
    local set = redis.call('HMGET', Q.limits, 'concurrency', 'rate')
    if set[1] or set[2] then
      queue_limits = { c = {}, r = {} }
      if set[1] then queue_limits.c = { { QUEUE_CONCURRENCY, tonumber(set[1]) } } end
      local n, period, burst = string.match(set[2] or '', '^(%d+)/(%d+)/(%d+)$')
      if n then
        queue_limits.r = { { QUEUE_RATE, tonumber(n), tonumber(period), tonumber(burst) } }
      end
    end
  end
  return queue_limits or nil
end

-- The limits of kind 'c' (concurrency) or 'r' (rate) of a task: its own, then the queue's.
local function limits_of(r, kind)
  local f, q = flow_of(r), limits_of_queue()
  if not q then return f and f[kind] or {} end
  if not f or not f[kind] then return q[kind] end
  local all = {}
  for _, l in ipairs(f[kind]) do table.insert(all, l) end
  for _, l in ipairs(q[kind]) do table.insert(all, l) end
  return all
end

-- The lex range of limit `name`'s members in Q.slots and Q.parked ("<name>\n..."; a
-- line break sorts just before '\v').
local function lane_range(name)
  return '[' .. name .. LANE_SEPARATOR, '(' .. name .. '\v'
end

local function running(name)
  local low, high = lane_range(name)
  return redis.call('ZLEXCOUNT', Q.slots, low, high)
end

-- When rate `l` has its next token (now or later); tat: its theoretical arrival time.
local tats = {}
local function token_at(l, now)
  local tat = tats[l[1]]
  if tat == nil then tat = tonumber(redis.call('ZSCORE', Q.rates, l[1]) or '0') end
  tats[l[1]] = tat
  return math.max(now, math.ceil(tat - (l[3] / l[2]) * (l[4] - 1))), tat
end

local function take_token(l, now)
  local _, tat = token_at(l, now)
  tat = math.max(tat, now) + l[3] / l[2]
  tats[l[1]] = tat
  redis.call('ZADD', Q.rates, tat, l[1])
end

-- Whether any task is parked (looked up once per call; a park sets it).
local parked_any = nil
local function any_parked()
  if parked_any == nil then parked_any = redis.call('EXISTS', Q.parked) == 1 end
  return parked_any
end

-- The task id of a member of Q.parked.
local function parked_id(member)
  return string.sub(member, string.find(member, LANE_SEPARATOR, 1, true) + LANE_ID_AT)
end

-- The first member of limit `name`'s lane in Q.parked (nil if the lane is empty).
local function lane_first(name)
  if not any_parked() then return nil end
  local low, high = lane_range(name)
  return redis.call('ZRANGEBYLEX', Q.parked, low, high, 'LIMIT', 0, 1)[1]
end

-- The first task of limit `name`'s lane goes back to pending (nil if the lane is empty).
local unparked = 0
local function unpark(name)
  local first = lane_first(name)
  if not first then return nil end
  redis.call('ZREM', Q.parked, first)
  local id = parked_id(first)
  local r = load(id)
  if r and r.state == 'limited' then make_pending(id, r, false) end
  unparked = unparked + 1
  return id
end

local function lane_member(name, r, id)
  return name .. LANE_SEPARATOR .. string.format(LANE_ORDER_FORMAT,
    tonumber(r.priority) + PRIORITY_OFFSET, tonumber(r.position), id)
end

-- Keep a lane moving: limit `l` (of `kind`) may let its lane's first task start now (it
-- goes to pending), or, for a rate, at its next token (Q.limits_due).
local function offer(kind, l, now)
  if not any_parked() then return end
  if kind == 'c' then
    if running(l[1]) < tonumber(l[2]) then unpark(l[1]) end
    return
  end
  local at = token_at(l, now)
  if at <= now then
    unpark(l[1])
  elseif lane_first(l[1]) then
    redis.call('ZADD', Q.limits_due, 'LT', at, l[1])
  end
end

-- Park `id` (just taken from pending) in the lane of limit `name`; `at`: when its rate has
-- the next token. The task's other limits pass the chance it was given on to their lanes.
local function park(id, r, name, at, now)
  r.state = 'limited'
  r.holder = ''
  save(id, r)
  redis.call('ZADD', Q.parked, 0, lane_member(name, r, id))
  parked_any = true
  if at then redis.call('ZADD', Q.limits_due, 'LT', at, name) end
  for _, kind in ipairs({ 'c', 'r' }) do
    for _, l in ipairs(limits_of(r, kind)) do
      if l[1] ~= name then offer(kind, l, now) end
    end
  end
end

-- Whether `id` (just taken from pending) may start now. If so its slots are taken, its
-- tokens spent and nil is returned; else it is parked and its limit's name returned.
local function admit(id, r, now)
  if not flow_of(r) and not limits_of_queue() then return nil end
  local concurrency, rates = limits_of(r, 'c'), limits_of(r, 'r')
  for _, l in ipairs(concurrency) do
    if running(l[1]) >= tonumber(l[2]) then
      park(id, r, l[1], nil, now)
      return l[1]
    end
  end
  for _, l in ipairs(rates) do
    local at = token_at(l, now)
    if at > now then
      park(id, r, l[1], at, now)
      return l[1]
    end
  end
  for _, l in ipairs(concurrency) do
    redis.call('ZADD', Q.slots, 0, l[1] .. LANE_SEPARATOR .. id)
  end
  for _, l in ipairs(rates) do
    take_token(l, now)
    offer('r', l, now)  -- the lane's next task, at the rate's next token
  end
  return nil
end

-- A task of pending leaves without starting (cancelled, deleted, purged): if it was a
-- lane's first task moved back to pending, its lane gets the chance it had. A purge of
-- pending tasks sets `pass_on_later`: the lanes are then due at once (Q.limits_due) and
-- the next claim reconsiders them, so the purge does not take the lanes' tasks with it.
local pass_on_later = false
local function pass_on(r)
  if not flow_of(r) and not limits_of_queue() then return end
  local now = now_ms()
  for _, kind in ipairs({ 'c', 'r' }) do
    for _, l in ipairs(limits_of(r, kind)) do
      if not pass_on_later then
        offer(kind, l, now)
      elseif any_parked() then
        redis.call('ZADD', Q.limits_due, now, l[1])
        wake()
      end
    end
  end
end

-- Lanes whose rate has a token again: their first tasks go back to pending.
local function wake_due_lanes(now)
  local due = redis.call('ZRANGEBYSCORE', Q.limits_due, '-inf', now, 'LIMIT', 0, 100)
  if #due == 0 then return end
  redis.call('ZREM', Q.limits_due, unpack(due))
  for _, name in ipairs(due) do unpark(name) end
  if #redis.call('ZRANGE', Q.rates, 0, 0) > 0 then
    redis.call('ZREMRANGEBYSCORE', Q.rates, '-inf', now)  -- a rate idle since: a full bucket
  end
end

-- `id` leaves `active`: its concurrency slots are freed, each for its lane's first task.
local slots_kept = nil
local function leave_active(id, r)
  zrem(Q.active, id)
  if slots_kept == nil then slots_kept = redis.call('EXISTS', Q.slots) == 1 end
  if not slots_kept then return end
  local freed = {}
  for _, l in ipairs(limits_of(r, 'c')) do freed[l[1]] = true end
  freed[QUEUE_CONCURRENCY] = true  -- held while the queue's limit was set (it may be gone)
  for name in pairs(freed) do
    if redis.call('ZREM', Q.slots, name .. LANE_SEPARATOR .. id) == 1 then unpark(name) end
  end
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

-- Roll minute `open` (the ring's open minute, complete now) up into the history: its
-- record in the minutes part, then its hour's record, recomputed as the sum of that
-- hour's minute records. Both writes overwrite: rolling a minute up twice changes nothing.
local function roll_up(open)
  local slot = open % MINUTE_SLOTS
  local fields = { MINUTE_STAMP .. ':' .. slot, RUN_FIELD .. ':' .. slot }
  for _, counter in ipairs(COUNTERS) do table.insert(fields, counter .. ':' .. slot) end
  local values = redis.call('HMGET', Q.minutes, unpack(fields))
  if tonumber(values[1]) ~= open then return end
  -- the packed run field may pass 2^53: its low bits (the attempts) digit by digit
  local packed, runs = values[2] or '0', 0
  for digit in string.gmatch(packed, '%d') do runs = (runs * 10 + tonumber(digit)) % RUN_SCALE end
  local record = { open }
  for i = 1, #COUNTERS do record[i + 1] = tonumber(values[i + 2]) or 0 end
  table.insert(record, runs)
  table.insert(record, math.floor((tonumber(packed) - runs) / RUN_SCALE + 0.5))
  if redis.call('STRLEN', Q.history) < HISTORY_SIZE then
    redis.call('SETRANGE', Q.history, HISTORY_SIZE - 1, '\0')  -- its whole size at once
  end
  redis.call('SETRANGE', Q.history, (open % HISTORY_MINUTES) * HISTORY_RECORD_SIZE,
    struct.pack(HISTORY_FORMAT, unpack(record)))
  local hour = math.floor(open / HOUR_MINUTES)
  local first = (hour * HOUR_MINUTES) % HISTORY_MINUTES
  local raw = redis.call('GETRANGE', Q.history, first * HISTORY_RECORD_SIZE,
    (first + HOUR_MINUTES) * HISTORY_RECORD_SIZE - 1)
  local sums = { hour }
  for i = 2, #record do sums[i] = 0 end
  for i = 0, HOUR_MINUTES - 1 do
    if #raw < (i + 1) * HISTORY_RECORD_SIZE then break end
    local minute = { struct.unpack(HISTORY_FORMAT, raw, i * HISTORY_RECORD_SIZE + 1) }
    if minute[1] == hour * HOUR_MINUTES + i then
      for k = 2, #record do sums[k] = sums[k] + minute[k] end
    end
  end
  redis.call('SETRANGE', Q.history,
    (HISTORY_MINUTES + hour % HISTORY_HOURS) * HISTORY_RECORD_SIZE,
    struct.pack(HISTORY_FORMAT, unpack(sums)))
  redis.call('EXPIRE', Q.history, HISTORY_TTL_S)
end

-- The ring slot of the current minute, reset if it held an older minute; the minute
-- open until now is rolled up into the history first (once: the first count of each
-- minute does it). Checked once per call.
local counted_minute, counted_slot
local function minute_slot(now)
  local minute = math.floor(now / MINUTE_MS)
  if counted_minute == minute then return counted_slot end
  local slot = minute % MINUTE_SLOTS
  local stamp = MINUTE_STAMP .. ':' .. slot
  if tonumber(redis.call('HGET', Q.minutes, stamp) or '-1') ~= minute then
    local open = tonumber(redis.call('HGET', Q.minutes, MINUTE_OPEN) or '')
    -- (an open minute after this one: the server's clock went back; it stays open)
    if not open or open < minute then
      if open and open >= minute - HISTORY_HOURS * HOUR_MINUTES then roll_up(open) end
      redis.call('HSET', Q.minutes, MINUTE_OPEN, minute)
    end
    local fields = { RUN_FIELD .. ':' .. slot }
    for _, counter in ipairs(COUNTERS) do table.insert(fields, counter .. ':' .. slot) end
    redis.call('HDEL', Q.minutes, unpack(fields))
    redis.call('HSET', Q.minutes, stamp, minute)
    redis.call('EXPIRE', Q.minutes, HISTORY_TTL_S)
  end
  counted_minute, counted_slot = minute, slot
  return slot
end

-- Count `n` `name` events: the queue's lifetime counter and the current minute's bucket.
-- A slot is reset when it is reused for a new minute, so the ring stays bounded.
local function count(name, now, n)
  n = n or 1
  if n <= 0 then return end
  redis.call('HINCRBY', Q.stats, name, n)
  redis.call('HINCRBY', Q.minutes, name .. ':' .. minute_slot(now), n)
end

-- Count `runs` attempts that ran `run_ms` in all, in the current minute's bucket: one
-- HINCRBY of the packed field (`run_ms * RUN_SCALE + runs`, written out in full: Lua
-- would print a large number with an exponent; two when the sum is past a double's
-- exact integers, 2^53).
local function count_runs(now, runs, run_ms)
  if runs <= 0 then return end
  local field, packed = RUN_FIELD .. ':' .. minute_slot(now), run_ms * RUN_SCALE
  if packed + runs < 2 ^ 53 then
    redis.call('HINCRBY', Q.minutes, field, string.format('%.0f', packed + runs))
  else
    redis.call('HINCRBY', Q.minutes, field, string.format('%.0f', packed))
    redis.call('HINCRBY', Q.minutes, field, runs)
  end
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
-- A holder whose last lease its worker ended goes at once (drop_empty_holder()).

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

-- The worker's holder goes with its last lease (after a settle or release by it): a holder
-- left to expire with no tasks is a deadline every waiting worker would wake for
-- (earliest_deadline()) to reclaim nothing. Its registration as waiting stays; its next
-- lease takes a new number.
local function drop_empty_holder(worker, now)
  local n = holder_of(worker, now)
  if n and redis.call('ZCOUNT', Q.active, n, n) == 0 then
    redis.call('ZREM', Q.holders, n)
    redis.call('HDEL', Q.workers, worker, '#' .. n, '>' .. worker)
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
-- Failed attempts ---------------------------------------------------------------------
-- A task failed and retried keeps the errors of its last failed attempts (ATTEMPT_BOUNDS:
-- how many, the longest message in bytes, the longest traceback, cut to its end), oldest
-- first, in the list "{NS:Q}:<ATTEMPTS>:<id>" (QueueKeys.attempts): JSON {type, message,
-- traceback, attempt, at, worker}. The list exists only while the task's record does and
-- has retried > 0: forget() and requeue_dead drop it; a task's end copies it into its
-- result hash first (store_end: field 'attempts', a JSON array).
--
-- Keep the error of the attempt of `id` that just failed and is retried (r.retried
-- already counts it).
local function note_attempt(id, r, error_json, now)
  local kept, message_max, trace_max = unpack(ATTEMPT_BOUNDS)
  local ok, err = pcall(cjson.decode, error_json)
  if not ok or type(err) ~= 'table' then
    err = { type = 'UnreadableError', message = error_json, traceback = '' }
  end
  local message, trace = tostring(err.message or ''), tostring(err.traceback or '')
  if #trace > trace_max then trace = string.sub(trace, -trace_max) end
  local key = TAG .. ':' .. ATTEMPTS .. ':' .. id
  redis.call('RPUSH', key, cjson.encode({ type = tostring(err.type or ''),
    message = string.sub(message, 1, message_max), traceback = trace,
    attempt = tonumber(r.retried), at = now, worker = r.worker }))
  redis.call('LTRIM', key, -kept, -1)
end

local function done_channel(id)
  return TAG .. ':' .. DONE_CHANNEL .. ':' .. id
end

-- Announce that `id` ended (or was forgotten unfinished): its result waiters look it up.
local function announce_end(id, state)
  redis.call('PUBLISH', done_channel(id), state)
end

-- A task's trail, "{NS:Q}:trail:<id>" (QueueKeys.trail): its progress and log lines.
local function trail_of(id)
  return TAG .. ':' .. TRAIL .. ':' .. id
end

-- At a task's end: keep its trail as long as its result, or drop it with TTL 0.
local function end_trail(id, r)
  local ttl = tonumber(r.ttl) or 0
  if ttl > 0 then
    redis.call('EXPIRE', trail_of(id), ttl)
  else
    redis.call('DEL', trail_of(id))
  end
end

-- Forget the record of `id` (not its result), its error and its group index entries, and
-- leave its tombstone (`settlement`: the key of the settlement that ended it, if one did).
-- A task leased before may have a trail: it goes too, unless `trail_done` (the caller
-- kept it with the result).
local function forget(id, r, now, settlement, trail_done)
  if not no_groups(r) then
    for _, group in ipairs(groups_of(envelope_text(r))) do
      zrem(Q.groups, tostring(group) .. GROUP_SEPARATOR .. id)
    end
  end
  if r.retried ~= '0' or r.state == 'failed' then redis.call('HDEL', Q.errors, id) end
  if cancel_requested(id) then redis.call('SREM', Q.cancel, id) end
  if not trail_done and r.deliveries ~= '0' then redis.call('DEL', trail_of(id)) end
  local f = flow_of(r)
  if f then
    if f.x or f.d then redis.call('ZREM', Q.expiry, 'x' .. id, 'd' .. id) end
    if f.u then release_key(Q.unique, f.u[1], id) end
    if f.b then release_key(Q.debounce, f.b[1], id) end
  end
  if r.retried ~= '0' then redis.call('DEL', TAG .. ':' .. ATTEMPTS .. ':' .. id) end
  drop(id)
  tombstone(id, tomb_value(settlement, r.nonce), now)
end

-- Store the end of a task in its result hash for its result TTL (with TTL 0 nothing is
-- written) and wake its waiters. `field`, `value`: one more field (result or error).
-- The result hash holds the task's envelope as it is (the reader takes name, serializer,
-- priority, groups and enqueue time from it): no JSON is decoded here. The hash is new:
-- every step that stores a task deletes an earlier run's result (enqueue, requeue).
local function store_end(result_key, id, r, state, now, field, value)
  local ttl = tonumber(r.ttl) or 0
  if ttl > 0 then
    local data = { 'state', state, 'finished_at', now, 'envelope', envelope_text(r),
      'started_at', r.started, 'retried', r.retried, 'deliveries', r.deliveries,
      'lost', r.lost, 'worker', r.worker }
    if field then
      table.insert(data, field)
      table.insert(data, value)
    end
    if r.retried ~= '0' then  -- its kept failed attempts (note_attempt), one JSON array
      local kept = redis.call('LRANGE', TAG .. ':' .. ATTEMPTS .. ':' .. id, 0, -1)
      if #kept > 0 then
        table.insert(data, 'attempts')
        table.insert(data, '[' .. table.concat(kept, ',') .. ']')
      end
    end
    redis.call('HSET', result_key, unpack(data))
    redis.call('EXPIRE', result_key, ttl)
  end
  emit(state, id, r, field == 'error' and error_detail(value) or '')
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
  local f = flow_of(r)
  if f and f.u then release_key(Q.unique, f.u[1], id) end  -- done, for good
end

-- Keys a script names itself, from the queue's tag (so in the queue's slot), besides a
-- worker's inbox: the parents of other queues counted for waiting step `id`
-- (QueueKeys.joined), and the result hash of a step a script ends without being called
-- about it (a workflow step cut short: QueueKeys.result).
local function joined_of(id)
  return TAG .. ':' .. JOINED .. ':' .. id
end
local function result_of(id)
  return TAG .. ':' .. RESULT .. ':' .. id
end

-- Unlink `id` from whichever structure its record's state names.
local function unlink(id, r)
  if r.state == 'pending' then
    zrem(Q.pending, pending_member(r, id))
    pass_on(r)
  elseif r.state == 'scheduled' then
    zrem(Q.scheduled, id)
  elseif r.state == 'active' then
    leave_active(id, r)
  elseif r.state == 'limited' then
    for _, name in ipairs({ QUEUE_CONCURRENCY, QUEUE_RATE }) do
      redis.call('ZREM', Q.parked, lane_member(name, r, id))
    end
    local f = flow_of(r)
    for _, kind in ipairs({ 'c', 'r' }) do
      for _, l in ipairs(f and f[kind] or {}) do
        redis.call('ZREM', Q.parked, lane_member(l[1], r, id))
      end
    end
  elseif r.state == 'failed' then
    zrem(Q.dead, id)
  elseif r.state == 'waiting' then
    zrem(Q.waiting, id)
    redis.call('HDEL', Q.joins, id, id .. ':due')
    local joined = joined_of(id)
    redis.call('DEL', joined)
  end
end

-- Workflows -----------------------------------------------------------------------------
-- A workflow step carries its link in its envelope's WORKFLOW_HEADER header
-- (rediq_core/workflow_records.py). A step that waits for others is `waiting` (in
-- Q.waiting; Q.joins counts the parents still to succeed, and keeps its delay or ETA as
-- "<id>:due"). When a step ends, steps_after() releases or ends the steps that wait for it:
-- those of this queue at once, those of another queue through this queue's outbox.

-- The link of a step ({ wf, n, wait, then = {{queue, n}, ...} } and the step's own
-- queue as `queue`), or nil for a plain task (or a link that does not parse).
local function link_of(r)
  -- most tasks are no step: look for the header's name inside the envelope, in place
  -- (no copy of the envelope, no JSON decoded), as no_groups() does
  local at = r.at or 1
  local found = string.find(r.body or r.raw, WORKFLOW_HEADER, at, true)
  if not found or found > at + tonumber(r.envelope) - 1 then return nil end
  local ok, env = pcall(cjson.decode, envelope_text(r))
  if not ok or type(env) ~= 'table' or type(env.headers) ~= 'table' then return nil end
  local text = env.headers[WORKFLOW_HEADER]
  if type(text) ~= 'string' then return nil end
  local parsed, link = pcall(cjson.decode, text)
  if not parsed or type(link) ~= 'table' or type(link.wf) ~= 'string'
      or type(link['then']) ~= 'table' then
    return nil
  end
  link.queue = env.queue
  return link
end

-- Store `id` as waiting for `wait` parents; `due`: "d<delay ms>" or "e<ETA ms>" (or nil).
local function make_waiting(id, r, now, wait, due)
  r.state = 'waiting'
  r.holder = ''
  save(id, r)
  zadd(Q.waiting, now, id)
  if due then
    redis.call('HSET', Q.joins, id, wait, id .. ':due', due)
  else
    redis.call('HSET', Q.joins, id, wait)
  end
end

-- Parent number `parent` of waiting step `id` succeeded. `once`: the news came from
-- another queue and may come twice: it counts once (Q.joined of the step).
local function join(id, parent, once, now)
  local r = load(id)
  if not r or r.state ~= 'waiting' then return end
  local joined = joined_of(id)
  if once and redis.call('SADD', joined, parent) == 0 then return end
  if redis.call('HINCRBY', Q.joins, id, -1) > 0 then return end
  local due = redis.call('HGET', Q.joins, id .. ':due')
  unlink(id, r)
  local at = nil
  if due then
    at = tonumber(string.sub(due, 2))
    if string.sub(due, 1, 1) == 'd' then at = now + at end
  end
  r.position = ''
  if at and at > now then schedule(id, r, at) else make_pending(id, r, true) end
end

-- The cascade error of a step cut short because step `link.n` ended in `state` with
-- `error_json` (JSON, or nil); a cascade error is passed on as it is.
local function cascade_json(link, state, error_json)
  local ok, err = pcall(cjson.decode, error_json or 'null')  -- an unreadable error: none
  if not ok then err = nil end
  if type(err) == 'table' and err.type == CASCADE_ERROR_TYPE then return error_json end
  local why = type(err) == 'table' and tostring(err.message) or 'no error recorded'
  return cjson.encode({ type = CASCADE_ERROR_TYPE, traceback = '', message = 'step '
    .. link.n .. ' of workflow ' .. link.wf .. ' ended ' .. state .. ': ' .. why })
end

-- Effects on steps of other queues written by this call (outbox members): the caller
-- delivers them.
local outboxed = {}
local function to_outbox(entry, now)
  local member = cjson.encode(entry)
  redis.call('ZADD', Q.outbox, now, member)
  table.insert(outboxed, member)
end

-- Step `r` (link `link`) ended in `state` (`error_json`: its error, or nil): release the
-- steps waiting for it if it succeeded, else end them (and theirs) as cancelled. A step of
-- another queue gets the news through the outbox: {k = 'j' (joined) or 'e' (ended), q =
-- its queue, id, p = this step's number, e = the cascade error}.
local function steps_after(link, state, error_json, now)
  local work = { { link, state, error_json } }
  while #work > 0 do
    local item = table.remove(work)
    local l, ended_as = item[1], item[2]
    local cascade = ended_as ~= 'succeeded' and cascade_json(l, ended_as, item[3]) or nil
    for _, next_step in ipairs(l['then']) do
      local queue, id = next_step[1], l.wf .. STEP_SEPARATOR .. next_step[2]
      if queue ~= l.queue then
        to_outbox({ k = cascade and 'e' or 'j', q = queue, id = id, p = l.n, e = cascade }, now)
      elseif not cascade then
        join(id, l.n, false, now)
      else
        local r = load(id)
        if r and r.state == 'waiting' then
          unlink(id, r)
          store_end(result_of(id), id, r, 'cancelled', now, 'error', cascade)
          forget(id, r, now)
          local later = link_of(r)
          if later then table.insert(work, { later, 'cancelled', cascade }) end
        end
      end
    end
  end
end

-- Store the end of a task (store_end) and, for a workflow step, what follows from it.
local function record_end(result_key, id, r, state, now, field, value)
  store_end(result_key, id, r, state, now, field, value)
  local link = link_of(r)
  if link then steps_after(link, state, field == 'error' and value or nil, now) end
end

-- Expiry --------------------------------------------------------------------------------
-- A task with `expires` has "x<id>" in Q.expiry, scored with the time it must start by
-- (removed when it starts); one with a `deadline` has "d<id>", scored with its deadline,
-- until it ends (-1 once the deadline passed while it ran; 0 when a retry comes after it:
-- the next claim ends it). Claims end due ones `expired` (expire_due) and never start a
-- task past its time (past_time); the enqueue writes them (note_times). These times do
-- not wake sleeping workers (with many tasks they would come every few milliseconds): a
-- claim ends what is due, and an idle worker claims at least once per wake safety cap.

local expired = {}  -- flat (id, task name, reason) of the tasks this call ended expired
local NOT_STARTED = 'not started by its expiry'
local PAST_DEADLINE = 'its deadline passed before an attempt could start'

-- Write the expiry and deadline of a new task (durations from now in its flow).
local function note_times(id, r, now)
  local f = flow_of(r)
  if not f then return end
  for _, kind in ipairs({ 'x', 'd' }) do
    if f[kind] then redis.call('ZADD', Q.expiry, now + tonumber(f[kind]), kind .. id) end
  end
end

-- Why task `id` may not start now (nil: it may).
local function past_time(id, r, now)
  local f = flow_of(r)
  if not f or not (f.x or f.d) then return nil end
  local at = redis.call('ZMSCORE', Q.expiry, 'x' .. id, 'd' .. id)
  local x, d = tonumber(at[1]), tonumber(at[2])
  if x and x <= now then return NOT_STARTED end
  if d and d <= now then return PAST_DEADLINE end
  return nil
end

-- End `id` as expired: its result says why; the steps after a workflow step follow.
local function expire(id, r, now, reason)
  unlink(id, r)
  local f = flow_of(r)
  record_end(result_of(id), id, r, 'expired', now, 'error', cjson.encode({
    type = EXPIRED_ERROR_TYPE, message = 'task ' .. id .. ' expired: ' .. reason, traceback = '' }))
  forget(id, r, now)
  count('expired', now)
  table.insert(expired, id)
  table.insert(expired, f and f.name or '')
  table.insert(expired, reason)
end

-- End the tasks whose expiry or deadline came (at most 100 per call); a running task's
-- deadline is marked past (-1): its attempt goes on, no retry starts.
local function expire_due(now)
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', Q.expiry, 0, now, 'LIMIT', 0, 100)) do
    local kind, id = string.sub(member, 1, 1), string.sub(member, 2)
    local r = load(id)
    if r and r.state ~= 'active' and r.state ~= 'failed' then
      expire(id, r, now, kind == 'x' and NOT_STARTED or PAST_DEADLINE)
    elseif r and kind == 'd' then
      redis.call('ZADD', Q.expiry, -1, member)
    else
      redis.call('ZREM', Q.expiry, member)
    end
  end
end

-- Unique tasks and debounce --------------------------------------------------------------
-- Q.unique maps a unique key to the task holding it: until it ends ('d'), or until it
-- starts ('s'); an enqueue meanwhile stores nothing and answers with that task. Q.debounce
-- maps a debounce key to its last call while it has not started: the next call with the
-- key ends it cancelled (superseded) and takes its place, due a debounce later.

-- The task holding the unique key of new task `r` (its record and id), or nil.
local function unique_holder(id, r)
  local f = flow_of(r)
  if not f or not f.u then return nil end
  local holder = redis.call('HGET', Q.unique, f.u[1])
  local h = holder and holder ~= id and load(holder)
  if not h or h.state == 'failed' then return nil end
  if f.u[2] == 's' and tonumber(h.deliveries) > 0 then return nil end  -- it started
  return h, holder
end

-- Take the unique and debounce keys of new task `id`; a call it debounces ends cancelled.
-- Returns the time it is due at the earliest (a debounce after now), or nil.
local function take_keys(id, r, now)
  local f = flow_of(r)
  if not f then return nil end
  if f.u then redis.call('HSET', Q.unique, f.u[1], id) end
  if not f.b then return nil end
  local previous = redis.call('HGET', Q.debounce, f.b[1])
  local p = previous and previous ~= id and load(previous)
  if p and tonumber(p.deliveries) == 0 and p.state ~= 'failed' and p.state ~= 'active' then
    unlink(previous, p)
    record_end(result_of(previous), previous, p, 'cancelled', now, 'error', cjson.encode({
      type = SUPERSEDED_ERROR_TYPE, traceback = '',
      message = 'task ' .. previous .. ' was debounced: task ' .. id .. ' replaced it' }))
    forget(previous, p, now)
  end
  redis.call('HSET', Q.debounce, f.b[1], id)
  return now + tonumber(f.b[2])
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
      emit('started', id, r, worker)
      zadd(Q.active, holder, id)
      local f = flow_of(r)
      if f then  -- it started: it no longer expires, is no longer debounced
        if f.x then zrem(Q.expiry, 'x' .. id) end
        if f.u and f.u[2] == 's' then release_key(Q.unique, f.u[1], id) end
        if f.b then release_key(Q.debounce, f.b[1], id) end
      end
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

-- Tasks one hand-off takes from pending at most before it leaves the rest to a claim.
local HAND_OFF_TRIES = 100

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
      local id, stop, tries = nil, false, 0
      while not id and not stop do  -- the first task that may start (the others are parked)
        flush()
        tries = tries + 1
        if tries > HAND_OFF_TRIES then  -- a long run of limited tasks: a claim goes on
          wake()
          break
        end
        local popped = redis.call('ZPOPMIN', Q.pending, 1)
        if #popped == 0 then break end
        id = member_id(popped[1])
        local r = load(id)
        if r and past_time(id, r, now) then
          redis.call('ZADD', Q.pending, popped[2], popped[1])  -- a claim ends it expired
          wake()
          id, stop = nil, true
        elseif r and admit(id, r, now) then
          id = nil
        end
        if r and id then note_start(r) end
      end
      if not id then
        redis.call('LPUSH', Q.idle, worker)
        break
      end
      local holder = renew_holder(worker, now, tonumber(lease_ms))
      local taken = lease({ id }, worker, holder, now)
      if #taken == 1 then
        local inbox = inbox_of(worker)
        local deadline = now + tonumber(lease_ms)
        local next_delay = wake_delay(worker, now)  -- when it waits again
        redis.call('RPUSH', inbox, holder .. '|' .. deadline .. '|' .. next_delay .. '|' .. #id
          .. '|' .. id .. pack(records[id]))
        redis.call('PEXPIRE', inbox, UNBLOCK_TTL_MS)
        redis.call('HSET', Q.workers, waiting_mark(worker), 'h')
      end
    elseif mark then
      redis.call('HDEL', Q.workers, waiting_mark(worker))
    end
  end
  fair_started()
  flush()
end

-- Enqueue -------------------------------------------------------------------------------

local ENQUEUE_ARGS = 8  -- id, envelope, payload, priority, eta, delay, result ttl, nonce

-- Store tasks: ARGV-style list `args` from index `from` on, ENQUEUE_ARGS per task; the
-- j-th task's result key is KEYS[N + key_at + j - 1]. Returns one reply per task:
-- {1, state} for a new task (or a re-send of the call that stored it), {0, state, result
-- TTL} for a duplicate of an unfinished task, {0, state, result TTL, id} when task `id`
-- holds its unique key (unique tasks).
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
      local envelope = args[i + 1]
      local r = { state = '', priority = tostring(tonumber(args[i + 3]) or 0), position = '',
        retried = '0', deliveries = '0', lost = '0', holder = '', worker = '',
        started = '', ttl = tostring(tonumber(args[i + 6]) or 0), nonce = nonce,
        envelope = tostring(#envelope), body = envelope .. args[i + 2] }
      local held, holder = unique_holder(id, r)
      if held then
        replies[j] = { 0, held.state, tonumber(held.ttl) or 0, holder }
      else
      if current then
        unlink(id, current)
        forget(id, current, now)
      end
      stored = stored + 1
      table.insert(results, KEYS[N + key_at + j - 1])
      table.insert(results, trail_of(id))  -- an earlier run's, kept with its result
      index_groups(id, envelope)
      note_times(id, r, now)
      local due = tonumber(args[i + 4])
      local delay = tonumber(args[i + 5])
      local debounced = take_keys(id, r, now)
      if debounced then
        if delay and delay > 0 then due = now + delay end
        delay = nil
        due = math.max(due or now, debounced)
      end
      local link = link_of(r)
      if link and (tonumber(link.wait) or 0) > 0 then
        local when = nil  -- counted from the step's release
        if delay and delay > 0 then when = 'd' .. delay elseif due then when = 'e' .. due end
        make_waiting(id, r, now, tonumber(link.wait), when)
        replies[j] = { 1, 'waiting' }
      else
        if delay and delay > 0 then due = now + delay end
        if due and due > now then
          schedule(id, r, due)
          replies[j] = { 1, 'scheduled' }
        else
          make_pending(id, r, true)
          replies[j] = { 1, 'pending' }
        end
      end
      emit('enqueued', id, r, replies[j][2])
      end  -- held
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
