-- enqueue: store one task as pending (or scheduled when it is due later).
--
-- KEYS[1..N]  the queue's keys (prelude order); KEYS[N+1] result:<id>; KEYS[N+2] done:<id> (a channel)
-- KEYS[N+3]   reply key of this call (optional: see replay() in the prelude)
-- ARGV[1] task id   ARGV[2] envelope JSON   ARGV[3] payload   ARGV[4] priority
-- ARGV[5] ETA in epoch ms, or ''   ARGV[6] delay in ms from now (server clock), or ''
-- Returns {1, state} for a new task, or {0, state, result TTL s} for a duplicate (the TTL
-- of the existing task, which is what a waiter of the id depends on).
--
-- Invariants: deduplication -- an id that is pending, scheduled or active is left untouched
-- and reported (accepted 0, with that task's state and result TTL). An id whose task has
-- ended (dead-lettered, or finished with its result kept) is replaced by the new task:
-- enqueueing it again runs it again. A re-send of this very call answers as the first
-- send did and never creates the task twice. A task due before every deadline workers
-- sleep for pushes a wake token. Out of memory (maxmemory, noeviction), a new task is
-- refused before anything is written.
local id = ARGV[1]

local function main()
  local current = redis.call('HGET', Q.state, id)
  if current == 'pending' or current == 'scheduled' or current == 'active' then
    return { 0, current, result_ttl(id) }
  end
  -- The first write must be one Redis refuses when out of memory (maxmemory with
  -- noeviction): the call then fails whole, having written nothing.
  local now = now_ms()
  count('enqueued', now)
  if current then
    unlink(id)
    forget(id)
  end
  redis.call('DEL', RESULT)
  redis.call('HSET', Q.envelope, id, ARGV[2])
  index_groups(id, ARGV[2])
  redis.call('HSET', Q.payload, id, ARGV[3])
  redis.call('HSET', Q.retried, id, 0)
  redis.call('HSET', Q.deliveries, id, 0)
  local due = tonumber(ARGV[5])
  local delay = tonumber(ARGV[6])
  if delay and delay > 0 then due = now + delay end
  if due and due > now then
    schedule(id, due)
    return { 1, 'scheduled' }
  end
  make_pending(id, true, tonumber(ARGV[4]))
  return { 1, 'pending' }
end

return replay(KEYS[N + 3], main)
