-- Stores a run's result, then publishes the completion, then acknowledges
-- the stream entry: in that order, once. A second completion of the same
-- execution (a reclaimed run finishing twice) changes nothing.
-- C names: AM_EXECUTION_COMPLETE_* in src/am_scripts.h.
--
-- KEYS[1]  execution hash
-- KEYS[2]  run stream
-- KEYS[3]  webhook schedule
-- ARGV[1]  status (success|error|timed_out)
-- ARGV[2]  output JSON or ""
-- ARGV[3]  error or ""
-- ARGV[4]  log
-- ARGV[5]  execution_time_ms
-- ARGV[6]  stream entry id
-- ARGV[7]  consumer group
-- ARGV[8]  completion channel of the records without the field notify
--          (lib.lua publish_completion)
--
-- The completion, published only where a gateway waits for it (the
-- record's notify), is "<project>/<id>", followed, when the run
-- endpoint's answer (lib.lua execution_result) is at most PUBLISH_MAX
-- bytes, by "\n<status>\n<body>": a gateway waiting for the execution
-- answers from it without reading the record back. Larger results are
-- read back with execution_result.lua.
--
-- Returns "ok" | "dup" | "gone"

local PUBLISH_MAX = 16384

local function ack()
    redis.call('XACK', KEYS[2], ARGV[7], ARGV[6])
    redis.call('XDEL', KEYS[2], ARGV[6])
end

-- only the fields read here: the record also holds the code, the seed and
-- the input, which HGETALL would copy into Lua for nothing
local f = redis.call('HMGET', KEYS[1], 'execution_id', 'status', 'project',
    'started_at', 'webhook', 'retention', 'notify')
local e = { execution_id = f[1] or nil, status = f[2] or nil,
    project = f[3] or nil, started_at = f[4] or nil, webhook = f[5] or nil,
    retention = f[6] or nil, notify = f[7] or nil }

if e.execution_id == nil then
    ack()
    return 'gone'
end

-- a cancelled execution is finished: cancel and completion race, one wins
if finished(e.status) then
    ack()
    return 'dup'
end

local _, _, ts, ms = now(true)
local member = e.project .. '/' .. e.execution_id

redis.call('HSET', KEYS[1], 'status', ARGV[1], 'output', ARGV[2],
    'error', ARGV[3], 'log', ARGV[4], 'execution_time_ms', ARGV[5],
    'finished_at', ts)
e.status, e.output, e.error, e.execution_time_ms =
    ARGV[1], ARGV[2], ARGV[3], ARGV[5]

if e.started_at == nil then
    redis.call('HSET', KEYS[1], 'started_at', ts)
end

local secret = KEYS[1] .. ':secret'

if e.webhook ~= nil and e.webhook ~= '' then
    redis.call('HSET', KEYS[1], 'webhook_id', 'msg_' .. e.execution_id,
        'webhook_state', 'pending')
    redis.call('ZADD', KEYS[3], ms, member)
    redis.call('HDEL', secret, 'ddn_headers')
else
    redis.call('DEL', secret)
end

redis.call('EXPIRE', KEYS[1], e.retention or '604800')

if e.notify ~= '' then
    local result = execution_result(e)
    local message = member
    if #result[2] <= PUBLISH_MAX then
        message = member .. '\n' .. result[1] .. '\n' .. result[2]
    end
    publish_completion(e, ARGV[8], message)
end
ack()

return 'ok'
