-- cron_forget: remove a stored schedule and its state (its past runs stay ordinary tasks).
--
-- KEYS[1..N]  the queue's keys (prelude order)
-- ARGV[1] schedule name
-- Returns 1, or 0 when no schedule of that name was stored on this queue.
--
-- Invariants: every cron hash and set loses the name together.
local name = ARGV[1]
local found = redis.call('HDEL', Q.cron, name)
for _, key in ipairs({ Q.cron_tick, Q.cron_task, Q.cron_seen }) do
  redis.call('HDEL', key, name)
end
redis.call('SREM', Q.cron_paused, name)
return found
