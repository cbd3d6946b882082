-- cancel: remove a pending or scheduled task, or flag and announce a running one.
--
-- KEYS[1..N]  the queue's keys (prelude order); KEYS[N+1] result:<id>
-- ARGV[1] task id   ARGV[2] announcement channel   ARGV[3] call nonce
-- Returns 'cancelled', 'requested', 'finished' or 'not_found'; {'cancelled', members}
-- when cancelling a workflow step wrote effects on steps of other queues into the outbox
-- (the caller delivers them).
--
-- Invariants: a pending/scheduled/waiting/limited task ends as cancelled in one step (result hash for its
-- result TTL). An active task is put in the cancel set and its id published; its worker
-- settles it (settle ends it as cancelled), or, if its holder has expired, it ends as
-- cancelled here and is never delivered again. A re-send answers as the first send did:
-- the task's tombstone names the call that cancelled it; a flag is set once.
local id, nonce = ARGV[1], ARGV[3]
local now = now_ms()
local r = load(id)
if not r and ended_by(id, nonce, now) then return 'cancelled' end
local state = r and r.state
if state == 'pending' or state == 'scheduled' or state == 'waiting' or state == 'limited'
    or (state == 'active' and not holder_alive(r.holder, now)) then
  unlink(id, r)
  record_end(KEYS[N + 1], id, r, 'cancelled', now)
  forget(id, r, now, nonce)
  flush()
  if #outboxed > 0 then return { 'cancelled', outboxed } end
  return 'cancelled'
end
if state == 'active' then
  redis.call('SADD', Q.cancel, id)
  redis.call('PUBLISH', ARGV[2], id)
  return 'requested'
end
if state == 'failed' or redis.call('EXISTS', KEYS[N + 1]) == 1 then
  return 'finished'
end
return 'not_found'
