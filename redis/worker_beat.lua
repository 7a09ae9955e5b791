-- A worker's heartbeat: it is alive until the deadline it sets here, and
-- its counters (already in the Prometheus text format, one field a metric
-- family) live in a hash that expires at that deadline, so that a worker
-- that dies drops out of the live count and of the metrics by itself.
-- C names: AM_WORKER_BEAT_* in src/am_scripts.h.
--
-- KEYS[1]  the worker's hash, <prefix>worker:<name>
-- KEYS[2]  the live workers, <prefix>workers
-- KEYS[3]  the run stream, <prefix>runs
-- KEYS[4]  the dead letters, <prefix>webhooks:dead
-- ARGV[1]  the worker's name
-- ARGV[2]  ms it stays alive without another beat; 0: it is leaving
-- ARGV[3]  runs, the worker's samples of automations_worker_runs_total
-- ARGV[4]  run_seconds, of automations_worker_run_duration_seconds
-- ARGV[5]  webhooks, of automations_worker_webhook_attempts_total
-- ARGV[6]  the stream's consumer group
-- ARGV[7]  key prefix
--
-- Returns the number of live workers.
--
-- Each beat also drops the group's consumers that are gone: not a live
-- worker, nothing pending (what a dead worker held was reclaimed by the
-- others first) and idle longer than a beat lasts. Restarted workers with
-- new names would otherwise pile up in the group. It is done here, in one
-- script, because a consumer that read an entry between a check and its
-- deletion would lose that entry's pending record.
--
-- And it drops, from a sample of the dead letters, those whose execution
-- has expired (their delivery can no longer be resent): the set shrinks
-- back as executions expire, the way Redis samples keys with a TTL.

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

local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', KEYS[3], ARGV[6])

if ok then
    for _, c in ipairs(consumers) do
        local f = hash(c)

        if f.pending == 0 and f.idle > ttl
            and not redis.call('ZSCORE', KEYS[2], f.name)
        then
            redis.call('XGROUP', 'DELCONSUMER', KEYS[3], ARGV[6], f.name)
        end
    end
end

for _, member in ipairs(redis.call('ZRANDMEMBER', KEYS[4], 20)) do
    local project, id = string.match(member, '^([^/]+)/(.+)$')

    if not project or redis.call('EXISTS',
            ARGV[7] .. '{' .. project .. '}:execution:' .. id) == 0 then
        redis.call('ZREM', KEYS[4], member)
    end
end

return redis.call('ZCARD', KEYS[2])
