-- deliver: apply to this queue's workflow steps what steps of other queues did (their
-- outbox members): a parent succeeded ('j'), or a step before them did not ('e').
--
-- KEYS[1..N]  the queue's keys (prelude order)
-- ARGV        outbox members: JSON {k = 'j' or 'e', q = this queue, id = the step, p = the
--             parent's number, e = the cascade error ('e' only)}
-- Returns the members this call wrote into this queue's outbox (effects on steps of yet
-- other queues, for the caller to deliver in turn).
--
-- Invariants: a member delivered twice counts once: a parent's success is counted once
-- per step (Q.joined), and an ending finds the step no longer waiting. A step released
-- here becomes pending (or scheduled, for its delay) in this step; one ended here ends as
-- cancelled with the cascade error, and so do the steps of this queue after it.
local now = now_ms()
for _, member in ipairs(ARGV) do
  local ok, e = pcall(cjson.decode, member)
  if ok and type(e) == 'table' and type(e.id) == 'string' then
    if e.k == 'j' then
      join(e.id, e.p, true, now)
    else
      local r = load(e.id)
      if r and r.state == 'waiting' then
        unlink(e.id, r)
        record_end(result_of(e.id), e.id, r, 'cancelled', now, 'error', e.e)
        forget(e.id, r, now)
      end
    end
  end
end
flush()
wake_if_ready()
return outboxed
