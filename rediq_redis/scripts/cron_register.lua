-- cron_register: store the specs of the schedules a live worker serves on this queue and
-- mark them seen now (a schedule not seen for a while is shown as orphaned).
--
-- KEYS[1..N]  the queue's keys (prelude order)
-- ARGV        pairs: schedule name, spec JSON
-- Returns the names whose stored spec changed (new or different).
--
-- Invariants: only the cron hashes are touched; no task state.
local now = now_ms()
local changed = {}
for i = 1, #ARGV, 2 do
  local name, spec = ARGV[i], ARGV[i + 1]
  if redis.call('HGET', Q.cron, name) ~= spec then
    redis.call('HSET', Q.cron, name, spec)
    table.insert(changed, name)
  end
  redis.call('HSET', Q.cron_seen, name, now)
end
return changed
