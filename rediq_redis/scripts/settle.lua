-- settle: how a batch of attempts of one queue ended -- success (result stored for its
-- TTL), failure to retry later, final failure (dead letter), or, if its cancellation was
-- requested, cancelled. Also used by fetch to dead-letter unusable data and tasks whose
-- lease was lost too often (worker '').
--
-- KEYS[1..N]  the queue's keys (prelude order); KEYS[N+j] result:<id> of the j-th task
-- ARGV[1] worker id, or '' to finish *expired* leases (whoever held them; counted as lost)
-- ARGV[2] dead-letter TTL ms   ARGV[3] dead-letter max count
-- ARGV[4..]   SETTLE_ARGS per task: id, lease number ('' = any), kind ('s' success,
--             'r' retry, 'f' final failure; followed by 't' when the attempt reported
--             progress or logs), result or error JSON, retry delay ms ('' if none),
--             settlement key (it names this settlement: a re-send carries it again),
--             the attempt's run time ms ('' if it did not run: counted in the minute's
--             run time, the queue's metrics history)
-- Returns one answer per task: 1 (stored, or retry scheduled), 2 (dead-lettered),
-- 3 (cancelled), 0 (lease not held: nothing changed); then, if a workflow step's end wrote
-- effects on steps of other queues into the outbox, one more element: those members (the
-- caller delivers them).
--
-- Invariants: only the lease holder (or, with '', nobody alive: the holder expired)
-- settles. A retry increments `retried` and the `retried` counter, never `lost`; a final
-- failure keeps the task's record and error in the dead-letter set (bounded by TTL and
-- count) and records the error in its result hash for its result TTL. A re-send (lost
-- reply) finds the task ended or moved on under this worker's lease number and answers
-- as the first send did, changing nothing. The worker's holder goes with its last lease.
local worker, dead_ttl, dead_max = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local SETTLE_ARGS = 7
local now = now_ms()
local named = string.gsub(worker, '|', '/')

local ids = {}
for i = 4, #ARGV, SETTLE_ARGS do table.insert(ids, ARGV[i]) end
load_many(ids)

-- What a re-send of an answered settlement finds: the task ended within the replay
-- window, or moved on from this worker's lease (retried or dead-lettered).
local missing = {}
for _, id in ipairs(ids) do
  if not load(id) then table.insert(missing, id) end
end
local ended = tombstones(missing, now)
local function answered(id, r, delivery, key)
  if not r then
    return (ended[id] and string.sub(ended[id], 1, 4) == string.sub(tomb_value(key, ''), 1, 4))
      and 1 or 0
  end
  if worker == '' or r.worker ~= named or (delivery ~= '' and r.deliveries ~= delivery) then
    return 0
  end
  if r.state == 'failed' then return 2 end
  if r.state == 'pending' or r.state == 'scheduled' then return 1 end
  return 0
end

-- Out of memory (maxmemory, noeviction), Redis refuses a script's writes that need memory
-- until the script has written something: the first write is the removal of the settled
-- leases from `active`, so that settling (which frees memory) goes on.
-- held[i]: the lease of the settlement at ARGV[i] is held (decided once, here).
local held_ids, held = {}, {}
for i = 4, #ARGV, SETTLE_ARGS do
  local r = load(ARGV[i])
  if worker == '' then
    held[i] = r and r.state == 'active' and not holder_alive(r.holder, now)
  else
    held[i] = holds(r, worker, ARGV[i + 1], now)
  end
  if held[i] then table.insert(held_ids, ARGV[i]) end
end
if #held_ids > 0 then send_chunks('ZREM', Q.active, held_ids, 500) end

local answers = {}
local counts = { succeeded = 0, retried = 0, failed = 0 }
local runs, run_ms = 0, 0
local dead = false
local j = 0
for i = 4, #ARGV, SETTLE_ARGS do
  j = j + 1
  local id, delivery, kind, value = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local key = ARGV[i + 5]
  local r = load(id)
  -- (an id settled twice in one batch: its second settlement finds it moved on)
  if not (held[i] and r and r.state == 'active') then
    answers[j] = answered(id, r, delivery, key)
  else
    local result_key = KEYS[N + j]
    -- a trail (progress, logs) of this attempt or of an earlier lease ends with the task
    local trail = r.deliveries ~= '1'
    if #kind > 1 then trail, kind = true, string.sub(kind, 1, 1) end
    local ran = tonumber(ARGV[i + 6])
    if ran then runs, run_ms = runs + 1, run_ms + ran end
    leave_active(id, r)
    if worker == '' then r.lost = tostring(tonumber(r.lost) + 1) end
    if kind ~= 's' and cancel_requested(id) then
      record_end(result_key, id, r, 'cancelled', now)
      if trail then end_trail(id, r) end
      forget(id, r, now, key, true)
      answers[j] = 3
    elseif kind == 's' then
      record_end(result_key, id, r, 'succeeded', now, 'result', value)
      if trail then end_trail(id, r) end
      forget(id, r, now, key, true)
      counts.succeeded = counts.succeeded + 1
      answers[j] = 1
    elseif kind == 'r' then
      emit('retried', id, r, error_detail(value))
      r.retried = tostring(tonumber(r.retried) + 1)
      r.holder = ''
      redis.call('HSET', Q.errors, id, value)
      note_attempt(id, r, value, now)
      counts.retried = counts.retried + 1
      local delay = tonumber(ARGV[i + 4]) or 0
      -- a deadline before the retry: the retry is due at the deadline, when the claim
      -- ends the task expired (at once if it passed: no retry starts after it)
      local f = flow_of(r)
      local deadline = f and f.d and tonumber(redis.call('ZSCORE', Q.expiry, 'd' .. id))
      if deadline and deadline <= now then
        redis.call('ZADD', Q.expiry, 0, 'd' .. id)
        delay = 0
      elseif deadline and now + delay > deadline then
        delay = deadline - now
      end
      if delay > 0 then
        schedule(id, r, now + delay)
      else
        make_pending(id, r, true)
      end
      answers[j] = 1
    else
      record_end(result_key, id, r, 'failed', now, 'error', value)
      if trail then end_trail(id, r) end
      dead_letter(id, r, value, now)
      counts.failed = counts.failed + 1
      dead = true
      answers[j] = 2
    end
  end
end
for name, n in pairs(counts) do count(name, now, n) end
count_runs(now, runs, run_ms)
flush()
if worker ~= '' and #held_ids > 0 then drop_empty_holder(worker, now) end
if dead then
  prune_dead(now, dead_ttl, dead_max)
  flush()
end
wake_if_ready()
if #outboxed > 0 then table.insert(answers, outboxed) end
return answers
