-- What the health and metrics endpoints read from Redis, in one round
-- trip: the run stream's depth, its entries delivered to a worker and not
-- yet acknowledged, the age of its oldest entry, the dead-lettered
-- webhook deliveries, the live workers and, for metrics, their counters.
-- C names: AM_STATS_* in src/am_scripts.h.
--
-- KEYS[1]  the run stream, <prefix>runs
-- KEYS[2]  the dead letters, <prefix>webhooks:dead
-- KEYS[3]  the live workers, <prefix>workers
-- ARGV[1]  key prefix
-- ARGV[2]  "1": also the workers' counters
--
-- Returns { depth, pending, oldest entry age in ms or -1, dead letters,
-- live workers, runs, run_seconds, webhooks }: the last three are the
-- live workers' samples of each metric family, one after the other
-- (empty without ARGV[2]).

local sec, usec = now()
local now_ms = sec * 1000 + math.floor(usec / 1000)
local depth, pending, oldest = 0, 0, -1

if redis.call('EXISTS', KEYS[1]) == 1 then
    depth = redis.call('XLEN', KEYS[1])

    -- every group's unacknowledged entries: the workers' group is an option
    for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
        local h = hash(g)
        pending = pending + (h.pending or 0)
    end

    local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
    if first[1] then
        local ms = tonumber(string.match(first[1][1], '^(%d+)'))
        oldest = math.max(now_ms - ms, 0)
    end
end

redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now_ms)
local workers = redis.call('ZRANGE', KEYS[3], 0, -1)
local families = { {}, {}, {} }

if ARGV[2] == '1' then
    for _, name in ipairs(workers) do
        local f = redis.call('HMGET', ARGV[1] .. 'worker:' .. name, 'runs',
            'run_seconds', 'webhooks')
        for i = 1, 3 do
            if f[i] then
                table.insert(families[i], f[i])
            end
        end
    end
end

return { depth, pending, oldest, redis.call('ZCARD', KEYS[2]), #workers,
    table.concat(families[1]), table.concat(families[2]),
    table.concat(families[3]) }
