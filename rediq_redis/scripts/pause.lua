-- pause: stop workers from leasing tasks of this queue (claim.lua checks the flag).
--
-- KEYS[1..N]  the queue's keys (prelude order)
-- ARGV: none
-- Returns 1 if the queue was running and is now paused, 0 if it was already paused.
--
-- Invariants: nothing moves. Pending, scheduled and active tasks stay where they are;
-- running tasks finish and settle as usual; the flag lives in Redis, so it outlasts any
-- worker, and only resume.lua clears it.
if redis.call('EXISTS', Q.paused) == 1 then return 0 end
redis.call('SET', Q.paused, now_ms())
return 1
