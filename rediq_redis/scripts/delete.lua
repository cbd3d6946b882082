-- delete: forget a task that is not running (pending, scheduled, dead or finished).
--
-- KEYS[1..N]  the queue's keys (prelude order); KEYS[N+1] result:<id>; KEYS[N+2] done:<id> (a channel)
-- KEYS[N+3]   reply key of this call (optional: a re-send answers as the first send did)
-- ARGV[1] task id
-- Returns 1 if something was deleted, 0 if the task is running or unknown.
--
-- Invariants: an active task is never deleted (cancel it instead); all of the task's keys
-- and fields go in one step; waiters of a deleted unfinished task are told (I6).
local id = ARGV[1]

local function main()
  local state = redis.call('HGET', Q.state, id)
  if state == 'active' then return 0 end
  local found = 0
  if state then
    unlink(id)
    forget(id)
    if state ~= 'failed' then announce_end(id, 'deleted') end
    found = 1
  end
  return math.max(found, redis.call('DEL', RESULT) > 0 and 1 or 0)
end

return replay(KEYS[N + 3], main)
