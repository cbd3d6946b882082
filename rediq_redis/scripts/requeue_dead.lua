-- requeue_dead: move one dead-lettered task back to pending with fresh counters.
--
-- KEYS[1..N]  the queue's keys (prelude order); KEYS[N+1] result:<id>
-- ARGV[1] task id
-- Returns 1 if requeued, 0 if the task is not in the dead-letter set.
--
-- Invariants: retried and lost restart at 0 (deliveries go on counting: lease numbers are
-- never reused), the error, the old result and trail go, and the task takes a fresh FIFO
-- position (server order now). Idempotent: a re-send finds it pending, not dead.
local id = ARGV[1]
local r = load(id)
if not r or r.state ~= 'failed' then return 0 end
zrem(Q.dead, id)
redis.call('DEL', KEYS[N + 1], trail_of(id))
redis.call('HDEL', Q.errors, id)
r.retried, r.lost = '0', '0'
redis.call('DEL', TAG .. ':' .. ATTEMPTS .. ':' .. id)  -- fresh counters: no earlier attempts
make_pending(id, r, true)
emit('enqueued', id, r, 'requeued')
flush()
wake_if_ready()
return 1
