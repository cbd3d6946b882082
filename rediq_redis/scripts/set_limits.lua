-- set_limits: set or clear the queue's own limits (a concurrency limit and a rate that
-- apply to every task of the queue), and reconsider the tasks they held back.
--
-- KEYS[1..N]  the queue's keys (prelude order)
-- ARGV[1] most running ('' = no limit)   ARGV[2] rate "<count>/<period ms>/<burst>" ('' = none)
-- Returns 1.
--
-- Invariants: I8 (docs/broker.md). Every task the queue's limits parked goes back to
-- pending at its own position (a claim parks it again if a limit still stops it), so a
-- raised or cleared limit lets tasks start at once; a changed rate starts with a full
-- bucket. Slots taken under the old limit stay with their tasks until those end.
local concurrency, rate = ARGV[1], ARGV[2]
if concurrency == '' then
  redis.call('HDEL', Q.limits, 'concurrency')
else
  redis.call('HSET', Q.limits, 'concurrency', concurrency)
end
if rate ~= (redis.call('HGET', Q.limits, 'rate') or '') then
  redis.call('ZREM', Q.rates, QUEUE_RATE)
  redis.call('ZREM', Q.limits_due, QUEUE_RATE)
end
if rate == '' then
  redis.call('HDEL', Q.limits, 'rate')
else
  redis.call('HSET', Q.limits, 'rate', rate)
end
for _, name in ipairs({ QUEUE_CONCURRENCY, QUEUE_RATE }) do
  while unpark(name) do end
end
flush()
wake_if_ready()
return 1
