-- A worker's heartbeat: it is alive until the deadline it sets here, and
-- its counters (already in the Prometheus text format, one field a metric
-- family) live in a hash that expires at that deadline, so that a worker
-- that dies drops out of the live count and of the metrics by itself.
-- C names: AM_WORKER_BEAT_* in src/am_scripts.h.
--
-- KEYS[1]  the worker's hash, <prefix>worker:<name>
-- KEYS[2]  the live workers, <prefix>workers
-- ARGV[1]  the worker's name
-- ARGV[2]  ms it stays alive without another beat; 0: it is leaving
-- ARGV[3]  runs, the worker's samples of automations_worker_runs_total
-- ARGV[4]  run_seconds, of automations_worker_run_duration_seconds
-- ARGV[5]  webhooks, of automations_worker_webhook_attempts_total
--
-- Returns the number of live workers.

local sec, usec = now()
local now_ms = sec * 1000 + math.floor(usec / 1000)
local ttl = tonumber(ARGV[2])

redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now_ms)

if ttl <= 0 then
    redis.call('ZREM', KEYS[2], ARGV[1])
    redis.call('DEL', KEYS[1])
    return redis.call('ZCARD', KEYS[2])
end

redis.call('HSET', KEYS[1], 'runs', ARGV[3], 'run_seconds', ARGV[4],
    'webhooks', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('ZADD', KEYS[2], now_ms + ttl, ARGV[1])

return redis.call('ZCARD', KEYS[2])
