-- purge: remove up to ARGV[1] pending and scheduled tasks of the queue (the caller loops
-- until 0 so that one call never blocks the server for long).
--
-- KEYS[1..N]  the queue's keys (prelude order)
-- ARGV[1] batch size
-- Returns how many tasks were removed.
--
-- Invariants: active tasks and dead letters are untouched; a purged task leaves no field.
-- Results are not written; waiters of purged tasks are told (I6) and find no task.
local bound = tonumber(ARGV[1])
local count = 0
for _, member in ipairs(redis.call('ZRANGE', Q.pending, 0, bound - 1)) do
  local id = member_id(member)
  redis.call('ZREM', Q.pending, member)
  forget(id)
  announce_end(id, 'purged')
  count = count + 1
end
for _, id in ipairs(redis.call('ZRANGE', Q.scheduled, 0, bound - 1)) do
  redis.call('ZREM', Q.scheduled, id)
  forget(id)
  announce_end(id, 'purged')
  count = count + 1
end
return count
