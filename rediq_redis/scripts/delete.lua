-- delete: forget a task that is not running (pending, scheduled, dead or finished).
--
-- KEYS[1..N]  the queue's keys (prelude order); KEYS[N+1] result:<id>
-- ARGV[1] task id   ARGV[2] call nonce
-- Returns 1 if something was deleted, 0 if the task is running or unknown; {1, members}
-- when deleting a workflow step wrote effects on steps of other queues into the outbox
-- (the caller delivers them).
--
-- Invariants: an active task is never deleted (cancel it instead); the task's record,
-- error, group entries, result and trail (progress, logs) go in one step; waiters of a
-- deleted unfinished task are told (I6). A re-send answers as the first send did (the
-- task's tombstone names the call that deleted it). Deleting an unfinished workflow step ends the steps waiting
-- for it as cancelled (those of other queues through the outbox).
local id, nonce = ARGV[1], ARGV[2]
local now = now_ms()
local r = load(id)
if not r and ended_by(id, nonce, now) then return 1 end
if r and r.state == 'active' then return 0 end
local found = 0
if r then
  unlink(id, r)
  forget(id, r, now, nonce)
  emit('deleted', id, r, r.state)
  if r.state ~= 'failed' then
    announce_end(id, 'deleted')
    local link = link_of(r)  -- a workflow step: the steps after it will never run
    if link then steps_after(link, 'deleted', nil, now) end
  end
  flush()
  found = 1
end
found = math.max(found, redis.call('DEL', KEYS[N + 1], trail_of(id)) > 0 and 1 or 0)
if #outboxed > 0 then return { found, outboxed } end
return found
