-- delete_dead: forget dead-lettered tasks (and their stored error results).
--
-- KEYS[1..N]  the queue's keys (prelude order); then KEYS[N + 2j - 1], KEYS[N + 2j]
-- are result:<id> and done:<id> (a channel, unused: dead letters have ended already)
-- of the j-th task id ARGV[j] (j = 1..n)
-- ARGV[1..n] task ids
-- Returns how many of them were dead letters (and are now gone).
--
-- Invariants: only tasks in the dead-letter set are touched (a pending, scheduled or
-- active task with one of these ids stays as it is); a deleted dead letter leaves no
-- field, no group index entry and no result.
local count = 0
for j, id in ipairs(ARGV) do
  if redis.call('ZSCORE', Q.dead, id) and redis.call('HGET', Q.state, id) == 'failed' then
    redis.call('ZREM', Q.dead, id)
    forget(id)
    local result_key = task_keys(j)
    redis.call('DEL', result_key)
    count = count + 1
  end
end
return count
