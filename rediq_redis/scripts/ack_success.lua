-- ack_success: a leased task succeeded.
--
-- KEYS[1..N]  the queue's keys (prelude order); KEYS[N+1] result:<id>; KEYS[N+2] done:<id>
-- ARGV[1] worker id   ARGV[2] task id   ARGV[3] serialized result
-- Returns 1, or 0 if the worker no longer holds the lease (nothing changes then).
--
-- Invariants: only the lease holder settles. The result is kept for the task's
-- result_ttl_s (result hash + done list, same TTL); with TTL 0 only the counter changes and
-- no key of the task remains.
local worker, id = ARGV[1], ARGV[2]
if not redis.call('ZSCORE', Q.active, id) or redis.call('HGET', Q.owner, id) ~= worker then
  return 0
end
redis.call('ZREM', Q.active, id)
count('succeeded', now_ms())
record_end(RESULT, DONE, id, result_ttl(id), 'succeeded', now_ms(), { result = ARGV[3] })
forget(id)
return 1
