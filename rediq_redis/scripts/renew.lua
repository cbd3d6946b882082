-- renew: a worker's heartbeat in one queue -- moves the deadline of its holder, hence of
-- every lease it holds there, in one step.
--
-- KEYS[1..N]  the queue's keys (prelude order)
-- ARGV[1] worker id   ARGV[2] lease ms   ARGV[3..] pairs (task id, lease number) of
--             leases without a holder token, checked one by one (tools and tests)
-- Returns {holder, cancelled, lost}: the worker's live holder number ('' if it has none:
-- every lease named by an older token is lost), the ids of its tasks whose cancellation
-- was requested (the safety net for a missed announcement), and the flat (id, number)
-- pairs of ARGV[3..] it does not hold.
--
-- Invariants: only the worker's own live holder moves; an expired holder is never
-- renewed (a claim may be reclaiming its tasks). The cost does not grow with the number
-- of leases held. Idempotent: a re-send moves the same deadline again.
local worker, lease_ms = ARGV[1], tonumber(ARGV[2])
local now = now_ms()
local n, alive = holder_of(worker, now)
local holder, cancelled, lost = '', {}, {}
if alive then
  holder = n
  redis.call('ZADD', Q.holders, now + lease_ms, n)
  if redis.call('SCARD', Q.cancel) > 0 then
    local flagged = redis.call('SMEMBERS', Q.cancel)
    load_many(flagged)
    for _, id in ipairs(flagged) do
      local r = load(id)
      if r and r.holder == n then table.insert(cancelled, id) end
    end
  end
end
for i = 3, #ARGV, 2 do
  local id, delivery = ARGV[i], ARGV[i + 1]
  if not alive or not holds(load(id), worker, delivery, now) then
    table.insert(lost, id)
    table.insert(lost, delivery)
  end
end
return { holder, cancelled, lost }
