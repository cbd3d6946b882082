-- release: hand leased tasks back at once (worker shutdown, prefetched but not started).
--
-- KEYS[1..N]  the queue's keys (prelude order); then KEYS[N + 2j - 1], KEYS[N + 2j]
-- are result:<id> and done:<id> of the j-th task id ARGV[1 + j] (j = 1..n)
-- ARGV[1] worker id   ARGV[2..] task ids
-- Returns how many tasks were released (or ended as cancelled, if that was requested).
--
-- Invariants: only leases held by ARGV[1] are released; a released task returns to
-- pending at its old FIFO position, and the delivery is not counted.
local worker = ARGV[1]
local count = 0
local now = nil
for i = 2, #ARGV do
  local id = ARGV[i]
  if redis.call('ZSCORE', Q.active, id) and redis.call('HGET', Q.owner, id) == worker then
    redis.call('ZREM', Q.active, id)
    if redis.call('SISMEMBER', Q.cancel, id) == 1 then
      now = now or now_ms()
      local result_key, done_key = task_keys(i - 1)
      record_end(result_key, done_key, id, result_ttl(id), 'cancelled', now, {})
      forget(id)
    else
      redis.call('HDEL', Q.owner, id)
      if tonumber(redis.call('HGET', Q.deliveries, id) or '0') > 0 then
        redis.call('HINCRBY', Q.deliveries, id, -1)
      end
      make_pending(id, false)
    end
    count = count + 1
  end
end
return count
