-- purge_state: remove up to ARGV[2] tasks of one state from the queue (the caller loops
-- until 0 so that one call never blocks the server for long).
--
-- KEYS[1..N]  the queue's keys (prelude order)
-- ARGV[1] state: 'pending', 'scheduled', 'waiting' or 'limited'   ARGV[2] batch size
-- Returns how many tasks were removed; {count, members} when a purged workflow step wrote
-- effects on steps of other queues into the outbox (the caller delivers them).
--
-- Invariants: active tasks are never purged (cancel them instead); a purged task leaves no
-- record and no group index entry. Results are not written; waiters are told (I6) and get
-- "not found". Dead letters are purged by delete_dead.lua, which also deletes their results.
-- A purged workflow step ends the steps waiting for it as cancelled (those of other
-- queues through the outbox). A purged pending task that a freed limit had moved out of
-- its lane hands the lane's turn to the next claim (I8), never to this purge.
local state, bound = ARGV[1], tonumber(ARGV[2])
local key = ({ pending = Q.pending, scheduled = Q.scheduled, waiting = Q.waiting,
  limited = Q.parked })[state]
if not key then return redis.error_reply('purge_state: bad state ' .. tostring(state)) end
local now = now_ms()
pass_on_later = true  -- a lane's next task waits for a claim, not for this purge
local members = redis.call('ZRANGE', key, 0, bound - 1)
local ids = {}
for _, member in ipairs(members) do
  if state == 'pending' then
    table.insert(ids, member_id(member))
  elseif state == 'limited' then
    table.insert(ids, parked_id(member))
  else
    table.insert(ids, member)
  end
end
load_many(ids)
local links = {}
for i, id in ipairs(ids) do
  local r = load(id)
  if r then
    unlink(id, r)
    forget(id, r, now)
    emit('deleted', id, r, state)
    links[id] = link_of(r)
  else
    zrem(key, members[i])
  end
end
for _, id in ipairs(ids) do
  announce_end(id, 'purged')
  if links[id] then steps_after(links[id], 'purged', nil, now) end
end
flush()
if #outboxed > 0 then return { #ids, outboxed } end
return #ids
