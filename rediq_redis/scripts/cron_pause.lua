-- cron_pause: pause (ARGV[2] = '1') or resume (ARGV[2] = '0') a stored schedule.
--
-- KEYS[1..N]  the queue's keys (prelude order)
-- ARGV[1] schedule name   ARGV[2] '1' to pause, '0' to resume
-- Returns 1, or 0 when no schedule of that name is stored on this queue.
--
-- Invariants: `cron_paused` only holds names of stored schedules.
local name = ARGV[1]
if redis.call('HEXISTS', Q.cron, name) == 0 then return 0 end
if ARGV[2] == '1' then
  redis.call('SADD', Q.cron_paused, name)
else
  redis.call('SREM', Q.cron_paused, name)
end
return 1
