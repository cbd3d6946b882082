-- claim: one fetch step for one queue. Ends the tasks whose expiry or deadline came,
-- promotes due scheduled tasks, moves the lanes whose rate has a token again back to
-- pending, reclaims the leases of expired holders, and leases up to `limit` ready tasks
-- that may start (their limits allow it) in priority order (lower score first, FIFO among
-- equal priorities by position) to the worker's holder; ready tasks a limit stops are
-- parked (`limited`) as they come.
--
-- KEYS[1..N]  the queue's keys (prelude order); KEYS[N+1] the worker's unblock list
-- ARGV[1] worker id   ARGV[2] limit   ARGV[3] lease ms   ARGV[4] max lost leases
-- ARGV[5] dead-letter TTL ms   ARGV[6] dead-letter max count   ARGV[7] batch bound
-- ARGV[8] call nonce
-- Returns {now, next_delay_ms (-1: nothing scheduled or leased, or another worker keeps
--          time: wake_delay() in the prelude), holder, leased,
--          exhausted, cancelled, broken, handed, stale, expired} where leased is a flat
--          list of (id, record as read, where its body starts (0-based), envelope length,
--          retried, deliveries, lost), holder the
--          worker's holder number (the leases' token; its deadline is now + lease ms),
--          exhausted / cancelled are ids of expired leases the caller must finish with
--          settle / cancel (these need per-task keys this script cannot declare), and
--          broken a flat list of (id, reason) of ready tasks whose record was unreadable
--          (dead-lettered here) or missing (dropped), and handed the tasks an enqueue
--          handed to this worker that it has not taken yet (its unblock list: see
--          hand_off() in the prelude), which count against `limit`, stale the
--          members of the queue's outbox older than OUTBOX_GRACE_MS (a workflow
--          step's effect on a step of another queue whose delivery was lost) and those
--          this call wrote (the steps after a step it ended expired), and expired a flat
--          list of (id, task name, reason) of the tasks it ended `expired`.
--
-- Invariants: an expired lease counts as lost (`lost` +1); retried failures never do.
-- An expired lease of a task that lost its lease `max lost` times, or whose cancellation
-- was requested, stays in `active` under its dead holder until the caller finishes it --
-- so a crash between the two steps loses nothing. Every other expired lease returns to
-- pending at its old position (its slots freed: I8). If ready tasks remain after leasing,
-- a wake token is pushed so another idle worker wakes. A re-send of this call (same
-- nonce) leases nothing more: it answers with the leases the first send made that the
-- worker still holds. A paused queue (pause.lua) leases nothing and pushes no wake token.
-- No task starts past its expiry or deadline (I9).
local worker, limit, lease_ms = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local max_lost, bound, nonce = tonumber(ARGV[4]), tonumber(ARGV[7]), ARGV[8]
local LAST = '>' .. worker  -- workers field: "<nonce>|<id>,<id>..." of its last claim

local function row(leased, id, r)
  table.insert(leased, id)
  table.insert(leased, r.raw)  -- as read: Python takes the body from `at` on
  table.insert(leased, r.at - 1)
  table.insert(leased, tonumber(r.envelope))
  table.insert(leased, tonumber(r.retried))
  table.insert(leased, tonumber(r.deliveries))
  table.insert(leased, tonumber(r.lost))
end

local function next_delay(now)
  local earliest = earliest_deadline()
  if earliest == nil then return -1 end
  return math.max(0, earliest - now)
end

local now = now_ms()

-- A re-send: the leases the first send made, as far as the worker still holds them.
local last = redis.call('HGET', Q.workers, LAST)
if last and string.sub(last, 1, #nonce + 1) == nonce .. '|' then
  local ids = {}
  for id in string.gmatch(string.sub(last, #nonce + 2), '[^,]+') do table.insert(ids, id) end
  load_many(ids)
  local leased = {}
  local n = holder_of(worker, now)
  for _, id in ipairs(ids) do
    if holds(load(id), worker, '', now) then row(leased, id, load(id)) end
  end
  return { now, next_delay(now), n or '', leased, {}, {}, {}, {} }
end

-- The worker no longer waits (wait.lua registered it): its registration goes, and what
-- was handed to it since (still in its list) is delivered by this claim.
local handed = {}
local mark = redis.call('HGET', Q.workers, waiting_mark(worker))
if mark then
  if mark ~= 'h' then redis.call('LREM', Q.idle, 0, worker) end
  redis.call('HDEL', Q.workers, waiting_mark(worker))
  if mark == 'h' then
    -- only what the worker still holds (a claim may have reclaimed it meanwhile)
    local n = holder_of(worker, now)
    for _, item in ipairs(redis.call('LRANGE', KEYS[N + 1], 0, -1)) do
      local from, id = handed_item(item)
      local r = id and load(id)
      if r and from == n and r.state == 'active' and r.holder == n then
        table.insert(handed, item)
      end
    end
    redis.call('DEL', KEYS[N + 1])
  end
end
limit = math.max(0, limit - #handed)

expire_due(now)
local due = redis.call('ZRANGEBYSCORE', Q.scheduled, '-inf', now, 'LIMIT', 0, bound)
take_each(Q.scheduled, due, function(id, r) make_pending(id, r, true) end)
wake_due_lanes(now)

local exhausted, cancelled = {}, {}
local budget = bound
for _, n in ipairs(redis.call('ZRANGEBYSCORE', Q.holders, '-inf', '(' .. now, 'LIMIT', 0, 10)) do
  if budget <= 0 then break end
  local ids = redis.call('ZRANGEBYSCORE', Q.active, n, n, 'LIMIT', 0, budget)
  budget = budget - #ids
  load_many(ids)
  local untaken = untaken_handoffs(n)
  local kept = 0
  for _, id in ipairs(ids) do
    local r = load(id)
    if not r then
      zrem(Q.active, id)
    elseif untaken[id] then
      -- handed to a waiting worker that never took it: not a delivery, not a lost lease
      r.deliveries = tostring(tonumber(r.deliveries) - 1)
      leave_active(id, r)
      make_pending(id, r, false)
    elseif cancel_requested(id) then
      table.insert(cancelled, id)
      kept = kept + 1
    elseif tonumber(r.lost) + 1 >= max_lost then
      table.insert(exhausted, id)
      kept = kept + 1
    else
      r.lost = tostring(tonumber(r.lost) + 1)
      leave_active(id, r)
      make_pending(id, r, false)
    end
  end
  if kept == 0 and budget > 0 then drop_holder(n) end
end
flush()

local leased, holder, broken = {}, '', {}

-- A ready task whose record is unreadable goes to the dead-letter set as it is (its raw
-- value as the body), with the reason; one without a record is dropped.
local function reject(id, now)
  local raw = redis.call('HGET', Q.tasks, id)
  local reason = 'task ' .. id .. ': no record stored for it'
  if raw then
    reason = 'task ' .. id .. ': its record is unreadable'
    local r = { state = 'failed', priority = '0', position = '', retried = '0',
      deliveries = '0', lost = '0', holder = '', worker = '', started = '', ttl = '0',
      nonce = '', envelope = '0', body = raw }
    dead_letter(id, r, cjson.encode({ type = 'MalformedMessageError', message = reason,
      traceback = '' }), now)
    emit('dead-lettered', id, r, reason)
    count('failed', now, 1)
  end
  table.insert(broken, id)
  table.insert(broken, reason)
end
local paused = redis.call('EXISTS', Q.paused) == 1  -- pause.lua
if limit > 0 and not paused then
  -- the first `limit` tasks that may start; the others are parked as they come (at most
  -- `bound` taken from pending in all)
  local ids, more, popped_n, unparked_before = {}, true, 0, unparked
  while #ids < limit and more and popped_n < bound do
    flush()  -- tasks moved back to pending by this call are in it
    local want = math.min(limit - #ids, bound - popped_n)
    local popped = redis.call('ZPOPMIN', Q.pending, want)
    popped_n = popped_n + #popped / 2
    local batch = {}
    for i = 1, #popped, 2 do table.insert(batch, member_id(popped[i])) end
    load_many(batch)
    for _, id in ipairs(batch) do
      local r = load(id)
      local too_late = r and past_time(id, r, now)
      if not r then
        table.insert(ids, id)  -- lease() leaves it to reject()
      elseif too_late then
        expire(id, r, now, too_late)
      elseif not admit(id, r, now) then
        table.insert(ids, id)
        note_start(r)
      end
    end
    -- go on while pending may hold more: it was not emptied, or this batch moved tasks
    -- back to it (a lane's next task, as a slot or a token allowed)
    more = #popped == 2 * want or unparked > unparked_before
    unparked_before = unparked
  end
  fair_started()
  if #ids > 0 then
    holder = renew_holder(worker, now, lease_ms)
    local taken, missing = lease(ids, worker, holder, now)
    for _, id in ipairs(taken) do row(leased, id, load(id)) end
    for _, id in ipairs(missing) do reject(id, now) end
    redis.call('HSET', Q.workers, LAST, nonce .. '|' .. table.concat(taken, ','))
    flush()
  end
  -- tasks left ready (a full claim, the bound, a lane's next task): another worker's turn
  if redis.call('EXISTS', Q.pending) == 1 then wake() end
elseif made_ready and not paused then
  wake()
end

prune_dead(now, tonumber(ARGV[5]), tonumber(ARGV[6]))
flush()
-- Outbox members whose first delivery was lost (the caller delivers them again).
local stale = redis.call('ZRANGEBYSCORE', Q.outbox, '-inf', now - OUTBOX_GRACE_MS, 'LIMIT', 0, 100)
for _, member in ipairs(outboxed) do table.insert(stale, member) end  -- expired steps' effects
-- a worker that leased fewer than `limit` waits next: it may keep time (wake_delay())
local delay = (#leased / 7 + #handed < limit) and wake_delay(worker, now) or next_delay(now)
return { now, delay, holder, leased, exhausted, cancelled, broken, handed, stale, expired }
