-- delete_dead: forget dead-lettered tasks (and their stored error results).
--
-- KEYS[1..N]  the queue's keys (prelude order); KEYS[N+j] result:<id> of the j-th task
-- id ARGV[j] (j = 1..n)
-- ARGV[1..n] task ids
-- Returns how many of them were dead letters (and are now gone).
--
-- Invariants: only tasks in the dead-letter set are touched (a pending, scheduled or
-- active task with one of these ids stays as it is); a deleted dead letter leaves no
-- record, no group index entry and no result.
local now = now_ms()
load_many(ARGV)
local count = 0
for j, id in ipairs(ARGV) do
  local r = load(id)
  if r and r.state == 'failed' then
    zrem(Q.dead, id)
    forget(id, r, now)
    emit('deleted', id, r, 'failed')
    redis.call('DEL', KEYS[N + j])
    count = count + 1
  end
end
flush()
return count
