-- wait: register a worker as waiting for a task of this queue, just before it blocks on
-- its own list and the wake key (sent in one pipeline with that BLPOP).
--
-- KEYS[1..N]  the queue's keys (prelude order); KEYS[N+1] the worker's unblock list
-- ARGV[1] worker id   ARGV[2] lease ms   ARGV[3] how long the registration is valid, ms
-- (the worker's longest wait)
-- Returns 1 if registered, 0 if a task handed to it is still in its list (its BLPOP
-- returns it).
--
-- Invariants: a worker is in `idle` at most once; an enqueue that makes a task ready
-- while workers wait hands it to the first of them (hand_off() in the prelude): leased to
-- the worker's holder and pushed onto its list. A worker whose list is empty again took
-- what was handed to it (only its own BLPOP, or a claim, empties the list): it waits
-- registered again, so at low load every task is handed over. The worker's next claim
-- (or, if its fetch is cancelled, a claim of nothing) ends the registration and
-- delivers what its list still holds. Idempotent: a re-send renews the registration.
local worker, lease_ms, valid_ms = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local mark = redis.call('HGET', Q.workers, waiting_mark(worker))
if mark == 'h' then
  if redis.call('LLEN', KEYS[N + 1]) > 0 then return 0 end
  mark = nil  -- taken: hand_off() took the worker out of `idle`
end
if not mark then redis.call('RPUSH', Q.idle, worker) end
redis.call('HSET', Q.workers, waiting_mark(worker), lease_ms .. ':' .. (now_ms() + valid_ms))
return 1
