-- ack_failure: a leased attempt failed -- retry it later, dead-letter it, or (if its
-- cancellation was requested) end it as cancelled. Also used by fetch to dead-letter
-- unusable data and tasks whose lease expired too often.
--
-- KEYS[1..N]  the queue's keys (prelude order); KEYS[N+1] result:<id>; KEYS[N+2] done:<id>
-- ARGV[1] worker id, or '' to accept any holder of an *expired* lease
-- ARGV[2] task id   ARGV[3] error JSON {type, message, traceback}
-- ARGV[4] retry at (epoch ms), or '' for a final failure
-- ARGV[5] dead-letter TTL ms   ARGV[6] dead-letter max count
-- Returns 1 (retry scheduled), 2 (dead-lettered), 3 (cancelled), 0 (lease not held).
--
-- Invariants: only the lease holder (or, with '', nobody alive: lease expired) settles.
-- A retry increments `retried` and the `retried` counter; a final failure keeps the task's
-- envelope, payload and error in the dead-letter set (bounded by TTL and count) and
-- records the error in its result hash for result_ttl_s.
local worker, id = ARGV[1], ARGV[2]
local deadline = redis.call('ZSCORE', Q.active, id)
if not deadline then return 0 end
local now = now_ms()
if worker == '' then
  if tonumber(deadline) > now then return 0 end
elseif redis.call('HGET', Q.owner, id) ~= worker then
  return 0
end
redis.call('ZREM', Q.active, id)
local ttl = result_ttl(id)
if redis.call('SISMEMBER', Q.cancel, id) == 1 then
  record_end(RESULT, DONE, id, ttl, 'cancelled', now, {})
  forget(id)
  return 3
end
local retry_at = tonumber(ARGV[4])
if retry_at then
  redis.call('HDEL', Q.owner, id)
  redis.call('HINCRBY', Q.retried, id, 1)
  redis.call('HSET', Q.error, id, ARGV[3])
  count('retried', now)
  if retry_at > now then
    schedule(id, retry_at)
  else
    make_pending(id, true)
  end
  return 1
end
record_end(RESULT, DONE, id, ttl, 'failed', now, { error = ARGV[3] })
dead_letter(id, ARGV[3], now)
prune_dead(now, tonumber(ARGV[5]), tonumber(ARGV[6]))
return 2
