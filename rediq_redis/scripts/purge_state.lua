-- purge_state: remove up to ARGV[2] tasks of one state from the queue (the caller loops
-- until 0 so that one call never blocks the server for long).
--
-- KEYS[1..N]  the queue's keys (prelude order)
-- ARGV[1] state: 'pending' or 'scheduled'   ARGV[2] batch size
-- Returns how many tasks were removed.
--
-- Invariants: active tasks are never purged (cancel them instead); a purged task leaves no
-- field and no group index entry. Results are not written; waiters are told (I6) and get "not found".
-- Dead letters are purged by delete_dead.lua, which also deletes their results.
local state, bound = ARGV[1], tonumber(ARGV[2])
local key = ({ pending = Q.pending, scheduled = Q.scheduled })[state]
if not key then return redis.error_reply('purge_state: bad state ' .. tostring(state)) end
local count = 0
for _, member in ipairs(redis.call('ZRANGE', key, 0, bound - 1)) do
  local id = member
  if state == 'pending' then id = member_id(member) end
  redis.call('ZREM', key, member)
  forget(id)
  announce_end(id, 'purged')
  count = count + 1
end
return count
