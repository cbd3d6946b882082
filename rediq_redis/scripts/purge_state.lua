-- purge_state: remove up to ARGV[2] tasks of one state from the queue (the caller loops
-- until 0 so that one call never blocks the server for long).
--
-- KEYS[1..N]  the queue's keys (prelude order)
-- ARGV[1] state: 'pending' or 'scheduled'   ARGV[2] batch size
-- Returns how many tasks were removed.
--
-- Invariants: active tasks are never purged (cancel them instead); a purged task leaves no
-- record and no group index entry. Results are not written; waiters are told (I6) and get
-- "not found". Dead letters are purged by delete_dead.lua, which also deletes their results.
local state, bound = ARGV[1], tonumber(ARGV[2])
local key = ({ pending = Q.pending, scheduled = Q.scheduled })[state]
if not key then return redis.error_reply('purge_state: bad state ' .. tostring(state)) end
local now = now_ms()
local members = redis.call('ZRANGE', key, 0, bound - 1)
local ids = {}
for _, member in ipairs(members) do
  if state == 'pending' then table.insert(ids, member_id(member)) else table.insert(ids, member) end
end
load_many(ids)
for i, id in ipairs(ids) do
  zrem(key, members[i])
  local r = load(id)
  if r then forget(id, r, now) end
end
flush()
for _, id in ipairs(ids) do announce_end(id, 'purged') end
return #ids
