-- oldest_pending: when the longest-waiting ready task became due (read only).
--
-- KEYS[1..N]  the queue's keys (prelude order)
-- ARGV[1] how many priority bands to look at, at most
-- Returns {now, due ms of the oldest head of a priority band, or -1 if nothing is pending}.
--
-- Invariants: changes nothing. Within one priority band tasks run in FIFO order, so the
-- head of each band is its oldest; the heads of the first ARGV[1] bands are compared
-- (a task is due at its ETA if it had one, else when it was enqueued).
local bands = tonumber(ARGV[1])
local now = now_ms()
local oldest = -1
local head = redis.call('ZRANGE', Q.pending, 0, 0, 'WITHSCORES')
while head[1] and bands > 0 do
  local id = member_id(head[1])
  local r = load(id)
  local ok, env = pcall(cjson.decode, r and envelope_text(r) or '')
  if ok and type(env) == 'table' then
    local due = math.max(tonumber(env.enqueued_at_ms) or 0, tonumber(env.eta_ms) or 0)
    if due > 0 and (oldest < 0 or due < oldest) then oldest = due end
  end
  bands = bands - 1
  head = redis.call('ZRANGEBYSCORE', Q.pending, '(' .. head[2], '+inf', 'WITHSCORES',
    'LIMIT', 0, 1)
end
return { now, oldest }
