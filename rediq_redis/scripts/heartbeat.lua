-- heartbeat: create or refresh a worker's registry entry. (Namespace-level keys: they
-- share the hash tag {<namespace>}; no task state is touched.)
--
-- KEYS[1] {ns}:workers (ZSET id -> expiry ms)   KEYS[2] {ns}:worker:<id> (HASH)
-- ARGV[1] worker id   ARGV[2] ttl s   ARGV[3] name   ARGV[4] queues JSON   ARGV[5] info JSON
-- Returns the server time in ms.
--
-- Invariants: the entry expires after ttl s without a heartbeat; expired ids are pruned
-- from the ZSET on every heartbeat, so the registry stays bounded by live workers.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 1)
redis.call('ZADD', KEYS[1], now + ttl * 1000, ARGV[1])
redis.call('HSET', KEYS[2], 'name', ARGV[3], 'queues', ARGV[4], 'info', ARGV[5],
  'heartbeat_ms', now)
redis.call('EXPIRE', KEYS[2], ttl)
if redis.call('PTTL', KEYS[1]) < ttl * 1000 then redis.call('PEXPIRE', KEYS[1], ttl * 1000) end
return now
