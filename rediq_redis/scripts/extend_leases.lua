-- extend_leases: move the lease deadline of a worker's tasks in one queue.
--
-- KEYS[1..N]  the queue's keys (prelude order)
-- ARGV[1] worker id   ARGV[2] lease ms   ARGV[3..] task ids
-- Returns the ids the worker must stop: lease lost (not active or another holder) or
-- cancellation requested (the safety net for a missed announcement).
--
-- Invariants: only leases held by ARGV[1] move; nothing else changes.
local worker, lease_ms = ARGV[1], tonumber(ARGV[2])
local deadline = now_ms() + lease_ms
local stop = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  if redis.call('ZSCORE', Q.active, id) and redis.call('HGET', Q.owner, id) == worker then
    redis.call('ZADD', Q.active, 'XX', deadline, id)
    if redis.call('SISMEMBER', Q.cancel, id) == 1 then table.insert(stop, id) end
  else
    table.insert(stop, id)
  end
end
return stop
