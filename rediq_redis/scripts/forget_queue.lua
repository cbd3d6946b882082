-- forget_queue: drop what an empty queue keeps of its own: the pause flag, the counters,
-- the per-minute ring and the metrics history, the FIFO sequence, the holders, a wake token, the rates' state and
-- the fair order.
--
-- KEYS[1..N]  the queue's keys (prelude order)
-- ARGV: none
-- Returns 1 if the queue held no task and is forgotten, 0 if it holds a pending,
-- scheduled, active or dead task (nothing changes then).
--
-- Invariants: no task is ever removed (a queue with any task record is refused); stored
-- cron schedules, the queue's own limits and the results of ended tasks (their own keys, with their TTLs) are
-- left alone. The queue set ({NS}:queues, another slot) is updated by the caller once
-- this script answered 1; the queue's next task brings its name and keys back.
for _, key in ipairs({ Q.pending, Q.scheduled, Q.active, Q.dead, Q.waiting, Q.parked }) do
  if redis.call('ZCARD', key) > 0 then return 0 end
end
if redis.call('HLEN', Q.tasks) > 0 then return 0 end
redis.call('DEL', Q.paused, Q.stats, Q.minutes, Q.history, Q.seq, Q.wake, Q.holders, Q.workers, Q.idle,
  Q.rates, Q.limits_due, Q.fair, Q.events)
return 1
