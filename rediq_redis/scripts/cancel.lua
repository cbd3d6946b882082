-- cancel: remove a pending or scheduled task, or flag and announce a running one.
--
-- KEYS[1..N]  the queue's keys (prelude order); KEYS[N+1] result:<id>; KEYS[N+2] done:<id> (a channel)
-- KEYS[N+3]   reply key of this call (optional: a re-send answers as the first send did)
-- ARGV[1] task id   ARGV[2] announcement channel
-- Returns 'cancelled', 'requested', 'finished' or 'not_found'.
--
-- Invariants: a pending/scheduled task ends as cancelled in one step (result hash for its
-- result_ttl_s). An active task is put in the cancel set and its id published; its worker
-- settles it (ack_failure ends it as cancelled), or, if its lease has already expired, it
-- ends as cancelled here and is never delivered again.
local id = ARGV[1]

local function main()
  local state = redis.call('HGET', Q.state, id)
  local now = now_ms()
  if state == 'pending' or state == 'scheduled' then
    unlink(id)
    record_end(RESULT, id, result_ttl(id), 'cancelled', now)
    forget(id)
    return 'cancelled'
  end
  if state == 'active' then
    local deadline = tonumber(redis.call('ZSCORE', Q.active, id))
    if deadline and deadline <= now then
      unlink(id)
      record_end(RESULT, id, result_ttl(id), 'cancelled', now)
      forget(id)
      return 'cancelled'
    end
    redis.call('SADD', Q.cancel, id)
    redis.call('PUBLISH', ARGV[2], id)
    return 'requested'
  end
  if state == 'failed' or redis.call('EXISTS', RESULT) == 1 then
    return 'finished'
  end
  return 'not_found'
end

return replay(KEYS[N + 3], main)
