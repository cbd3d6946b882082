-- claim: one fetch step for one queue. Promotes due scheduled tasks, reclaims expired
-- leases, and leases up to `limit` ready tasks in priority order (lower score first,
-- FIFO among equal priorities by position member).
--
-- KEYS[1..N]  the queue's keys (prelude order); KEYS[N+1] reply key of this call (optional)
-- ARGV[1] worker id   ARGV[2] limit   ARGV[3] lease ms   ARGV[4] max lost leases
-- ARGV[5] dead-letter TTL ms   ARGV[6] dead-letter max count   ARGV[7] batch bound
-- Returns {now, next_delay_ms (-1: nothing scheduled or leased), leased, exhausted,
--          cancelled} where leased is a flat list of (id, envelope|false, payload|false,
--          retried, deliveries, lease deadline, lost) and exhausted / cancelled are ids of
--          expired leases the caller must finish with ack_failure / cancel (they need
--          per-task keys this script cannot declare).
--
-- Invariants: an expired lease counts as lost (`lost` +1); retried failures never do.
-- An expired lease of a task that lost its lease `max lost` times, or whose cancellation
-- was requested, stays in `active` (past its deadline) until the caller finishes it -- so
-- a crash between the two steps loses nothing. Every other expired lease returns to
-- pending at its old position. If ready tasks remain after leasing, a wake token is
-- pushed so another idle worker wakes. A re-send of this call leases nothing more: it
-- answers with the leases the first send made that the worker still holds.
-- A paused queue (pause.lua) leases nothing and pushes no wake token; `started` records
-- when each lease began.
local worker, limit, lease_ms = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local max_lost, bound = tonumber(ARGV[4]), tonumber(ARGV[7])

local function row(leased, id, deadline, delivery)
  table.insert(leased, id)
  table.insert(leased, redis.call('HGET', Q.envelope, id))
  table.insert(leased, redis.call('HGET', Q.payload, id))
  table.insert(leased, tonumber(redis.call('HGET', Q.retried, id) or '0'))
  table.insert(leased, delivery or tonumber(redis.call('HGET', Q.deliveries, id) or '0'))
  table.insert(leased, deadline)
  table.insert(leased, tonumber(redis.call('HGET', Q.lost, id) or '0'))
end

local function main()
  local now = now_ms()
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', Q.scheduled, '-inf', now, 'LIMIT', 0, bound)) do
    redis.call('ZREM', Q.scheduled, id)
    make_pending(id, true)
  end

  local exhausted, cancelled = {}, {}
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', Q.active, '-inf', now, 'LIMIT', 0, bound)) do
    if redis.call('SISMEMBER', Q.cancel, id) == 1 then
      table.insert(cancelled, id)
    elseif tonumber(redis.call('HGET', Q.lost, id) or '0') + 1 >= max_lost then
      table.insert(exhausted, id)
    else
      redis.call('HINCRBY', Q.lost, id, 1)
      redis.call('ZREM', Q.active, id)
      redis.call('HDEL', Q.owner, id)
      make_pending(id, false)
    end
  end

  local leased, leases = {}, {}
  local deadline = now + lease_ms
  local paused = redis.call('EXISTS', Q.paused) == 1  -- pause.lua
  if limit > 0 and not paused then
    for _, member in ipairs(redis.call('ZRANGE', Q.pending, 0, limit - 1)) do
      local id = member_id(member)
      redis.call('ZREM', Q.pending, member)
      redis.call('ZADD', Q.active, deadline, id)
      redis.call('HSET', Q.state, id, 'active')
      redis.call('HSET', Q.owner, id, worker)
      redis.call('HSET', Q.started, id, now)
      local delivery = redis.call('HINCRBY', Q.deliveries, id, 1)
      row(leased, id, deadline, delivery)
      table.insert(leases, id)
      table.insert(leases, tostring(delivery))
    end
  end
  if not paused and redis.call('ZCARD', Q.pending) > 0 then wake() end

  prune_dead(now, tonumber(ARGV[5]), tonumber(ARGV[6]))

  local next_delay = -1
  local earliest = earliest_deadline()
  if earliest ~= nil then next_delay = math.max(0, earliest - now) end
  local answer = { now, next_delay, leased, exhausted, cancelled }
  if #leases == 0 and #exhausted == 0 and #cancelled == 0 then return answer, false end
  return answer, { now, next_delay, leases, exhausted, cancelled }
end

-- A re-send: the leases the first send made, as far as the worker still holds them.
local function on_replay(stored)
  local leased, leases = {}, stored[3]
  for i = 1, #leases, 2 do
    local id = leases[i]
    if holds(worker, id, leases[i + 1]) then
      row(leased, id, tonumber(redis.call('ZSCORE', Q.active, id)))
    end
  end
  return { stored[1], stored[2], leased, stored[4], stored[5] }
end

return replay(KEYS[N + 1], main, on_replay)
