-- report: a running task's progress and log lines, from the worker holding its lease
-- (sent with the worker's lease renewal round and before its settlement, only for tasks
-- that reported something).
--
-- KEYS[1..N]  the queue's keys (prelude order); KEYS[N+1] trail:<id>
-- ARGV[1] worker id   ARGV[2] task id   ARGV[3] lease number   ARGV[4] most lines kept
-- ARGV[5] most bytes kept (of the lines, each with its line break)
-- ARGV[6] lines the worker dropped before sending   ARGV[7] progress (JSON) or ''
-- ARGV[8..] new log lines (one JSON array each, without a line break)
-- A progress update is also a `progress` event (the stream, if kept).
-- Returns 1 if written, 0 if the worker does not hold that lease under a live holder
-- (lost, expired, or the task ended): nothing is written then.
--
-- Invariants: only the live holder of the task's current lease writes (a zombie worker
-- cannot overwrite a newer attempt's trail or revive an ended task's). The trail
-- belongs to one run of the id (field `n`: its record's enqueue nonce): a new run starts
-- it afresh. It keeps the last lines within both bounds (`dropped` counts the others).
-- It has no TTL while the task is stored: settle keeps it for the result TTL, and every
-- step that forgets a task leased before deletes it. A re-send appends the lines again
-- (a lost reply duplicates lines at worst; progress is the same).
local worker, id, delivery = ARGV[1], ARGV[2], ARGV[3]
local max_lines, max_bytes = tonumber(ARGV[4]), tonumber(ARGV[5])
local now = now_ms()
local r = load(id)
local n, alive = holder_of(worker, now)
if not alive or not holds(r, worker, delivery, now) then return 0 end
local key = KEYS[N + 1]
local old = redis.call('HMGET', key, 'n', 'log', 'lines', 'dropped')
local text, lines, dropped = old[2] or '', tonumber(old[3]) or 0, tonumber(old[4]) or 0
if old[1] ~= r.nonce then
  if old[1] then redis.call('DEL', key) end  -- an earlier run's trail
  text, lines, dropped = '', 0, 0
end
dropped = dropped + (tonumber(ARGV[6]) or 0)
local parts = { text }
for i = 8, #ARGV do table.insert(parts, ARGV[i] .. TRAIL_LINE_END) end
lines = lines + #ARGV - 7
text = table.concat(parts)
local cut = 1
while lines > max_lines or #text - cut + 1 > max_bytes do
  local eol = string.find(text, TRAIL_LINE_END, cut, true)
  if not eol then break end
  cut, lines, dropped = eol + 1, lines - 1, dropped + 1
end
if cut > 1 then text = string.sub(text, cut) end
local fields = { 'n', r.nonce, 'log', text, 'lines', lines, 'dropped', dropped }
if ARGV[7] ~= '' then
  table.insert(fields, 'p')
  table.insert(fields, ARGV[7])
  emit('progress', id, r, progress_detail(ARGV[7]))
end
redis.call('HSET', key, unpack(fields))
return 1
