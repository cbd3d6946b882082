-- requeue_dead: move one dead-lettered task back to pending with fresh counters.
--
-- KEYS[1..N]  the queue's keys (prelude order); KEYS[N+1] result:<id>; KEYS[N+2] done:<id> (a channel)
-- KEYS[N+3]   reply key of this call (optional: a re-send answers as the first send did)
-- ARGV[1] task id
-- Returns 1 if requeued, 0 if the task is not in the dead-letter set.
--
-- Invariants: retried and lost restart at 0 (deliveries go on counting: lease numbers are
-- never reused), the error and old result go, and the task takes a fresh FIFO position
-- (server order now).
local id = ARGV[1]

local function main()
  if not redis.call('ZSCORE', Q.dead, id) or redis.call('HGET', Q.state, id) ~= 'failed' then
    return 0
  end
  redis.call('ZREM', Q.dead, id)
  redis.call('DEL', RESULT)
  redis.call('HSET', Q.retried, id, 0)
  redis.call('HDEL', Q.lost, id)
  redis.call('HDEL', Q.error, id)
  make_pending(id, true)
  return 1
end

return replay(KEYS[N + 3], main)
