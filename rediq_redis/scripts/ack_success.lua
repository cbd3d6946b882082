-- ack_success: a leased task succeeded.
--
-- KEYS[1..N]  the queue's keys (prelude order); KEYS[N+1] result:<id>; KEYS[N+2] done:<id> (a channel)
-- KEYS[N+3]   reply key of this call (optional: see replay() in the prelude)
-- ARGV[1] worker id   ARGV[2] task id   ARGV[3] lease number ('' = any)
-- ARGV[4] serialized result
-- Returns 1, or 0 if the worker no longer holds that lease (nothing changes then). A
-- re-send of a call that stored the result answers 1 again.
--
-- Invariants: only the lease holder settles. The result is kept for the task's
-- result_ttl_s (result hash); with TTL 0 only the counter changes and
-- no key of the task remains (but the reply key, until the replay window ends).
local worker, id = ARGV[1], ARGV[2]

local function main()
  if not holds(worker, id, ARGV[3]) then return 0 end
  redis.call('ZREM', Q.active, id)
  local now = now_ms()
  count('succeeded', now)
  record_end(RESULT, id, result_ttl(id), 'succeeded', now, 'result', ARGV[4])
  forget(id)
  return 1
end

return replay(KEYS[N + 3], main)
