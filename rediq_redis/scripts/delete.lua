-- delete: forget a task that is not running (pending, scheduled, dead or finished).
--
-- KEYS[1..16]  the queue's keys (prelude order); KEYS[17] result:<id>; KEYS[18] done:<id>
-- ARGV[1] task id
-- Returns 1 if something was deleted, 0 if the task is running or unknown.
--
-- Invariants: an active task is never deleted (cancel it instead); all of the task's keys
-- and fields go in one step.
local id = ARGV[1]
local state = redis.call('HGET', Q.state, id)
if state == 'active' then return 0 end
local found = 0
if state then
  unlink(id)
  forget(id)
  found = 1
end
return math.max(found, redis.call('DEL', KEYS[17], KEYS[18]) > 0 and 1 or 0)
