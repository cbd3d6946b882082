-- release: hand leased tasks back at once (worker shutdown, prefetched but not started,
-- a claim whose fetch was cancelled).
--
-- KEYS[1..N]  the queue's keys (prelude order); KEYS[N+j] result:<id> of the j-th task
-- ARGV[1] worker id   ARGV[2..] pairs: task id, lease number (j-th pair: the j-th task)
-- Returns how many tasks were released (or ended as cancelled, if that was requested);
-- {count, members} when a cancelled workflow step wrote effects on steps of other queues
-- into the outbox (the caller delivers them).
--
-- Invariants: only leases held by ARGV[1] under those numbers are released; a released
-- task returns to pending at its old FIFO position and counts neither as lost nor as
-- failed (its `deliveries` count stays: lease numbers are never reused). Idempotent: a
-- re-send finds the leases no longer held and changes nothing. The worker's holder goes
-- with its last lease.
local worker = ARGV[1]
local now = now_ms()
local ids = {}
for i = 2, #ARGV, 2 do table.insert(ids, ARGV[i]) end
load_many(ids)
local released = 0
for i = 2, #ARGV, 2 do
  local id, delivery = ARGV[i], ARGV[i + 1]
  local r = load(id)
  if holds(r, worker, delivery, now) then
    leave_active(id, r)
    if cancel_requested(id) then
      record_end(KEYS[N + i / 2], id, r, 'cancelled', now)
      forget(id, r, now)
    else
      make_pending(id, r, false)
    end
    released = released + 1
  end
end
flush()
if released > 0 then drop_empty_holder(worker, now) end
wake_if_ready()
if #outboxed > 0 then return { released, outboxed } end
return released
