-- stop_workers: ask workers to shut down gracefully. (Namespace-level keys: they share
-- the hash tag {<namespace>}; no task state is touched.)
--
-- KEYS[1..n] {ns}:worker:<id> (HASH) of each worker to stop
-- ARGV[1] control channel   ARGV[2..n+1] the worker ids, in the order of KEYS
-- Returns how many of those workers have a live registry entry (and were asked).
--
-- Invariants: the request is kept in the worker's entry (field `stop`), so a worker that
-- misses the announcement still sees it when it (re)subscribes; a worker without a live
-- entry is not written (no key is created that nothing would expire).
local count = 0
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then
    redis.call('HSET', key, 'stop', '1')
    redis.call('PUBLISH', ARGV[1], ARGV[i + 1])
    count = count + 1
  end
end
return count
