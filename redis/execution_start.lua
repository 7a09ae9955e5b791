-- A worker takes a run from the stream (new, or reclaimed from a worker
-- that died): marks it running and hands over what the run needs.
-- C names: AM_EXECUTION_START_* in src/am_scripts.h.
--
-- KEYS[1]  execution hash
-- ARGV[1]  worker name
-- ARGV[2]  most attempts
-- ARGV[3]  stream entry id (a call repeated after a Redis drop by the same
--          worker for the same entry is not another attempt)
--
-- Returns { "run", runtime, code, timeout_ms, seed, input, build_id,
--   project, automation, ddn_headers, network, output_schema, preload } |
--   { "gone" } (expired) | { "done" } (finished or cancelled already) |
--   { "exhausted", attempts }

-- the fields read here only: HGETALL would also copy what an earlier
-- attempt left (its log, its output) into Lua
local FIELDS = { 'execution_id', 'status', 'attempts', 'claim', 'runtime',
    'code', 'timeout_ms', 'seed', 'input', 'build_id', 'project',
    'automation', 'network', 'output_schema', 'preload' }
local f = redis.call('HMGET', KEYS[1], unpack(FIELDS))
local e = {}
for i, name in ipairs(FIELDS) do
    e[name] = f[i] or nil
end

if e.execution_id == nil then
    return { 'gone' }
end

if finished(e.status) then
    return { 'done' }
end

local claim = ARGV[1] .. ' ' .. (ARGV[3] or '')
local attempts = tonumber(e.attempts or '0')

if e.claim ~= claim then
    attempts = attempts + 1
    if attempts > tonumber(ARGV[2]) then
        redis.call('HSET', KEYS[1], 'attempts', attempts, 'claim', claim)
    end
end

if attempts > tonumber(ARGV[2]) then
    return { 'exhausted', attempts - 1 }
end

local _, _, ts = now(true)
redis.call('HSET', KEYS[1], 'attempts', attempts, 'claim', claim,
    'status', 'running', 'started_at', ts, 'worker', ARGV[1])

local ddn = redis.call('HGET', KEYS[1] .. ':secret', 'ddn_headers')

return { 'run', e.runtime or 'python', e.code or '', e.timeout_ms or '',
    e.seed or '', e.input or '', e.build_id or '', e.project, e.automation,
    ddn or '', e.network or '', e.output_schema or '', e.preload or '' }
