-- cron_register: store the specs of the schedules a live worker serves on this queue and
-- mark them seen now (a schedule not seen for a while is shown as orphaned).
--
-- KEYS[1..N]  the queue's keys (prelude order)
-- ARGV[1]     'store' (a starting worker: its specs replace stored ones) or 'refresh' (a
--             running worker: a missing spec is stored again, a different one is left alone)
-- ARGV[2..]   pairs: schedule name, spec JSON
-- Returns {changed names, conflicting names}: specs written that were new or different, and
-- (refresh only) names whose stored spec differs from the caller's and was kept.
--
-- Invariants: only the cron hashes are touched; no task state. A conflicting schedule is
-- not marked seen by the caller.
local now = now_ms()
local store = ARGV[1] == 'store'
local changed, conflicting = {}, {}
for i = 2, #ARGV, 2 do
  local name, spec = ARGV[i], ARGV[i + 1]
  local stored = redis.call('HGET', Q.cron, name)
  if stored == spec then
    redis.call('HSET', Q.cron_seen, name, now)
  elseif store or not stored then
    redis.call('HSET', Q.cron, name, spec)
    redis.call('HSET', Q.cron_seen, name, now)
    table.insert(changed, name)
  else
    table.insert(conflicting, name)
  end
end
return { changed, conflicting }
