-- cron_fire: fire one tick of a cron schedule. Compare-and-set the schedule's last fired
-- tick, then enqueue the tick's run exactly as enqueue.lua does (the prelude's
-- enqueue_tasks, the one code that writes every task).
--
-- KEYS        enqueue.lua's KEYS for one task (the queue's keys, result)
-- ARGV[1] schedule name   ARGV[2] tick in epoch ms, or '' to trigger now (no CAS)
-- ARGV[3..]   enqueue.lua's ARGV for one task
-- Returns {outcome, previous tick or ''}; outcome is 'fired', 'already' or 'paused'.
--
-- Invariants: a schedule's `cron_tick` only grows, so of any number of workers racing for
-- one tick exactly one enqueues its run (the others get 'already'). A paused schedule's
-- tick is consumed without a run. The run is an ordinary task; its id is derived from
-- (schedule, tick), so enqueue's deduplication guards a second time.

local name, tick = ARGV[1], tonumber(ARGV[2])
local previous = redis.call('HGET', Q.cron_tick, name) or ''
if tick then
  if previous ~= '' and tonumber(previous) >= tick then return { 'already', previous } end
  redis.call('HSET', Q.cron_tick, name, tick)
  if redis.call('SISMEMBER', Q.cron_paused, name) == 1 then return { 'paused', previous } end
end
local reply = enqueue_tasks(ARGV, 3, 1)[1]
if reply[1] == 0 then return { 'already', previous } end
redis.call('HSET', Q.cron_task, name, ARGV[3])
return { 'fired', previous }
