-- enqueue: store one task as pending (or scheduled when its ETA is in the future).
--
-- KEYS[1..N]  the queue's keys (prelude order); KEYS[N+1] result:<id>; KEYS[N+2] done:<id>
-- ARGV[1] task id   ARGV[2] envelope JSON   ARGV[3] payload   ARGV[4] priority
-- ARGV[5] ETA in epoch ms, or '' for "now"
-- Returns {accepted (1/0), state}.
--
-- Invariants: deduplication -- an id that is pending, scheduled or active is left untouched
-- and reported (accepted 0). A dead-lettered or finished id is replaced by the new task
-- (its dead letter and old result go). A task due before every deadline workers sleep for
-- pushes a wake token.
local id = ARGV[1]
local current = redis.call('HGET', Q.state, id)
if current == 'pending' or current == 'scheduled' or current == 'active' then
  return { 0, current }
end
if current then
  unlink(id)
  forget(id)
end
redis.call('DEL', RESULT, DONE)
redis.call('HSET', Q.envelope, id, ARGV[2])
index_groups(id, ARGV[2])
redis.call('HSET', Q.payload, id, ARGV[3])
redis.call('HSET', Q.retried, id, 0)
redis.call('HSET', Q.deliveries, id, 0)
count('enqueued', now_ms())
local eta = tonumber(ARGV[5])
if eta and eta > now_ms() then
  schedule(id, eta)
  return { 1, 'scheduled' }
end
make_pending(id, true, tonumber(ARGV[4]))
return { 1, 'pending' }
