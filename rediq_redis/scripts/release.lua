-- release: hand leased tasks back at once (worker shutdown, prefetched but not started).
--
-- KEYS[1..16]  the queue's keys (prelude order); then KEYS[15 + 2j], KEYS[16 + 2j] are
-- result:<id> and done:<id> of the j-th task id ARGV[1 + j] (j = 1..n)
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
      local j = i - 1
      record_end(KEYS[15 + 2 * j], KEYS[16 + 2 * j], id, result_ttl(id), 'cancelled', now, {})
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
