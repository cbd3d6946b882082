-- wait: register a worker as waiting for a task of this queue, just before it blocks on
-- its own list and the wake key (sent in one pipeline with that BLPOP).
--
-- KEYS[1..N]  the queue's keys (prelude order)
-- ARGV[1] worker id   ARGV[2] lease ms   ARGV[3] how long the registration is valid, ms
-- (the worker's longest wait)
-- Returns 1 if registered, 0 if a task was already handed to it (its BLPOP returns it).
--
-- Invariants: a worker is in `idle` at most once; an enqueue that makes a task ready
-- while workers wait hands it to the first of them (hand_off() in the prelude): leased to
-- the worker's holder and pushed onto its list. The worker's next claim (or, if its fetch
-- is cancelled, a claim of nothing) ends the registration and delivers what its list
-- still holds. Idempotent: a re-send renews the registration.
local worker, lease_ms, valid_ms = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local mark = redis.call('HGET', Q.workers, waiting_mark(worker))
if mark == 'h' then return 0 end
if not mark then redis.call('RPUSH', Q.idle, worker) end
redis.call('HSET', Q.workers, waiting_mark(worker), lease_ms .. ':' .. (now_ms() + valid_ms))
return 1
