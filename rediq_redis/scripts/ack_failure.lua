-- ack_failure: a leased attempt failed -- retry it later, dead-letter it, or (if its
-- cancellation was requested) end it as cancelled. Also used by fetch to dead-letter
-- unusable data and tasks whose lease was lost too often.
--
-- KEYS[1..N]  the queue's keys (prelude order); KEYS[N+1] result:<id>; KEYS[N+2] done:<id> (a channel)
-- KEYS[N+3]   reply key of this call (optional: see replay() in the prelude)
-- ARGV[1] worker id, or '' to finish an *expired* lease (whoever held it; counted as lost)
-- ARGV[2] task id   ARGV[3] lease number ('' = any)   ARGV[4] error JSON
-- ARGV[5] retry delay in ms from now (server clock), or '' for a final failure
-- ARGV[6] dead-letter TTL ms   ARGV[7] dead-letter max count
-- Returns 1 (retry scheduled), 2 (dead-lettered), 3 (cancelled), 0 (lease not held). A
-- re-send answers as the first send did.
--
-- Invariants: only the lease holder (or, with '', nobody alive: lease expired) settles.
-- A retry increments `retried` and the `retried` counter, never `lost`; a final failure
-- keeps the task's envelope, payload and error in the dead-letter set (bounded by TTL and
-- count) and records the error in its result hash for result_ttl_s.
local worker, id = ARGV[1], ARGV[2]

local function main()
  local deadline = redis.call('ZSCORE', Q.active, id)
  if not deadline then return 0 end
  local now = now_ms()
  if worker == '' then
    if tonumber(deadline) > now then return 0 end
    redis.call('HINCRBY', Q.lost, id, 1)
  elseif not holds(worker, id, ARGV[3]) then
    return 0
  end
  redis.call('ZREM', Q.active, id)
  local ttl = result_ttl(id)
  if redis.call('SISMEMBER', Q.cancel, id) == 1 then
    record_end(RESULT, id, ttl, 'cancelled', now)
    forget(id)
    return 3
  end
  local delay = tonumber(ARGV[5])
  if delay then
    redis.call('HDEL', Q.owner, id)
    redis.call('HINCRBY', Q.retried, id, 1)
    redis.call('HSET', Q.error, id, ARGV[4])
    count('retried', now)
    if delay > 0 then
      schedule(id, now + delay)
    else
      make_pending(id, true)
    end
    return 1
  end
  record_end(RESULT, id, ttl, 'failed', now, 'error', ARGV[4])
  dead_letter(id, ARGV[4], now)
  prune_dead(now, tonumber(ARGV[6]), tonumber(ARGV[7]))
  return 2
end

return replay(KEYS[N + 3], main)
