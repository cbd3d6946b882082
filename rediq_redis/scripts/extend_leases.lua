-- extend_leases: move the lease deadline of a worker's tasks in one queue.
--
-- KEYS[1..N]  the queue's keys (prelude order)
-- ARGV[1] worker id   ARGV[2] lease ms   ARGV[3..] pairs: task id, lease number
-- Returns a flat list of (task id, lease number) the worker must stop: lease lost (not
-- active, another holder, or a newer lease) or cancellation requested (the safety net for
-- a missed announcement).
--
-- Invariants: only leases held by ARGV[1] under those numbers move; nothing else changes.
-- Idempotent: a re-send moves the same deadlines again.
local worker, lease_ms = ARGV[1], tonumber(ARGV[2])
local deadline = now_ms() + lease_ms
local stop = {}
for i = 3, #ARGV, 2 do
  local id, delivery = ARGV[i], ARGV[i + 1]
  if holds(worker, id, delivery) then
    redis.call('ZADD', Q.active, 'XX', deadline, id)
    if redis.call('SISMEMBER', Q.cancel, id) == 1 then
      table.insert(stop, id)
      table.insert(stop, delivery)
    end
  else
    table.insert(stop, id)
    table.insert(stop, delivery)
  end
end
return stop
