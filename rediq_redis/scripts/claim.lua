-- claim: one fetch step for one queue. Promotes due scheduled tasks, reclaims expired
-- leases, and leases up to `limit` ready tasks in priority order (lower score first,
-- FIFO among equal priorities by position member).
--
-- KEYS[1..N]  the queue's keys (prelude order)
-- ARGV[1] worker id   ARGV[2] limit   ARGV[3] lease ms   ARGV[4] max deliveries
-- ARGV[5] dead-letter TTL ms   ARGV[6] dead-letter max count   ARGV[7] batch bound
-- Returns {now, next_delay_ms (-1: nothing scheduled or leased), leased, exhausted,
--          cancelled} where leased is a flat list of
--          (id, envelope|false, payload|false, retried, deliveries, lease deadline) and
--          exhausted / cancelled are ids of expired leases the caller must finish with
--          ack_failure / cancel (they need per-task keys this script cannot declare).
--
-- Invariants: an expired lease of a task delivered >= max deliveries times, or whose
-- cancellation was requested, stays in `active` (past its deadline) until the caller
-- finishes it -- so a crash between the two steps loses nothing. Every other expired
-- lease returns to pending at its old position. If ready tasks remain after leasing, a
-- wake token is pushed so another idle worker wakes.
-- A paused queue (pause.lua) leases nothing and pushes no wake token; `started` records
-- when each lease began.
local worker, limit, lease_ms = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local max_deliveries, bound = tonumber(ARGV[4]), tonumber(ARGV[7])
local now = now_ms()

for _, id in ipairs(redis.call('ZRANGEBYSCORE', Q.scheduled, '-inf', now, 'LIMIT', 0, bound)) do
  redis.call('ZREM', Q.scheduled, id)
  make_pending(id, true)
end

local exhausted, cancelled = {}, {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', Q.active, '-inf', now, 'LIMIT', 0, bound)) do
  if redis.call('SISMEMBER', Q.cancel, id) == 1 then
    table.insert(cancelled, id)
  elseif tonumber(redis.call('HGET', Q.deliveries, id) or '0') >= max_deliveries then
    table.insert(exhausted, id)
  else
    redis.call('ZREM', Q.active, id)
    redis.call('HDEL', Q.owner, id)
    make_pending(id, false)
  end
end

local leased = {}
local deadline = now + lease_ms
local paused = redis.call('EXISTS', Q.paused) == 1  -- pause.lua
if limit > 0 and not paused then
  for _, member in ipairs(redis.call('ZRANGE', Q.pending, 0, limit - 1)) do
    local id = string.sub(member, 18)
    redis.call('ZREM', Q.pending, member)
    redis.call('ZADD', Q.active, deadline, id)
    redis.call('HSET', Q.state, id, 'active')
    redis.call('HSET', Q.owner, id, worker)
    redis.call('HSET', Q.started, id, now)
    local deliveries = redis.call('HINCRBY', Q.deliveries, id, 1)
    table.insert(leased, id)
    table.insert(leased, redis.call('HGET', Q.envelope, id))
    table.insert(leased, redis.call('HGET', Q.payload, id))
    table.insert(leased, tonumber(redis.call('HGET', Q.retried, id) or '0'))
    table.insert(leased, deliveries)
    table.insert(leased, deadline)
  end
end
if not paused and redis.call('ZCARD', Q.pending) > 0 then wake() end

prune_dead(now, tonumber(ARGV[5]), tonumber(ARGV[6]))

local next_delay = -1
local earliest = earliest_deadline()
if earliest ~= nil then next_delay = math.max(0, earliest - now) end
return { now, next_delay, leased, exhausted, cancelled }
