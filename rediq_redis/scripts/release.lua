-- release: hand leased tasks back at once (worker shutdown, prefetched but not started,
-- a claim whose fetch was cancelled).
--
-- KEYS[1..N]  the queue's keys (prelude order); then KEYS[N + 2j - 1], KEYS[N + 2j]
-- are result:<id> and done:<id> (a channel) of the j-th task (j = 1..n)
-- ARGV[1] worker id   ARGV[2..] pairs: task id, lease number (j-th pair: the j-th task)
-- Returns how many tasks were released (or ended as cancelled, if that was requested).
--
-- Invariants: only leases held by ARGV[1] under those numbers are released; a released
-- task returns to pending at its old FIFO position and counts neither as lost nor as
-- failed (its `deliveries` count stays: lease numbers are never reused). Idempotent: a
-- re-send finds the leases no longer held and changes nothing.
local worker = ARGV[1]
local count = 0
local now = nil
for i = 2, #ARGV, 2 do
  local id, delivery = ARGV[i], ARGV[i + 1]
  if holds(worker, id, delivery) then
    redis.call('ZREM', Q.active, id)
    if redis.call('SISMEMBER', Q.cancel, id) == 1 then
      now = now or now_ms()
      local result_key = task_keys(i / 2)
      record_end(result_key, id, result_ttl(id), 'cancelled', now)
      forget(id)
    else
      redis.call('HDEL', Q.owner, id)
      make_pending(id, false)
    end
    count = count + 1
  end
end
return count
