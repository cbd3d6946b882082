-- resume: let workers lease tasks of a paused queue again.
--
-- KEYS[1..N]  the queue's keys (prelude order)
-- ARGV: none
-- Returns 1 if the queue was paused and now runs, 0 if it was not paused.
--
-- Invariants: nothing moves; if ready tasks wait, a wake token is pushed so an idle worker
-- claims them at once (a paused claim pushes none).
if redis.call('EXISTS', Q.paused) == 0 then return 0 end
redis.call('DEL', Q.paused)
if redis.call('ZCARD', Q.pending) > 0 then wake() end
return 1
